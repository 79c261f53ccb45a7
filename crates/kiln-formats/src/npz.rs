//! NPZ datasets (NumPy `savez` / `savez_compressed`): `x` or `X` of shape
//! `[rows, features]` or images `[rows, H, W]`, `[rows, C, H, W]`, `[rows, H, W, C]`
//! (any real or integer dtype) and `y` of shape `[rows]` or `[rows, 1]`
//! (any real or integer dtype, or bool).
//!
//! Also kiln's own normalised form, which the jobs read: `x` f32 rows, `y` f32,
//! the task and class count as one-element arrays, and `input_shape` for
//! images, written uncompressed.

use std::io::{Cursor, Read, Seek};

use ndarray::{Array1, Array2, ArrayD, Ix2, IxDyn};
use ndarray_npy::{
    NpzReader, NpzWriter, ReadNpyError, ReadNpzError, ReadableElement, WriteNpzError,
};

use super::layout::{Layout, channels_first, to_rows};
use kiln_nn::data::{Dataset, Task};
use kiln_nn::validation::Invalid;

fn invalid(message: impl Into<String>) -> Invalid {
    Invalid::one("file", message)
}

fn describe(e: &ReadNpzError) -> String {
    match e {
        ReadNpzError::Zip(z) => {
            format!("is not a readable NPZ (zip) archive, or it is truncated: {z}")
        }
        ReadNpzError::Npy(ReadNpyError::MissingData) => {
            "is truncated: an array has fewer values than its shape says".into()
        }
        ReadNpzError::Npy(n) => format!("holds an array kiln cannot read: {n}"),
    }
}

fn open(content: &[u8]) -> Result<NpzReader<Cursor<&[u8]>>, Invalid> {
    NpzReader::new(Cursor::new(content)).map_err(|e| invalid(describe(&e)))
}

/// Most values (`rows × features`) an uploaded feature array may hold: 1 GiB as f32,
/// about what the largest CSV within the upload limit could hold.
pub const MAX_VALUES: usize = 1 << 28;

/// Shapes of arrays in an uploaded NPZ, read from the npy headers alone.
///
/// ndarray-npy allocates whatever a header claims before reading any data, so
/// a few hundred bytes could ask for terabytes and abort the process; every
/// shape is checked against the limits before a single value is read.
struct Headers<'a> {
    archive: zip::ZipArchive<Cursor<&'a [u8]>>,
}

impl<'a> Headers<'a> {
    fn open(content: &'a [u8]) -> Result<Self, Invalid> {
        let archive = zip::ZipArchive::new(Cursor::new(content)).map_err(|e| {
            invalid(format!(
                "is not a readable NPZ (zip) archive, or it is truncated: {e}"
            ))
        })?;
        Ok(Headers { archive })
    }

    fn shape(&mut self, name: &str) -> Result<Vec<usize>, Invalid> {
        let entry = if self.archive.index_for_name(name).is_some() {
            name.to_string()
        } else {
            format!("{name}.npy")
        };
        let file = self
            .archive
            .by_name(&entry)
            .map_err(|e| invalid(format!("array `{name}` cannot be read: {e}")))?;
        npy_shape(file).map_err(|m| invalid(format!("array `{name}` {m}")))
    }
}

/// The `shape` of an npy stream's header.
fn npy_shape(mut r: impl Read) -> Result<Vec<usize>, String> {
    let truncated = |_| "is truncated or not an npy array".to_string();
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic).map_err(truncated)?;
    if &magic[..6] != b"\x93NUMPY" {
        return Err("is not an npy array".into());
    }
    let header_len = if magic[6] == 1 {
        let mut n = [0u8; 2];
        r.read_exact(&mut n).map_err(truncated)?;
        usize::from(u16::from_le_bytes(n))
    } else {
        let mut n = [0u8; 4];
        r.read_exact(&mut n).map_err(truncated)?;
        u32::from_le_bytes(n) as usize
    };
    if header_len > 1 << 16 {
        return Err("has an implausibly long npy header".into());
    }
    let mut header = vec![0u8; header_len];
    r.read_exact(&mut header).map_err(truncated)?;
    let header = String::from_utf8_lossy(&header);
    let bad = || {
        format!(
            "has an npy header without a readable shape: {}",
            header.trim()
        )
    };
    let after = header.find("'shape'").ok_or_else(bad)?;
    let open = after + header[after..].find('(').ok_or_else(bad)?;
    let close = open + header[open..].find(')').ok_or_else(bad)?;
    header[open + 1..close]
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| d.trim_end_matches('L').parse::<usize>().map_err(|_| bad()))
        .collect()
}

/// Reads `name` as any of the supported element types, converting to f32.
fn read_any<R: Read + Seek>(npz: &mut NpzReader<R>, name: &str) -> Result<ArrayD<f32>, Invalid> {
    fn attempt<R: Read + Seek, T: ReadableElement + Copy>(
        npz: &mut NpzReader<R>,
        name: &str,
        convert: fn(T) -> f32,
    ) -> Result<Option<ArrayD<f32>>, Invalid> {
        match npz.by_name::<ndarray::OwnedRepr<T>, IxDyn>(name) {
            Ok(a) => Ok(Some(a.mapv(convert))),
            Err(ReadNpzError::Npy(ReadNpyError::WrongDescriptor(_))) => Ok(None),
            Err(e) => Err(invalid(format!("array `{name}` {}", describe(&e)))),
        }
    }
    macro_rules! try_types {
        ($($t:ty),*) => {
            $(if let Some(a) = attempt::<R, $t>(npz, name, |v| v as f32)? { return Ok(a); })*
        };
    }
    try_types!(f32, f64, i64, i32, i16, i8, u64, u32, u16, u8);
    if let Some(a) = attempt::<R, bool>(npz, name, |v| f32::from(u8::from(v)))? {
        return Ok(a);
    }
    Err(invalid(format!(
        "array `{name}` has an unsupported dtype: use float32, float64, an integer type or bool"
    )))
}

/// What an uploaded NPZ holds: rows of features (images flattened channels
/// first), raw labels, and the `[C, H, W]` of one image when `x` had one.
pub struct NpzXy {
    pub x: Array2<f32>,
    pub y: Array1<f32>,
    pub image_shape: Option<Vec<usize>>,
}

/// Features and raw labels of an uploaded NPZ's bytes: `x` is `[rows, features]`,
/// or images `[rows, H, W]` / `[rows, C, H, W]` / `[rows, H, W, C]` ordered as
/// `layout` says (see [`super::layout`]). CPU bound: call inside `spawn_blocking`.
pub fn read_xy(
    content: &[u8],
    max_rows: usize,
    max_features: usize,
    layout: Layout,
) -> Result<NpzXy, Invalid> {
    let mut npz = open(content)?;
    let names = npz.names().map_err(|e| invalid(describe(&e)))?;
    let x_name = ["x", "X"]
        .into_iter()
        .find(|n| names.iter().any(|m| m == n))
        .ok_or_else(|| {
            invalid(format!(
                "needs an array named `x` (or `X`) for the features; it holds {}",
                list(&names)
            ))
        })?;
    let y_name = ["y", "Y"]
        .into_iter()
        .find(|n| names.iter().any(|m| m == n))
        .ok_or_else(|| {
            invalid(format!(
                "needs an array named `y` for the labels; it holds {}",
                list(&names)
            ))
        })?;

    // Check every shape before reading (and allocating for) any data.
    let mut headers = Headers::open(content)?;
    let x_shape = headers.shape(x_name)?;
    let y_shape = headers.shape(y_name)?;
    if !(2..=4).contains(&x_shape.len()) {
        return Err(invalid(format!(
            "array `{x_name}` must have 2 dimensions [rows, features], or be images [rows, H, W], [rows, C, H, W] or [rows, H, W, C]; it has {} (shape {x_shape:?})",
            x_shape.len()
        )));
    }
    let rows = x_shape[0];
    let features = x_shape[1..]
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .unwrap_or(usize::MAX);
    let image_shape = match x_shape.len() {
        2 => None,
        _ => Some(channels_first(&x_shape[1..], layout).ok_or_else(|| {
            invalid(format!(
                "array `{x_name}` of shape {x_shape:?} is not an image batch"
            ))
        })?),
    };
    if rows > max_rows {
        return Err(invalid(format!(
            "has {rows} rows; at most {max_rows} are accepted"
        )));
    }
    if features > max_features {
        return Err(invalid(format!(
            "has {features} features per row (shape {x_shape:?}); at most {max_features} are accepted"
        )));
    }
    if rows.checked_mul(features).is_none_or(|n| n > MAX_VALUES) {
        return Err(invalid(format!(
            "array `{x_name}` has {rows} × {features} values; at most {MAX_VALUES} are accepted"
        )));
    }
    let y_rows = y_shape.first().copied().unwrap_or(0);
    if matches!(y_shape[..], [_] | [_, 1]) && y_rows != rows {
        return Err(invalid(format!(
            "arrays `{x_name}` and `{y_name}` disagree on the number of rows: {rows} and {y_rows}"
        )));
    }
    if y_shape.len() > 2 || y_shape.iter().skip(1).any(|&d| d != 1) {
        return Err(invalid(format!(
            "array `{y_name}` must have shape [rows] or [rows, 1]; it has shape {y_shape:?}"
        )));
    }

    let x = read_any(&mut npz, x_name)?;
    if x.shape() != x_shape.as_slice() {
        return Err(invalid(format!(
            "array `{x_name}` has shape {:?}, not the {x_shape:?} its header says",
            x.shape()
        )));
    }
    if rows == 0 || features == 0 {
        return Err(invalid(format!(
            "array `{x_name}` is empty (shape {x_shape:?})"
        )));
    }
    let x = match &image_shape {
        None => x
            .into_dimensionality::<Ix2>()
            .map_err(|e| invalid(format!("array `{x_name}`: {e}")))?,
        Some(shape) => to_rows(x, shape, layout)?,
    };
    if let Some(pos) = x.iter().position(|v| !v.is_finite()) {
        return Err(invalid(format!(
            "array `{x_name}` holds a non-finite value (NaN or infinity, or a float64 too large for float32) at row {}, column {}",
            pos / features,
            pos % features
        )));
    }

    let y = read_any(&mut npz, y_name)?;
    let y_rows = y.shape().first().copied().unwrap_or(0);
    let y = match y.shape() {
        [_] => y.into_shape_with_order(y_rows),
        [_, 1] => y.into_shape_with_order(y_rows),
        shape => {
            return Err(invalid(format!(
                "array `{y_name}` must have shape [rows] or [rows, 1]; it has shape {shape:?}"
            )));
        }
    }
    .map_err(|e| invalid(format!("array `{y_name}`: {e}")))?;
    if y_rows != rows {
        return Err(invalid(format!(
            "arrays `{x_name}` and `{y_name}` disagree on the number of rows: {rows} and {y_rows}"
        )));
    }
    if let Some(pos) = y.iter().position(|v| !v.is_finite()) {
        return Err(invalid(format!(
            "array `{y_name}` holds a non-finite value at row {pos}"
        )));
    }
    Ok(NpzXy { x, y, image_shape })
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "no arrays".into()
    } else {
        names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn task_code(task: Task) -> u8 {
    match task {
        Task::Binary => 0,
        Task::Multiclass => 1,
        Task::Regression => 2,
    }
}

fn task_from_code(code: u8) -> Option<Task> {
    match code {
        0 => Some(Task::Binary),
        1 => Some(Task::Multiclass),
        2 => Some(Task::Regression),
        _ => None,
    }
}

/// Encodes a checked dataset in kiln's normalised NPZ form. CPU bound: call inside `spawn_blocking`.
pub fn write_npz(dataset: &Dataset) -> Result<Vec<u8>, WriteNpzError> {
    let mut npz = NpzWriter::new(Cursor::new(Vec::new()));
    npz.add_array("x", &dataset.x)?;
    npz.add_array("y", &dataset.y)?;
    npz.add_array("task", &Array1::from_elem(1, task_code(dataset.task)))?;
    npz.add_array("classes", &Array1::from_elem(1, dataset.classes as u64))?;
    if let Some(shape) = &dataset.input_shape {
        let dims: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
        npz.add_array("input_shape", &Array1::from(dims))?;
    }
    Ok(npz.finish()?.into_inner())
}

/// Reads a dataset written by [`write_npz`] from its bytes. CPU bound: call inside `spawn_blocking`.
pub fn read_npz(content: &[u8]) -> Result<Dataset, Invalid> {
    let mut npz = open(content)?;
    let x: Array2<f32> = npz
        .by_name("x")
        .map_err(|e| invalid(format!("array `x` {}", describe(&e))))?;
    let y: Array1<f32> = npz
        .by_name("y")
        .map_err(|e| invalid(format!("array `y` {}", describe(&e))))?;
    let task: Array1<u8> = npz
        .by_name("task")
        .map_err(|e| invalid(format!("array `task` {}", describe(&e))))?;
    let classes: Array1<u64> = npz
        .by_name("classes")
        .map_err(|e| invalid(format!("array `classes` {}", describe(&e))))?;
    let task = task
        .first()
        .copied()
        .and_then(task_from_code)
        .ok_or_else(|| invalid("array `task` holds no known task"))?;
    let classes = classes
        .first()
        .copied()
        .ok_or_else(|| invalid("array `classes` is empty"))? as usize;
    if x.nrows() != y.len() {
        return Err(invalid("arrays `x` and `y` disagree on the number of rows"));
    }
    // Written only for image datasets (and absent from files older than them).
    let names = npz.names().map_err(|e| invalid(describe(&e)))?;
    let input_shape = if names.iter().any(|n| n == "input_shape") {
        let dims: Array1<u64> = npz
            .by_name("input_shape")
            .map_err(|e| invalid(format!("array `input_shape` {}", describe(&e))))?;
        let dims: Vec<usize> = dims.iter().map(|&d| d as usize).collect();
        if dims.iter().product::<usize>() != x.ncols() {
            return Err(invalid(format!(
                "array `input_shape` {dims:?} does not match {} features",
                x.ncols()
            )));
        }
        Some(dims)
    } else {
        None
    };
    Ok(Dataset {
        x,
        y,
        task,
        classes,
        input_shape,
    })
}
