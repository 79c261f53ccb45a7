//! Uploaded dataset files (CSV or NPZ) into a checked [`Dataset`], and the
//! normalised NPZ form the jobs read so they never parse CSV again.
//!
//! Images (an NPZ `x` of rank 3 or 4, or rows with an `input_shape`) are kept
//! as rows flattened channels first, with their `[C, H, W]`; see [`super::layout`].
//!
//! Parsing works on the upload's bytes as the blob store hands them over (the
//! blobs never give out a file path); the upload is held once, as those bytes,
//! while it is parsed. All of it is CPU work: call inside `spawn_blocking`.
//!
//! The task is taken from the client or inferred from the labels:
//! all integral with exactly the values {0, 1} → binary; all integral, at least
//! three distinct values, all in `0..k` with `k ≤ 1000` → multiclass (k classes);
//! anything else → regression.

use std::fmt;
use std::path::Path;

use ndarray::{Array1, Array2};

use super::layout::{Layout, to_rows};
use super::{csv, npz};
use kiln_nn::data::{Dataset, Task};
use kiln_nn::validation::Invalid;

pub use super::npz::{read_npz, write_npz};

/// Most classes an inferred multiclass task may have.
pub const MAX_INFERRED_CLASSES: usize = 1000;
/// Most classes an explicit `task=multiclass` may have.
pub const MAX_CLASSES: usize = 65_536;

/// How to read an upload.
#[derive(Debug, Clone, Default)]
pub struct ParseOptions {
    /// The upload's file name; its extension helps choose the format.
    pub filename: Option<String>,
    /// CSV only: the label column's name (default: the last column).
    pub label_column: Option<String>,
    /// The task; inferred from the labels when absent.
    pub task: Option<Task>,
    pub max_rows: usize,
    pub max_features: usize,
    /// How image values are ordered (see [`layout`](super::layout)); channels first when absent.
    pub layout: Option<Layout>,
    /// `[C, H, W]` of one example: makes CSV and 2-D NPZ rows images.
    pub input_shape: Option<Vec<usize>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatasetFormat {
    Csv,
    Npz,
}

impl DatasetFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            DatasetFormat::Csv => "csv",
            DatasetFormat::Npz => "npz",
        }
    }
}

impl fmt::Display for DatasetFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A checked dataset and what the upload said about it.
#[derive(Debug, Clone)]
pub struct ParsedDataset {
    pub dataset: Dataset,
    pub format: DatasetFormat,
    /// The CSV column the labels came from.
    pub label_column: Option<String>,
    /// CSV header names of the feature columns, in order.
    pub feature_names: Option<Vec<String>>,
}

/// Zip local-file or empty-archive magic: the file is an NPZ whatever its name.
fn looks_like_zip(head: &[u8]) -> bool {
    head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06")
}

/// Chooses the format: zip content is NPZ; otherwise a `.npz` name is NPZ
/// (and fails as a broken archive); everything else is read as CSV.
pub fn detect_format(content: &[u8], filename: Option<&str>) -> Result<DatasetFormat, Invalid> {
    if content.is_empty() {
        return Err(Invalid::one("file", "is empty"));
    }
    let named_npz = filename.is_some_and(|f| f.to_ascii_lowercase().ends_with(".npz"));
    Ok(if looks_like_zip(content) || named_npz {
        DatasetFormat::Npz
    } else {
        DatasetFormat::Csv
    })
}

/// Parses and checks a local file (the command line's datasets). I/O and CPU
/// bound: call inside `spawn_blocking`.
pub fn parse_path(path: &Path, options: &ParseOptions) -> Result<ParsedDataset, Invalid> {
    let content =
        std::fs::read(path).map_err(|e| Invalid::one("file", format!("cannot be read: {e}")))?;
    parse_bytes(&content, options)
}

/// Parses and checks an uploaded file's content. CPU bound: call inside `spawn_blocking`.
pub fn parse_bytes(content: &[u8], options: &ParseOptions) -> Result<ParsedDataset, Invalid> {
    let format = detect_format(content, options.filename.as_deref())?;
    match format {
        DatasetFormat::Csv => {
            let table = csv::read_csv(
                content,
                options.label_column.as_deref(),
                options.max_rows,
                options.max_features,
            )?;
            let features = table.feature_names.len();
            let x = Array2::from_shape_vec((table.rows, features), table.x)
                .map_err(|e| Invalid::one("file", format!("inconsistent table: {e}")))?;
            let (x, input_shape) = shape_rows(x, None, options)?;
            let y = Array1::from(table.y);
            let dataset = build(x, y, options.task, "label_column", input_shape)?;
            Ok(ParsedDataset {
                dataset,
                format,
                label_column: Some(table.label_column),
                feature_names: Some(table.feature_names),
            })
        }
        DatasetFormat::Npz => {
            if options.label_column.is_some() {
                return Err(Invalid::one(
                    "label_column",
                    "applies to CSV files only; an NPZ file has its labels in `y`",
                ));
            }
            let read = npz::read_xy(
                content,
                options.max_rows,
                options.max_features,
                options.layout.unwrap_or_default(),
            )?;
            let (x, input_shape) = shape_rows(read.x, read.image_shape, options)?;
            let dataset = build(x, read.y, options.task, "file", input_shape)?;
            Ok(ParsedDataset {
                dataset,
                format,
                label_column: None,
                feature_names: None,
            })
        }
    }
}

/// Makes feature rows images when the upload says they are: `image_shape` is
/// what an NPZ's array rank already said, `options.input_shape` what the
/// client said; the two must agree, and a client's shape must cover each row.
fn shape_rows(
    x: Array2<f32>,
    image_shape: Option<Vec<usize>>,
    options: &ParseOptions,
) -> Result<(Array2<f32>, Option<Vec<usize>>), Invalid> {
    match (image_shape, &options.input_shape) {
        (Some(found), Some(given)) if &found != given => Err(Invalid::one(
            "input_shape",
            format!(
                "is {given:?}, but the file's images are {found:?} (channels first, read as {})",
                options.layout.unwrap_or_default()
            ),
        )),
        (Some(found), _) => Ok((x, Some(found))),
        (None, Some(given)) => {
            let size: usize = given.iter().product();
            if size != x.ncols() {
                return Err(Invalid::one(
                    "input_shape",
                    format!(
                        "{given:?} holds {size} values, but each row has {} features",
                        x.ncols()
                    ),
                ));
            }
            let rows = to_rows(x.into_dyn(), given, options.layout.unwrap_or_default())?;
            Ok((rows, Some(given.clone())))
        }
        (None, None) if options.layout.is_some() => Err(Invalid::one(
            "layout",
            "applies to images only: give input_shape, or upload an NPZ whose x is [rows, H, W], [rows, C, H, W] or [rows, H, W, C]",
        )),
        (None, None) => Ok((x, None)),
    }
}

/// What the labels look like, enough to infer and check a task.
struct LabelSummary {
    all_integral: bool,
    min: f32,
    max: f32,
    /// Distinct integral values seen, up to `MAX_INFERRED_CLASSES + 1`.
    distinct: std::collections::BTreeSet<i64>,
}

fn summarize(y: &Array1<f32>) -> LabelSummary {
    let mut s = LabelSummary {
        all_integral: true,
        min: f32::INFINITY,
        max: f32::NEG_INFINITY,
        distinct: Default::default(),
    };
    for &v in y {
        s.min = s.min.min(v);
        s.max = s.max.max(v);
        if v.fract() != 0.0 {
            s.all_integral = false;
        } else if s.distinct.len() <= MAX_INFERRED_CLASSES {
            s.distinct.insert(v as i64);
        }
    }
    s
}

/// Infers the task from the labels (see the module documentation).
pub fn infer_task(y: &Array1<f32>) -> Task {
    let s = summarize(y);
    infer(&s)
}

fn infer(s: &LabelSummary) -> Task {
    if !s.all_integral {
        return Task::Regression;
    }
    let distinct: Vec<i64> = s.distinct.iter().copied().collect();
    if distinct == [0, 1] {
        Task::Binary
    } else if distinct.len() >= 3 && s.min >= 0.0 && (s.max as usize) < MAX_INFERRED_CLASSES {
        Task::Multiclass
    } else {
        Task::Regression
    }
}

/// Checks the labels against the task (given or inferred) and builds the dataset.
/// `label_field` names where the labels came from (`label_column` for CSV, `file` for NPZ).
fn build(
    x: Array2<f32>,
    y: Array1<f32>,
    task: Option<Task>,
    label_field: &str,
    input_shape: Option<Vec<usize>>,
) -> Result<Dataset, Invalid> {
    let s = summarize(&y);
    let explicit = task.is_some();
    let task = task.unwrap_or_else(|| infer(&s));
    // An explicit task that the labels contradict is the `task` field's fault.
    let field = if explicit { "task" } else { label_field };
    let first_bad = |ok: &dyn Fn(f32) -> bool| y.iter().position(|&v| !ok(v));
    let classes = match task {
        Task::Binary => {
            if let Some(i) = first_bad(&|v| v == 0.0 || v == 1.0) {
                return Err(Invalid::one(
                    field,
                    format!("binary labels must be 0 or 1; row {} has {}", i + 1, y[i]),
                ));
            }
            2
        }
        Task::Multiclass => {
            if let Some(i) = first_bad(&|v| v >= 0.0 && v.fract() == 0.0) {
                return Err(Invalid::one(
                    field,
                    format!(
                        "multiclass labels must be class indices 0, 1, 2, …; row {} has {}",
                        i + 1,
                        y[i]
                    ),
                ));
            }
            let classes = s.max as usize + 1;
            if classes > MAX_CLASSES {
                return Err(Invalid::one(
                    field,
                    format!(
                        "multiclass labels go up to {}; at most {MAX_CLASSES} classes are accepted",
                        s.max
                    ),
                ));
            }
            if classes < 2 {
                return Err(Invalid::one(
                    field,
                    "multiclass labels need at least two classes",
                ));
            }
            classes
        }
        Task::Regression => 0,
    };
    Ok(Dataset {
        x,
        y,
        task,
        classes,
        input_shape,
    })
}

#[cfg(test)]
mod tests;
