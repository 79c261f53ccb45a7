//! A reference interpreter for the graphs kiln writes (tests only): each operator written out
//! from the ONNX operator spec with numpy's semantics (float32 values, products summed in f64,
//! `np.round` half to even, saturation to the integer type), so an export can be run and
//! compared with kiln's own predictions without ONNX Runtime.

pub(super) mod image;

use std::collections::HashMap;

use ndarray::Array2;

use super::proto::tensor_proto::DataType;
use super::proto::{AttributeProto, ModelProto, NodeProto, TensorProto};

/// A tensor: its element type, shape and values (integer codes held exactly as f32).
#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    pub dtype: DataType,
    pub dims: Vec<usize>,
    pub data: Vec<f32>,
}

impl Value {
    pub fn scalar(dtype: DataType, v: f32) -> Self {
        Self {
            dtype,
            dims: Vec::new(),
            data: vec![v],
        }
    }

    pub fn vector(dtype: DataType, data: Vec<f32>) -> Self {
        Self {
            dtype,
            dims: vec![data.len()],
            data,
        }
    }

    pub fn matrix(dtype: DataType, m: &Array2<f32>) -> Self {
        Self {
            dtype,
            dims: m.shape().to_vec(),
            data: m.iter().copied().collect(),
        }
    }

    fn like(&self, dtype: DataType, data: Vec<f32>) -> Self {
        Self {
            dtype,
            dims: self.dims.clone(),
            data,
        }
    }

    fn map(&self, f: impl Fn(f32) -> f32) -> Self {
        self.like(self.dtype, self.data.iter().map(|&v| f(v)).collect())
    }

    pub fn to_matrix(&self) -> Result<Array2<f32>, String> {
        match self.dims[..] {
            [m, n] => Array2::from_shape_vec((m, n), self.data.clone()).map_err(|e| e.to_string()),
            _ => Err(format!("expected a matrix, got dims {:?}", self.dims)),
        }
    }
}

/// The largest elementwise |a − b| of two matrices of one shape.
pub fn max_abs_diff(a: &Array2<f32>, b: &Array2<f32>) -> f32 {
    assert_eq!(a.dim(), b.dim(), "shapes differ");
    a.iter()
        .zip(b)
        .map(|(p, q)| (p - q).abs())
        .fold(0.0, f32::max)
}

/// Runs `model` on `inputs` (by graph input name); returns every graph output by name.
pub fn run(model: &ModelProto, inputs: &[(&str, Value)]) -> Result<HashMap<String, Value>, String> {
    let graph = model.graph.as_ref().ok_or("no graph")?;
    let mut env: HashMap<String, Value> = HashMap::new();
    for t in &graph.initializer {
        env.insert(t.name().to_string(), tensor(t)?);
    }
    for (name, v) in inputs {
        env.insert(name.to_string(), v.clone());
    }
    for node in &graph.node {
        let args: Vec<&Value> = node
            .input
            .iter()
            .map(|n| match n.as_str() {
                // An optional input left out: no values.
                "" => Ok(&NO_VALUE),
                _ => env.get(n).ok_or(format!("{}: no value {n:?}", node.name())),
            })
            .collect::<Result<_, _>>()?;
        let outs =
            eval(node, &args).map_err(|e| format!("{} ({}): {e}", node.name(), node.op_type()))?;
        for (name, v) in node.output.iter().zip(outs) {
            env.insert(name.clone(), v);
        }
    }
    graph
        .output
        .iter()
        .map(|o| {
            env.remove(o.name())
                .map(|v| (o.name().to_string(), v))
                .ok_or(format!("output {:?} not computed", o.name()))
        })
        .collect()
}

/// What an optional input that a node leaves out reads as.
static NO_VALUE: Value = Value {
    dtype: DataType::Float,
    dims: Vec::new(),
    data: Vec::new(),
};

/// An initializer's values (raw little-endian data or the typed field).
fn tensor(t: &TensorProto) -> Result<Value, String> {
    let dtype = DataType::try_from(t.data_type()).map_err(|e| e.to_string())?;
    let dims: Vec<usize> = t.dims.iter().map(|&d| d as usize).collect();
    let data: Vec<f32> = match (dtype, &t.raw_data) {
        (DataType::Float, Some(raw)) => raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        (DataType::Int8, Some(raw)) => raw.iter().map(|&b| f32::from(b as i8)).collect(),
        (DataType::Uint8, Some(raw)) => raw.iter().map(|&b| f32::from(b)).collect(),
        (DataType::Float, None) => t.float_data.clone(),
        (DataType::Int64, Some(raw)) => raw
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
            .collect(),
        (DataType::Int64, None) => t.int64_data.iter().map(|&v| v as f32).collect(),
        (DataType::Int8 | DataType::Uint8, None) => {
            t.int32_data.iter().map(|&v| v as f32).collect()
        }
        _ => return Err(format!("{}: unsupported tensor type {dtype:?}", t.name())),
    };
    Ok(Value { dtype, dims, data })
}

fn attr<'a>(node: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    node.attribute.iter().find(|a| a.name() == name)
}

fn int_attr(node: &NodeProto, name: &str, default: i64) -> i64 {
    attr(node, name).map_or(default, |a| a.i())
}

fn float_attr(node: &NodeProto, name: &str, default: f32) -> f32 {
    attr(node, name).map_or(default, |a| a.f())
}

fn eval(node: &NodeProto, args: &[&Value]) -> Result<Vec<Value>, String> {
    let arg = |k: usize| args.get(k).copied().ok_or(format!("input #{k} missing"));
    let one = |v: Value| Ok(vec![v]);
    match node.op_type() {
        "Gemm" => {
            let a = transpose_if(arg(0)?, int_attr(node, "transA", 0) != 0)?;
            let b = transpose_if(arg(1)?, int_attr(node, "transB", 0) != 0)?;
            let alpha = float_attr(node, "alpha", 1.0);
            let beta = float_attr(node, "beta", 1.0);
            let y = matmul(&a, &b)?.map(|v| alpha * v);
            match args.get(2) {
                Some(c) => one(broadcast(&y, &c.map(|v| beta * v), |p, q| p + q)?),
                None => one(y),
            }
        }
        "MatMul" => one(matmul(arg(0)?, arg(1)?)?),
        "Add" => one(broadcast(arg(0)?, arg(1)?, |p, q| p + q)?),
        "Relu" => one(arg(0)?.map(|v| v.max(0.0))),
        "Clip" => {
            // Bounds are inputs since opset 11 (an absent one is an empty name), attributes before.
            let bound = |k: usize, name: &str, default: f32| {
                args.get(k)
                    .and_then(|v| v.data.first().copied())
                    .or_else(|| attr(node, name).map(|a| a.f()))
                    .unwrap_or(default)
            };
            let (lo, hi) = (bound(1, "min", f32::MIN), bound(2, "max", f32::MAX));
            // max then min: no panic on lo > hi (ONNX then gives hi) or a NaN bound.
            one(arg(0)?.map(|v| v.max(lo).min(hi)))
        }
        "LeakyRelu" => {
            let alpha = float_attr(node, "alpha", 0.01);
            one(arg(0)?.map(|v| if v < 0.0 { alpha * v } else { v }))
        }
        "Sigmoid" => one(arg(0)?.map(|v| (1.0 / (1.0 + (-f64::from(v)).exp())) as f32)),
        "Tanh" => one(arg(0)?.map(|v| f64::from(v).tanh() as f32)),
        "Softmax" => {
            let x = arg(0)?;
            let rank = x.dims.len() as i64;
            let axis = int_attr(node, "axis", -1);
            if axis != -1 && axis != rank - 1 {
                return Err(format!("softmax over axis {axis} is not interpreted"));
            }
            one(softmax_last(x))
        }
        "Gelu" => {
            let tanh = match attr(node, "approximate").map(|a| a.s()) {
                None | Some(b"none") => false,
                Some(b"tanh") => true,
                Some(other) => return Err(format!("approximate {other:?}")),
            };
            one(arg(0)?.map(|v| gelu(f64::from(v), tanh) as f32))
        }
        "QuantizeLinear" => {
            let zp = args.get(2).copied();
            let dtype = zp.map_or(DataType::Uint8, |z| z.dtype);
            let axis = int_attr(node, "axis", 1);
            one(quantize(arg(0)?, arg(1)?, zp, dtype, axis)?)
        }
        "DequantizeLinear" => {
            let axis = int_attr(node, "axis", 1);
            one(dequantize(arg(0)?, arg(1)?, args.get(2).copied(), axis)?)
        }
        "DynamicQuantizeLinear" => Ok(dynamic_quantize(arg(0)?)),
        "Mul" => one(broadcast(arg(0)?, arg(1)?, |p, q| p * q)?),
        "Div" => one(broadcast(arg(0)?, arg(1)?, |p, q| p / q)?),
        "Sub" => one(broadcast(arg(0)?, arg(1)?, |p, q| p - q)?),
        "Erf" => one(arg(0)?.map(|v| libm::erf(f64::from(v)) as f32)),
        "Identity" | "Dropout" | "Cast" => one(arg(0)?.like(DataType::Float, arg(0)?.data.clone())),
        "Flatten" => {
            let x = arg(0)?;
            if int_attr(node, "axis", 1) != 1 {
                return Err("Flatten is interpreted on axis 1 only".into());
            }
            let rest = x.dims.iter().skip(1).product();
            one(Value {
                dims: vec![x.dims.first().copied().unwrap_or(1), rest],
                ..x.clone()
            })
        }
        "Reshape" => {
            let (x, shape) = (arg(0)?, arg(1)?);
            // 0 copies the input's size on that axis, -1 takes what the others leave.
            let size = |k: usize, d: f32| match d {
                0.0 => x.dims.get(k).copied(),
                d if d > 0.0 => Some(d as usize),
                _ => None,
            };
            let sizes: Vec<Option<usize>> = shape
                .data
                .iter()
                .enumerate()
                .map(|(k, &d)| size(k, d))
                .collect();
            let known: usize = sizes.iter().flatten().product();
            let dims: Vec<usize> = sizes
                .iter()
                .map(|s| s.unwrap_or(x.data.len() / known.max(1)))
                .collect();
            if dims.iter().product::<usize>() != x.data.len() {
                return Err(format!("cannot reshape {:?} to {dims:?}", x.dims));
            }
            one(Value { dims, ..x.clone() })
        }
        "Conv" => one(image::conv(node, arg(0)?, arg(1)?, args.get(2).copied())?),
        "MaxPool" => one(image::pool(node, arg(0)?, true)?),
        "AveragePool" => one(image::pool(node, arg(0)?, false)?),
        "GlobalAveragePool" => one(image::global_average(arg(0)?)?),
        "ReduceMean" => {
            // Axes are an attribute before opset 18, an optional input since.
            let axes: Vec<i64> = match args.get(1).filter(|v| !v.data.is_empty()) {
                Some(v) => v.data.iter().map(|&a| a as i64).collect(),
                None => attr(node, "axes")
                    .map(|a| a.ints.clone())
                    .unwrap_or_default(),
            };
            let mut axes: Vec<i64> = axes
                .iter()
                .map(|&a| if a < 0 { a + 4 } else { a })
                .collect();
            axes.sort_unstable();
            if axes != [2, 3] {
                return Err(format!(
                    "ReduceMean is interpreted over axes [2, 3] only, not {axes:?}"
                ));
            }
            let mut y = image::global_average(arg(0)?)?;
            if int_attr(node, "keepdims", 1) == 0 {
                y.dims.truncate(2);
            }
            one(y)
        }
        "Shape" => {
            let x = arg(0)?;
            one(Value {
                dtype: DataType::Int64,
                dims: vec![x.dims.len()],
                data: x.dims.iter().map(|&d| d as f32).collect(),
            })
        }
        "Gather" => {
            let (x, idx) = (arg(0)?, arg(1)?);
            if x.dims.len() != 1 || int_attr(node, "axis", 0) != 0 {
                return Err("Gather is interpreted on 1-D data only".into());
            }
            let data = idx
                .data
                .iter()
                .map(|&i| {
                    let i = if i < 0.0 { i + x.data.len() as f32 } else { i };
                    x.data
                        .get(i as usize)
                        .copied()
                        .ok_or("Gather index out of range")
                })
                .collect::<Result<_, _>>()?;
            one(Value {
                dims: idx.dims.clone(),
                data,
                ..x.clone()
            })
        }
        "Unsqueeze" => {
            let x = arg(0)?;
            let axes: Vec<i64> = match args.get(1) {
                Some(v) => v.data.iter().map(|&a| a as i64).collect(),
                None => attr(node, "axes")
                    .map(|a| a.ints.clone())
                    .unwrap_or_default(),
            };
            let rank = x.dims.len() + axes.len();
            let mut axes: Vec<usize> = axes
                .iter()
                .map(|&a| usize::try_from(if a < 0 { a + rank as i64 } else { a }))
                .collect::<Result<_, _>>()
                .map_err(|e| e.to_string())?;
            axes.sort_unstable();
            let mut dims = x.dims.clone();
            for a in axes {
                if a > dims.len() {
                    return Err(format!("Unsqueeze axis {a} out of range"));
                }
                dims.insert(a, 1);
            }
            one(Value { dims, ..x.clone() })
        }
        "Concat" => {
            if args.iter().any(|v| v.dims.len() != 1) || int_attr(node, "axis", 0) != 0 {
                return Err("Concat is interpreted on 1-D tensors only".into());
            }
            let first = arg(0)?;
            let data: Vec<f32> = args.iter().flat_map(|v| v.data.iter().copied()).collect();
            one(Value {
                dims: vec![data.len()],
                data,
                ..first.clone()
            })
        }
        "BatchNormalization" => {
            if int_attr(node, "training_mode", 0) != 0 {
                return Err("training_mode is not interpreted".into());
            }
            let p = [arg(1)?, arg(2)?, arg(3)?, arg(4)?];
            one(image::batch_norm(
                arg(0)?,
                p,
                float_attr(node, "epsilon", 1e-5),
            )?)
        }
        "Constant" => one(tensor(
            attr(node, "value")
                .and_then(|a| a.t.as_ref())
                .ok_or("no value")?,
        )?),
        other => Err(format!("op {other} is not interpreted")),
    }
}

fn transpose_if(v: &Value, t: bool) -> Result<Value, String> {
    if !t {
        return Ok(v.clone());
    }
    let m = v.to_matrix()?;
    Ok(Value::matrix(v.dtype, &m.t().to_owned()))
}

/// `a [m, k] · b [k, n]`, each sum in f64.
fn matmul(a: &Value, b: &Value) -> Result<Value, String> {
    let (a, b) = (a.to_matrix()?, b.to_matrix()?);
    if a.ncols() != b.nrows() {
        return Err(format!("matmul of {:?} and {:?}", a.shape(), b.shape()));
    }
    let y = Array2::from_shape_fn((a.nrows(), b.ncols()), |(i, j)| {
        (0..a.ncols())
            .map(|t| f64::from(a[(i, t)]) * f64::from(b[(t, j)]))
            .sum::<f64>() as f32
    });
    Ok(Value::matrix(DataType::Float, &y))
}

/// numpy broadcasting of two tensors (dims right-aligned, size 1 stretches).
fn broadcast(a: &Value, b: &Value, f: impl Fn(f32, f32) -> f32) -> Result<Value, String> {
    let rank = a.dims.len().max(b.dims.len());
    let pad = |d: &[usize]| {
        let mut v = vec![1; rank - d.len()];
        v.extend_from_slice(d);
        v
    };
    let (da, db) = (pad(&a.dims), pad(&b.dims));
    let dims: Vec<usize> = da
        .iter()
        .zip(&db)
        .map(|(&x, &y)| match (x, y) {
            (x, y) if x == y => Ok(x),
            (1, y) => Ok(y),
            (x, 1) => Ok(x),
            _ => Err(format!("cannot broadcast {:?} with {:?}", a.dims, b.dims)),
        })
        .collect::<Result<_, _>>()?;
    let total: usize = dims.iter().product();
    let index = |flat: usize, d: &[usize]| {
        let (mut rem, mut idx, mut stride) = (flat, 0, 1);
        for k in (0..rank).rev() {
            let coord = rem % dims[k];
            rem /= dims[k];
            if d[k] != 1 {
                idx += coord * stride;
            }
            stride *= d[k];
        }
        idx
    };
    let data = (0..total)
        .map(|i| f(a.data[index(i, &da)], b.data[index(i, &db)]))
        .collect();
    Ok(Value {
        dtype: a.dtype,
        dims,
        data,
    })
}

fn softmax_last(x: &Value) -> Value {
    let n = x.dims.last().copied().unwrap_or(1).max(1);
    let mut data = Vec::with_capacity(x.data.len());
    for row in x.data.chunks(n) {
        let max = row
            .iter()
            .fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v)));
        let e: Vec<f64> = row.iter().map(|&v| (f64::from(v) - max).exp()).collect();
        let sum: f64 = e.iter().sum();
        data.extend(e.iter().map(|v| (v / sum) as f32));
    }
    x.like(x.dtype, data)
}

fn gelu(x: f64, tanh: bool) -> f64 {
    if tanh {
        let c = (2.0 / std::f64::consts::PI).sqrt();
        0.5 * x * (1.0 + (c * (x + 0.044715 * x.powi(3))).tanh())
    } else {
        0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2))
    }
}

fn range_of(dtype: DataType) -> Result<(f32, f32), String> {
    match dtype {
        DataType::Uint8 => Ok((0.0, 255.0)),
        DataType::Int8 => Ok((-128.0, 127.0)),
        other => Err(format!("quantized type {other:?} is not interpreted")),
    }
}

/// For element `flat` of `x`, the index into a per-axis parameter (0 for a per-tensor one).
fn param_index(x: &Value, p: &Value, axis: i64, flat: usize) -> Result<usize, String> {
    if p.data.len() == 1 && p.dims.iter().product::<usize>() == 1 {
        return Ok(0);
    }
    let rank = x.dims.len() as i64;
    let axis = if axis < 0 { axis + rank } else { axis };
    let a = usize::try_from(axis).map_err(|_| format!("axis {axis}"))?;
    let len = *x
        .dims
        .get(a)
        .ok_or(format!("axis {axis} of {:?}", x.dims))?;
    if p.dims != [len] {
        return Err(format!(
            "parameter dims {:?} for axis {a} of {:?}",
            p.dims, x.dims
        ));
    }
    let stride: usize = x.dims[a + 1..].iter().product();
    Ok(flat / stride % len)
}

/// `saturate(round(x / scale) + zero_point)`, `np.round` being half to even.
fn quantize(
    x: &Value,
    scale: &Value,
    zp: Option<&Value>,
    dtype: DataType,
    axis: i64,
) -> Result<Value, String> {
    let (lo, hi) = range_of(dtype)?;
    let data = (0..x.data.len())
        .map(|i| {
            let k = param_index(x, scale, axis, i)?;
            let z = zp.map_or(0.0, |z| z.data[k]);
            Ok(((x.data[i] / scale.data[k]).round_ties_even() + z).clamp(lo, hi))
        })
        .collect::<Result<_, String>>()?;
    Ok(x.like(dtype, data))
}

/// `(x − zero_point) · scale`.
fn dequantize(x: &Value, scale: &Value, zp: Option<&Value>, axis: i64) -> Result<Value, String> {
    let data = (0..x.data.len())
        .map(|i| {
            let k = param_index(x, scale, axis, i)?;
            let z = zp.map_or(0.0, |z| z.data[k]);
            Ok((x.data[i] - z) * scale.data[k])
        })
        .collect::<Result<_, String>>()?;
    Ok(x.like(DataType::Float, data))
}

/// The spec's `DynamicQuantizeLinear` in float32: the range `[min(0, min x), max(0, max x)]`
/// onto `[0, 255]`, zero point `round(clip(0 − x_min / scale, 0, 255))`.
fn dynamic_quantize(x: &Value) -> Vec<Value> {
    let x_min = x.data.iter().fold(0.0f32, |m, &v| m.min(v));
    let x_max = x.data.iter().fold(0.0f32, |m, &v| m.max(v));
    let scale = (x_max - x_min) / 255.0;
    let zp = (0.0 - x_min / scale).clamp(0.0, 255.0).round_ties_even();
    let y = x.map(|v| ((v / scale).round_ties_even() + zp).clamp(0.0, 255.0));
    vec![
        Value {
            dtype: DataType::Uint8,
            ..y
        },
        Value::scalar(DataType::Float, scale),
        Value::scalar(DataType::Uint8, zp),
    ]
}
