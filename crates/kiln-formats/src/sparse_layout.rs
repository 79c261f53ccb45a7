//! Pruned weight matrices stored as CSR inside a kiln safetensors file.
//!
//! A magnitude-pruned layer is mostly exact zeros; storing it dense would make
//! pruning a saving only in name. When it is smaller, the weight `layers.{i}.weight`
//! (`[in, out]`) is replaced by three tensors that `scipy.sparse.csr_matrix((values,
//! indices, indptr), shape=(in, out))` reads directly:
//! * `layers.{i}.weight.values`  F32 `[nnz]`, the non-zero weights, row by row;
//! * `layers.{i}.weight.indices` U16 `[nnz]` (I32 when `out` > 65 536), their columns, ascending within a row;
//! * `layers.{i}.weight.indptr`  I32 `[in + 1]`, where each row starts in `values`.
//!
//! The header's `__metadata__.sparse_layout` lists the layers stored this way
//! (`{"layers.0.weight": "csr"}`). A dense F32 weight costs 4 bytes per entry,
//! CSR 6 (or 8) per non-zero plus the row pointers; [`should_store_csr`] picks
//! the smaller.

use ndarray::{Array2, ArrayView2};
use safetensors::{Dtype, SafeTensors};

use kiln_nn::validation::Invalid;

/// The metadata key naming the layers stored as CSR.
pub const METADATA_KEY: &str = "sparse_layout";

/// Column indices fit in `u16` up to this many columns.
const U16_COLUMNS: usize = 1 << 16;

/// One tensor to write: name, dtype, shape, little-endian bytes.
pub type RawTensor = (String, Dtype, Vec<usize>, Vec<u8>);

fn index_bytes(cols: usize) -> usize {
    if cols <= U16_COLUMNS { 2 } else { 4 }
}

/// True when CSR takes fewer bytes than the dense F32 matrix.
pub fn should_store_csr(w: ArrayView2<f32>) -> bool {
    let nnz = w.iter().filter(|v| **v != 0.0).count();
    let csr = nnz * (4 + index_bytes(w.ncols())) + (w.nrows() + 1) * 4;
    csr < w.len() * 4
}

/// The three CSR tensors of `w`, named after `name` (e.g. `layers.0.weight`).
pub fn encode_csr(name: &str, w: ArrayView2<f32>) -> Vec<RawTensor> {
    let wide = index_bytes(w.ncols()) == 4;
    let mut values = Vec::new();
    let mut indices = Vec::new();
    let mut indptr = Vec::with_capacity((w.nrows() + 1) * 4);
    let mut nnz: i32 = 0;
    indptr.extend_from_slice(&nnz.to_le_bytes());
    for row in w.rows() {
        for (j, &v) in row.iter().enumerate() {
            if v != 0.0 {
                values.extend_from_slice(&v.to_le_bytes());
                if wide {
                    indices.extend_from_slice(&(j as i32).to_le_bytes());
                } else {
                    indices.extend_from_slice(&(j as u16).to_le_bytes());
                }
                nnz += 1;
            }
        }
        indptr.extend_from_slice(&nnz.to_le_bytes());
    }
    let n = nnz as usize;
    vec![
        (format!("{name}.values"), Dtype::F32, vec![n], values),
        (
            format!("{name}.indices"),
            if wide { Dtype::I32 } else { Dtype::U16 },
            vec![n],
            indices,
        ),
        (
            format!("{name}.indptr"),
            Dtype::I32,
            vec![w.nrows() + 1],
            indptr,
        ),
    ]
}

/// The names [`encode_csr`] writes for `name`.
pub fn tensor_names(name: &str) -> [String; 3] {
    [
        format!("{name}.values"),
        format!("{name}.indices"),
        format!("{name}.indptr"),
    ]
}

fn invalid(message: String) -> Invalid {
    Invalid::one("file", message)
}

/// A 1-D tensor of one of `dtypes`: its dtype, bytes and length.
fn tensor_1d<'a>(
    st: &'a SafeTensors<'_>,
    name: &str,
    dtypes: &[Dtype],
) -> Result<(Dtype, &'a [u8], usize), Invalid> {
    let (dtype, data, shape) = super::tensor::checked(st, name, dtypes)?;
    let [len] = shape[..] else {
        return Err(invalid(format!(
            "tensor {name} must be one-dimensional; it has shape {shape:?}"
        )));
    };
    Ok((dtype, data, len))
}

/// Reads the CSR tensors of `name` back into a dense `[rows, cols]` matrix,
/// checking every pointer and index so a crafted file cannot panic or lie.
pub fn decode_csr(
    st: &SafeTensors<'_>,
    name: &str,
    rows: usize,
    cols: usize,
) -> Result<Array2<f32>, Invalid> {
    let [vn, inn, pn] = tensor_names(name);
    let (_, vbytes, nnz) = tensor_1d(st, &vn, &[Dtype::F32])?;
    let (idtype, ibytes, ilen) = tensor_1d(st, &inn, &[Dtype::U16, Dtype::I32])?;
    let (_, pbytes, plen) = tensor_1d(st, &pn, &[Dtype::I32])?;
    if ilen != nnz {
        return Err(invalid(format!(
            "{inn} has {ilen} entries but {vn} has {nnz}"
        )));
    }
    if plen != rows + 1 {
        return Err(invalid(format!(
            "{pn} has {plen} entries; a [{rows}, {cols}] matrix needs {}",
            rows + 1
        )));
    }
    if nnz > rows.saturating_mul(cols) {
        return Err(invalid(format!(
            "{vn} holds {nnz} values, more than a [{rows}, {cols}] matrix has"
        )));
    }
    let indptr: Vec<i32> = pbytes
        .chunks_exact(4)
        .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let indices: Vec<usize> = match idtype {
        Dtype::U16 => ibytes
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]) as usize)
            .collect(),
        _ => ibytes
            .chunks_exact(4)
            .map(|c| {
                usize::try_from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])).unwrap_or(usize::MAX)
            })
            .collect(),
    };
    let values: Vec<f32> = vbytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    if indptr.first() != Some(&0) || indptr.last().map(|&p| p as usize) != Some(nnz) {
        return Err(invalid(format!(
            "{pn} must start at 0 and end at the number of values ({nnz})"
        )));
    }
    let mut w = Array2::zeros((rows, cols));
    for r in 0..rows {
        let (start, end) = (indptr[r], indptr[r + 1]);
        if start < 0 || end < start || end as usize > nnz {
            return Err(invalid(format!("{pn} is not non-decreasing at row {r}")));
        }
        let mut last: Option<usize> = None;
        for k in start as usize..end as usize {
            let c = indices[k];
            if c >= cols || last.is_some_and(|l| c <= l) {
                return Err(invalid(format!(
                    "{inn}[{k}] = {c} is out of range or not ascending in row {r} ({cols} columns)"
                )));
            }
            let v = values[k];
            if !v.is_finite() {
                return Err(invalid(format!(
                    "tensor {vn} holds a non-finite value ({v}) at index {k}"
                )));
            }
            w[(r, c)] = v;
            last = Some(c);
        }
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn csr_is_chosen_only_when_it_is_smaller() {
        let dense = Array2::<f32>::ones((10, 10));
        assert!(!should_store_csr(dense.view()));
        let mut sparse = Array2::<f32>::zeros((10, 10));
        sparse[(3, 4)] = 1.0;
        assert!(should_store_csr(sparse.view()));
        // 40% density: 40·6 + 11·4 = 284 < 400 bytes.
        let forty =
            Array2::from_shape_fn((10, 10), |(i, j)| if (i + j) % 5 < 2 { 1.0 } else { 0.0 });
        assert!(should_store_csr(forty.view()));
    }

    #[test]
    fn csr_tensors_hold_the_values_columns_and_row_pointers() {
        let w = array![[0.0f32, 2.0, 0.0], [0.0, 0.0, 0.0], [1.5, 0.0, -3.0]];
        let t = encode_csr("layers.0.weight", w.view());
        assert_eq!(t[0].0, "layers.0.weight.values");
        assert_eq!(t[0].2, vec![3]);
        let values: Vec<f32> = t[0]
            .3
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(values, vec![2.0, 1.5, -3.0]);
        assert_eq!(t[1].1, Dtype::U16);
        let cols: Vec<u16> = t[1]
            .3
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        assert_eq!(cols, vec![1, 0, 2]);
        let ptr: Vec<i32> = t[2]
            .3
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(ptr, vec![0, 1, 1, 3]);
    }
}
