//! CSV datasets: a header row, then one row per example; every value a finite number.
//!
//! The label is the column named by `label_column`, or the last column. Errors
//! name the line (1-based, the header is line 1) and the column, e.g.
//! "line 7: expected 5 fields, found 4" or "line 3, column `x2`: `abc` is not a number".

use kiln_nn::validation::Invalid;

/// A CSV table split into features and raw labels, not yet checked against a task.
#[derive(Debug, Clone)]
pub struct CsvTable {
    /// Row-major, `rows × feature_names.len()`.
    pub x: Vec<f32>,
    pub y: Vec<f32>,
    pub rows: usize,
    pub feature_names: Vec<String>,
    pub label_column: String,
}

fn invalid(message: impl Into<String>) -> Invalid {
    Invalid::one("file", message)
}

/// Parses a finite f32, or says (after "line N, ") why the text is not one.
fn parse_value(text: &str, column: &str) -> Result<f32, String> {
    match text.parse::<f32>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err(format!(
            "column `{column}`: `{text}` is not a finite number (NaN and infinities are not accepted)"
        )),
        Err(_) if text.is_empty() => Err(format!("column `{column}`: the value is empty")),
        Err(_) => {
            let shown: String = text.chars().take(40).collect();
            Err(format!("column `{column}`: `{shown}` is not a number"))
        }
    }
}

/// 1-based line number of the record whose parse began at byte offset `byte`
/// (the csv crate's position points before any blank lines it skipped).
fn line_at(content: &[u8], byte: u64) -> u64 {
    let split = usize::try_from(byte).map_or(content.len(), |b| b.min(content.len()));
    let (before, after) = content.split_at(split);
    let mut newlines = before.iter().filter(|&&b| b == b'\n').count() as u64;
    for &b in after {
        match b {
            b'\n' => newlines += 1,
            b'\r' => {}
            _ => break,
        }
    }
    newlines + 1
}

/// Reads a CSV file's content. CPU bound: call inside `spawn_blocking`.
pub fn read_csv(
    content: &[u8],
    label_column: Option<&str>,
    max_rows: usize,
    max_features: usize,
) -> Result<CsvTable, Invalid> {
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(true)
        // Ragged rows are reported by us, with the line, rather than by the csv crate.
        .flexible(true)
        .trim(::csv::Trim::All)
        .from_reader(content);

    let headers = reader.headers().map_err(|e| csv_error(&e))?.clone();
    if headers.is_empty() || (headers.len() == 1 && headers[0].is_empty()) {
        return Err(invalid(
            "is empty: expected a header row and at least one data row",
        ));
    }
    let width = headers.len();
    let names: Vec<String> = headers.iter().map(str::to_string).collect();
    if let Some((i, _)) = names.iter().enumerate().find(|(_, n)| n.is_empty()) {
        return Err(invalid(format!(
            "line 1: column {} has an empty name",
            i + 1
        )));
    }
    for (i, n) in names.iter().enumerate() {
        if names[..i].contains(n) {
            return Err(invalid(format!("line 1: column `{n}` appears twice")));
        }
    }
    let label_index = match label_column {
        Some(want) => names.iter().position(|n| n == want).ok_or_else(|| {
            Invalid::one(
                "label_column",
                format!(
                    "no column named `{want}`; the header has {}",
                    names
                        .iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })?,
        None => width - 1,
    };
    if width < 2 {
        return Err(invalid(
            "line 1: needs at least two columns (one or more features and the label)",
        ));
    }
    let features = width - 1;
    if features > max_features {
        return Err(invalid(format!(
            "has {features} feature columns; at most {max_features} are accepted"
        )));
    }

    let mut x: Vec<f32> = Vec::new();
    let mut y: Vec<f32> = Vec::new();
    let mut record = ::csv::StringRecord::new();
    let mut rows = 0usize;
    loop {
        match reader.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(csv_error(&e)),
        }
        // The csv crate does not count blank lines, so the line of an error is
        // recomputed from the record's byte offset (only when there is an error).
        let line = || line_at(content, record.position().map_or(0, |p| p.byte()));
        // A blank line reads as one empty field; skip it rather than call it ragged.
        if record.len() == 1 && record[0].is_empty() {
            continue;
        }
        if record.len() != width {
            return Err(invalid(format!(
                "line {}: expected {width} fields, found {}",
                line(),
                record.len()
            )));
        }
        if rows == max_rows {
            return Err(invalid(format!("has more than {max_rows} rows")));
        }
        for (i, text) in record.iter().enumerate() {
            let v = parse_value(text, &names[i])
                .map_err(|m| invalid(format!("line {}, {m}", line())))?;
            if i == label_index {
                y.push(v);
            } else {
                x.push(v);
            }
        }
        rows += 1;
    }
    if rows == 0 {
        return Err(invalid("has a header row but no data rows"));
    }
    let label = names[label_index].clone();
    let feature_names = names
        .into_iter()
        .enumerate()
        .filter(|(i, _)| *i != label_index)
        .map(|(_, n)| n)
        .collect();
    Ok(CsvTable {
        x,
        y,
        rows,
        feature_names,
        label_column: label,
    })
}

fn csv_error(e: &::csv::Error) -> Invalid {
    let line = e.position().map(|p| p.line());
    let what = match e.kind() {
        ::csv::ErrorKind::Utf8 { .. } => "is not valid UTF-8 text".to_string(),
        ::csv::ErrorKind::Io(io) => format!("cannot be read: {io}"),
        _ => format!("is not valid CSV: {e}"),
    };
    match line {
        Some(line) => invalid(format!("line {line}: {what}")),
        None => invalid(what),
    }
}
