//! Reading one tensor of a kiln safetensors file without trusting it.

use safetensors::{Dtype, SafeTensors};

use kiln_nn::validation::Invalid;

fn invalid(message: String) -> Invalid {
    Invalid::one("file", message)
}

/// Bytes per element of the dtypes kiln writes.
fn element_size(dtype: Dtype) -> usize {
    match dtype {
        Dtype::U8 | Dtype::I8 | Dtype::BOOL => 1,
        Dtype::U16 | Dtype::I16 | Dtype::F16 | Dtype::BF16 => 2,
        Dtype::F64 | Dtype::I64 | Dtype::U64 => 8,
        _ => 4,
    }
}

/// Tensor `name`: present, of one of `dtypes`, with as many bytes as its shape
/// says (the safetensors crate checks this too; a crafted file is re-checked).
/// Returns its dtype, bytes and shape; every problem names field `file`.
pub fn checked<'a>(
    st: &'a SafeTensors<'_>,
    name: &str,
    dtypes: &[Dtype],
) -> Result<(Dtype, &'a [u8], Vec<usize>), Invalid> {
    let t = st
        .tensor(name)
        .map_err(|_| invalid(format!("tensor {name} is missing")))?;
    if !dtypes.contains(&t.dtype()) {
        return Err(invalid(format!(
            "tensor {name} has dtype {:?}; expected {}",
            t.dtype(),
            dtypes
                .iter()
                .map(|d| format!("{d:?}"))
                .collect::<Vec<_>>()
                .join(" or ")
        )));
    }
    let elements = t.shape().iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    let data = t.data();
    if elements.and_then(|n| n.checked_mul(element_size(t.dtype()))) != Some(data.len()) {
        return Err(invalid(format!(
            "tensor {name} has the wrong number of bytes"
        )));
    }
    Ok((t.dtype(), data, t.shape().to_vec()))
}

/// [`checked`] for one dtype and an exact shape.
pub fn exact<'a>(
    st: &'a SafeTensors<'_>,
    name: &str,
    dtype: Dtype,
    shape: &[usize],
) -> Result<&'a [u8], Invalid> {
    let (_, data, got) = checked(st, name, &[dtype])?;
    if got != shape {
        return Err(invalid(format!(
            "tensor {name} has shape {got:?}; expected {shape:?}"
        )));
    }
    Ok(data)
}
