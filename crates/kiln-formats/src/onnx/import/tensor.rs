//! Reading initializer and `Constant` tensors. A file controls every size it
//! claims, so element counts are computed with checked arithmetic and compared
//! with the bytes actually present before anything is allocated.

use super::invalid;
use crate::onnx::proto::tensor_proto::{DataLocation, DataType};
use crate::onnx::proto::{AttributeProto, NodeProto, TensorProto};
use kiln_nn::validation::Invalid;

/// A constant's shape and values, as kiln computes with them.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Values<T> {
    pub dims: Vec<usize>,
    pub values: Vec<T>,
}

impl<T> Values<T> {
    /// The only value of a one-element tensor (`[]`, `[1]`, `[1, 1]`, …).
    pub fn scalar(&self) -> Option<&T> {
        match self.values.as_slice() {
            [v] => Some(v),
            _ => None,
        }
    }
}

/// The name of an ONNX element type, for messages.
pub(super) fn type_name(data_type: i32) -> String {
    DataType::try_from(data_type)
        .map(|t| t.as_str_name().to_string())
        .unwrap_or_else(|_| format!("data type {data_type}"))
}

/// Float weights (float or double in the file; doubles become f32).
pub(super) fn floats(t: &TensorProto, user: &str) -> Result<Values<f32>, Invalid> {
    let (dims, count) = shape(t, user)?;
    let values = match DataType::try_from(t.data_type()) {
        Ok(DataType::Float) => read(t, user, count, 4, &t.float_data, |c| {
            f32::from_le_bytes([c[0], c[1], c[2], c[3]])
        })?,
        Ok(DataType::Double) => read(t, user, count, 8, &t.double_data, |c| {
            f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])
        })?
        .into_iter()
        .map(|v| v as f32)
        .collect(),
        _ => {
            return Err(invalid(format!(
                "tensor \"{}\" (used by {user}) holds {}; kiln reads FLOAT or DOUBLE weights",
                t.name(),
                type_name(t.data_type())
            )));
        }
    };
    Ok(Values { dims, values })
}

/// Integer constants (shapes for `Reshape`, flags): INT64, INT32 or BOOL.
pub(super) fn ints(t: &TensorProto, user: &str) -> Result<Values<i64>, Invalid> {
    let (dims, count) = shape(t, user)?;
    let values = match DataType::try_from(t.data_type()) {
        Ok(DataType::Int64) => read(t, user, count, 8, &t.int64_data, |c| {
            i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])
        })?,
        Ok(DataType::Int32) => read(t, user, count, 4, &t.int32_data, |c| {
            i32::from_le_bytes([c[0], c[1], c[2], c[3]])
        })?
        .into_iter()
        .map(i64::from)
        .collect(),
        Ok(DataType::Bool) => read(t, user, count, 1, &t.int32_data, |c| i32::from(c[0]))?
            .into_iter()
            .map(i64::from)
            .collect(),
        _ => {
            return Err(invalid(format!(
                "tensor \"{}\" (used by {user}) holds {}; kiln expects INT64 or INT32 here",
                t.name(),
                type_name(t.data_type())
            )));
        }
    };
    Ok(Values { dims, values })
}

/// Rejects external data and computes the claimed element count without overflow.
fn shape(t: &TensorProto, user: &str) -> Result<(Vec<usize>, usize), Invalid> {
    if t.data_location() == DataLocation::External || !t.external_data.is_empty() {
        let location = t
            .external_data
            .iter()
            .find(|e| e.key() == "location")
            .map_or_else(
                || "no location given".to_string(),
                |e| format!("location \"{}\"", e.value()),
            );
        return Err(invalid(format!(
            "tensor \"{}\" (used by {user}) is stored in external data ({location}); kiln reads \
             self-contained files: save with onnx.save_model(m, path, save_as_external_data=False)",
            t.name()
        )));
    }
    let mut dims = Vec::with_capacity(t.dims.len().min(16));
    let mut count: usize = 1;
    for &d in &t.dims {
        let d = usize::try_from(d).map_err(|_| {
            invalid(format!(
                "tensor \"{}\" (used by {user}) has a negative dimension in {:?}",
                t.name(),
                t.dims
            ))
        })?;
        count = count.checked_mul(d).ok_or_else(|| {
            invalid(format!(
                "tensor \"{}\" (used by {user}) claims dims {:?}, more elements than can exist",
                t.name(),
                t.dims
            ))
        })?;
        dims.push(d);
    }
    Ok((dims, count))
}

/// The values from `raw_data` (little-endian, `width` bytes each) or the typed field,
/// after checking that the data holds exactly the `count` elements the dims claim.
fn read<T: Copy>(
    t: &TensorProto,
    user: &str,
    count: usize,
    width: usize,
    typed: &[T],
    from_le: impl Fn(&[u8]) -> T,
) -> Result<Vec<T>, Invalid> {
    let mismatch = |held: String| {
        invalid(format!(
            "tensor \"{}\" (used by {user}) claims dims {:?} = {count} {} values but its data holds \
             {held}",
            t.name(),
            t.dims,
            type_name(t.data_type())
        ))
    };
    match t.raw_data.as_deref() {
        Some(raw) if !raw.is_empty() || typed.is_empty() => {
            if count.checked_mul(width) != Some(raw.len()) {
                return Err(mismatch(format!("{} bytes of raw_data", raw.len())));
            }
            Ok(raw.chunks_exact(width).map(from_le).collect())
        }
        _ => {
            if typed.len() != count {
                return Err(mismatch(format!("{} values", typed.len())));
            }
            Ok(typed.to_vec())
        }
    }
}

/// The tensor a `Constant` node makes (`value`, `value_float(s)`, `value_int(s)`).
pub(super) fn constant_node(node: &NodeProto, user: &str) -> Result<TensorProto, Invalid> {
    let name = node.output.first().cloned().unwrap_or_default();
    let Some(attr) = node.attribute.first() else {
        return Err(invalid(format!("{user}: a Constant node without a value")));
    };
    let float = |dims: Vec<i64>, values: Vec<f32>| TensorProto {
        dims,
        data_type: Some(DataType::Float as i32),
        float_data: values,
        ..TensorProto::default()
    };
    let int = |dims: Vec<i64>, values: Vec<i64>| TensorProto {
        dims,
        data_type: Some(DataType::Int64 as i32),
        int64_data: values,
        ..TensorProto::default()
    };
    let mut t = match attr.name() {
        "value" => attr.t.clone().ok_or_else(|| no_value(user, attr))?,
        "value_float" => float(vec![], vec![attr.f.ok_or_else(|| no_value(user, attr))?]),
        "value_floats" => float(vec![len(&attr.floats)], attr.floats.clone()),
        "value_int" => int(vec![], vec![attr.i.ok_or_else(|| no_value(user, attr))?]),
        "value_ints" => int(vec![len(&attr.ints)], attr.ints.clone()),
        other => {
            return Err(invalid(format!(
                "{user}: a Constant with attribute \"{other}\" is not supported; kiln reads \
                 value, value_float(s) and value_int(s)"
            )));
        }
    };
    t.name = Some(name);
    Ok(t)
}

fn len<T>(v: &[T]) -> i64 {
    i64::try_from(v.len()).unwrap_or(i64::MAX)
}

fn no_value(user: &str, attr: &AttributeProto) -> Invalid {
    invalid(format!(
        "{user}: the Constant's attribute \"{}\" holds no value",
        attr.name()
    ))
}
