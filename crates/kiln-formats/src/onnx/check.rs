//! kiln's structural check of an ONNX model: the guarantees kiln makes about every graph it
//! writes, checked before the bytes leave ([`super::export`] runs it on what it built).
//!
//! It is deliberately narrower than `onnx.checker`: only the operators kiln writes are known
//! (see [`OPS`]), and only their attributes. What it does check, it checks completely: the
//! IR version and default-domain opset are present and new enough for every operator; nodes
//! are in topological order (every input is a graph input, an initializer or an earlier
//! node's output); no name is produced twice; graph inputs and outputs are tensors with
//! shapes; every initializer holds exactly the bytes its dims and data type claim; every
//! graph output is produced. It never panics, whatever the message holds.

use std::collections::{HashMap, HashSet};

use super::proto::attribute_proto::AttributeType;
use super::proto::tensor_proto::{DataLocation, DataType};
use super::proto::tensor_shape_proto::dimension::Value as Dim;
use super::proto::type_proto::Value as TypeValue;
use super::proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto, ValueInfoProto,
};

#[cfg(test)]
mod tests;

/// What is wrong and where: `at` names the model part (`node "layers.0.gemm" (Gemm)`,
/// `initializer "layers.0.weight"`, `graph output "y"`, `model`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {problem}")]
pub struct CheckError {
    pub at: String,
    pub problem: String,
}

fn fail<T>(at: impl Into<String>, problem: impl Into<String>) -> Result<T, CheckError> {
    Err(CheckError {
        at: at.into(),
        problem: problem.into(),
    })
}

/// One attribute an operator takes.
struct AttrSpec {
    name: &'static str,
    kind: AttributeType,
    required: bool,
}

const fn attr(name: &'static str, kind: AttributeType) -> AttrSpec {
    AttrSpec {
        name,
        kind,
        required: false,
    }
}

/// An operator kiln writes: the opset whose semantics kiln relies on, input and output counts,
/// and the attributes it may carry.
struct OpSpec {
    op: &'static str,
    since: i64,
    inputs: (usize, usize),
    outputs: (usize, usize),
    attrs: &'static [AttrSpec],
}

const fn op(
    op: &'static str,
    since: i64,
    inputs: (usize, usize),
    outputs: (usize, usize),
    attrs: &'static [AttrSpec],
) -> OpSpec {
    OpSpec {
        op,
        since,
        inputs,
        outputs,
        attrs,
    }
}

use AttributeType::{Float, Int, Ints, String as Str};

/// Every operator kiln writes, default domain.
const OPS: &[OpSpec] = &[
    op(
        "Gemm",
        13,
        (2, 3),
        (1, 1),
        &[
            attr("alpha", Float),
            attr("beta", Float),
            attr("transA", Int),
            attr("transB", Int),
        ],
    ),
    op("MatMul", 13, (2, 2), (1, 1), &[]),
    op("Add", 14, (2, 2), (1, 1), &[]),
    op("Relu", 14, (1, 1), (1, 1), &[]),
    // relu6 as Clip(x, 0, 6): the bounds are inputs since opset 13's version.
    op("Clip", 13, (1, 3), (1, 1), &[]),
    op("LeakyRelu", 16, (1, 1), (1, 1), &[attr("alpha", Float)]),
    op("Sigmoid", 13, (1, 1), (1, 1), &[]),
    op("Tanh", 13, (1, 1), (1, 1), &[]),
    op("Softmax", 13, (1, 1), (1, 1), &[attr("axis", Int)]),
    op("Gelu", 20, (1, 1), (1, 1), &[attr("approximate", Str)]),
    op(
        "QuantizeLinear",
        13,
        (2, 3),
        (1, 1),
        &[
            attr("axis", Int),
            attr("saturate", Int),
            attr("block_size", Int),
            attr("output_dtype", Int),
        ],
    ),
    op(
        "DequantizeLinear",
        13,
        (2, 3),
        (1, 1),
        &[attr("axis", Int), attr("block_size", Int)],
    ),
    op("DynamicQuantizeLinear", 11, (1, 1), (3, 3), &[]),
    op(
        "Conv",
        11,
        (2, 3),
        (1, 1),
        &[
            attr("auto_pad", Str),
            attr("dilations", Ints),
            attr("group", Int),
            attr("kernel_shape", Ints),
            attr("pads", Ints),
            attr("strides", Ints),
        ],
    ),
    op(
        "MaxPool",
        12,
        (1, 1),
        (1, 2),
        &[
            attr("auto_pad", Str),
            attr("ceil_mode", Int),
            attr("dilations", Ints),
            attr("kernel_shape", Ints),
            attr("pads", Ints),
            attr("storage_order", Int),
            attr("strides", Ints),
        ],
    ),
    op(
        "AveragePool",
        11,
        (1, 1),
        (1, 1),
        &[
            attr("auto_pad", Str),
            attr("ceil_mode", Int),
            attr("count_include_pad", Int),
            attr("kernel_shape", Ints),
            attr("pads", Ints),
            attr("strides", Ints),
        ],
    ),
    op("GlobalAveragePool", 1, (1, 1), (1, 1), &[]),
    op("Flatten", 13, (1, 1), (1, 1), &[attr("axis", Int)]),
    op("Reshape", 14, (2, 2), (1, 1), &[attr("allowzero", Int)]),
    op(
        "BatchNormalization",
        15,
        (5, 5),
        (1, 3),
        &[
            attr("epsilon", Float),
            attr("momentum", Float),
            attr("training_mode", Int),
        ],
    ),
];

/// The default (`ai.onnx`) domain, however it is spelled.
fn default_domain(domain: &str) -> bool {
    domain.is_empty() || domain == "ai.onnx"
}

/// Checks `model` (see the module doc); the first problem found is the error.
pub fn check(model: &ModelProto) -> Result<(), CheckError> {
    match model.ir_version {
        None => return fail("model", "ir_version is missing"),
        Some(v) if v < super::MIN_IR_VERSION => {
            return fail(
                "model",
                format!(
                    "ir_version {v} is older than {}, the oldest kiln reads",
                    super::MIN_IR_VERSION
                ),
            );
        }
        Some(_) => {}
    }
    let opsets: Vec<i64> = model
        .opset_import
        .iter()
        .filter(|o| default_domain(o.domain()))
        .map(|o| o.version())
        .collect();
    let opset = match opsets[..] {
        [v] if v >= 1 => v,
        [v] => {
            return fail(
                "model",
                format!("the default-domain opset {v} is not valid"),
            );
        }
        [] => return fail("model", "no default-domain (ai.onnx) opset is imported"),
        _ => {
            return fail(
                "model",
                "the default-domain opset is imported more than once",
            );
        }
    };
    let Some(graph) = &model.graph else {
        return fail("model", "the model has no graph");
    };
    check_graph(graph, opset)
}

fn check_graph(graph: &GraphProto, opset: i64) -> Result<(), CheckError> {
    if graph.input.is_empty() {
        return fail("graph", "the graph has no input");
    }
    if graph.output.is_empty() {
        return fail("graph", "the graph has no output");
    }
    if let Some(s) = graph.sparse_initializer.first() {
        let name = s.values.as_ref().map_or("", |v| v.name());
        return fail(
            format!("sparse initializer {name:?}"),
            "kiln writes no sparse initializers",
        );
    }
    let mut names = Names::default();
    for (i, input) in graph.input.iter().enumerate() {
        let at = format!("graph input #{i} {:?}", input.name());
        check_value_info(input, &at)?;
        names.define(input.name(), &at)?;
    }
    for t in &graph.initializer {
        let at = format!("initializer {:?}", t.name());
        if t.name().is_empty() {
            return fail(at, "the initializer has no name");
        }
        check_initializer(t, &at)?;
        names.define(t.name(), &at)?;
    }
    for (i, node) in graph.node.iter().enumerate() {
        check_node(node, i, opset, &mut names)?;
    }
    let mut outputs = HashSet::new();
    for (i, output) in graph.output.iter().enumerate() {
        let at = format!("graph output #{i} {:?}", output.name());
        check_value_info(output, &at)?;
        if !outputs.insert(output.name()) {
            return fail(at, "the graph lists this output twice");
        }
        if !names.defined.contains_key(output.name()) {
            return fail(at, "no node produces this output");
        }
    }
    Ok(())
}

/// Every value name defined so far, with what defined it.
#[derive(Default)]
struct Names<'a> {
    defined: HashMap<&'a str, String>,
}

impl<'a> Names<'a> {
    fn define(&mut self, name: &'a str, at: &str) -> Result<(), CheckError> {
        if name.is_empty() {
            return fail(at, "a value has an empty name");
        }
        match self.defined.get(name) {
            Some(first) => fail(
                at,
                format!("the name {name:?} is produced twice (first by {first})"),
            ),
            None => {
                self.defined.insert(name, at.to_string());
                Ok(())
            }
        }
    }
}

/// A graph input or output: a typed tensor whose every dimension is a number or a name.
fn check_value_info(v: &ValueInfoProto, at: &str) -> Result<(), CheckError> {
    if v.name().is_empty() {
        return fail(at, "the value has no name");
    }
    let Some(TypeValue::TensorType(t)) = v.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
        return fail(at, "the value is not typed as a tensor");
    };
    if DataType::try_from(t.elem_type()).map_or(true, |d| d == DataType::Undefined) {
        return fail(
            at,
            format!("the tensor's element type {} is not valid", t.elem_type()),
        );
    }
    let Some(shape) = &t.shape else {
        return fail(at, "the tensor has no shape");
    };
    for (k, d) in shape.dim.iter().enumerate() {
        match &d.value {
            Some(Dim::DimValue(n)) if *n >= 0 => {}
            Some(Dim::DimParam(p)) if !p.is_empty() => {}
            Some(Dim::DimValue(n)) => return fail(at, format!("dimension {k} is {n}")),
            _ => return fail(at, format!("dimension {k} has neither a size nor a name")),
        }
    }
    Ok(())
}

/// How many values a tensor's typed field holds.
type TypedLen = fn(&TensorProto) -> usize;

/// Bytes per element of the data types kiln writes, and the typed field holding them when
/// `raw_data` is not used.
fn element(dt: DataType) -> Option<(usize, TypedLen)> {
    fn int32(t: &TensorProto) -> usize {
        t.int32_data.len()
    }
    Some(match dt {
        DataType::Float => (4, |t| t.float_data.len()),
        DataType::Double => (8, |t| t.double_data.len()),
        DataType::Int8 | DataType::Uint8 | DataType::Bool => (1, int32),
        DataType::Int16 | DataType::Uint16 | DataType::Float16 => (2, int32),
        DataType::Int32 => (4, int32),
        DataType::Int64 => (8, |t| t.int64_data.len()),
        DataType::Uint32 => (4, |t| t.uint64_data.len()),
        DataType::Uint64 => (8, |t| t.uint64_data.len()),
        _ => return None,
    })
}

/// The initializer's data is exactly what its dims and data type claim.
fn check_initializer(t: &TensorProto, at: &str) -> Result<(), CheckError> {
    let dt = DataType::try_from(t.data_type()).unwrap_or(DataType::Undefined);
    let Some((size, typed_len)) = element(dt) else {
        return fail(
            at,
            format!(
                "data type {} ({}) is not one kiln writes",
                t.data_type(),
                dt.as_str_name()
            ),
        );
    };
    if t.data_location() == DataLocation::External || !t.external_data.is_empty() {
        return fail(at, "the data is stored externally; kiln writes it inline");
    }
    let mut count: u64 = 1;
    for &d in &t.dims {
        let d = u64::try_from(d).map_err(|_| CheckError {
            at: at.into(),
            problem: format!("dims {:?} hold a negative size", t.dims),
        })?;
        count = count.checked_mul(d).ok_or_else(|| CheckError {
            at: at.into(),
            problem: format!("dims {:?} overflow", t.dims),
        })?;
    }
    let typed = typed_len(t);
    let other_fields = [
        t.float_data.len(),
        t.int32_data.len(),
        t.int64_data.len(),
        t.double_data.len(),
        t.uint64_data.len(),
        t.string_data.len(),
    ]
    .iter()
    .sum::<usize>()
        - typed;
    if other_fields > 0 {
        return fail(
            at,
            format!(
                "values are stored in a field that does not hold {} data",
                dt.as_str_name()
            ),
        );
    }
    match &t.raw_data {
        Some(raw) => {
            if typed > 0 {
                return fail(
                    at,
                    "the data is stored both as raw_data and as typed values",
                );
            }
            let expected = count.checked_mul(size as u64);
            if expected != Some(raw.len() as u64) {
                return fail(
                    at,
                    format!(
                        "raw_data holds {} bytes; dims {:?} of {} need {}",
                        raw.len(),
                        t.dims,
                        dt.as_str_name(),
                        expected.map_or("more than 2^64".to_string(), |e| e.to_string())
                    ),
                );
            }
        }
        None if typed as u64 != count => {
            return fail(
                at,
                format!(
                    "the tensor holds {typed} values; dims {:?} need {count}",
                    t.dims
                ),
            );
        }
        None => {}
    }
    Ok(())
}

/// How a node is named in errors: by its name when it has one, else by its position.
fn node_label(node: &NodeProto, index: usize) -> String {
    match node.name() {
        "" => format!("node #{index} ({})", node.op_type()),
        name => format!("node {name:?} ({})", node.op_type()),
    }
}

fn check_node<'a>(
    node: &'a NodeProto,
    index: usize,
    opset: i64,
    names: &mut Names<'a>,
) -> Result<(), CheckError> {
    let at = node_label(node, index);
    if !default_domain(node.domain()) {
        return fail(
            at,
            format!(
                "domain {:?} is not one kiln writes (only the default ai.onnx domain)",
                node.domain()
            ),
        );
    }
    let Some(spec) = OPS.iter().find(|s| s.op == node.op_type()) else {
        let known: Vec<&str> = OPS.iter().map(|s| s.op).collect();
        return fail(
            at,
            format!(
                "op type {:?} is not one kiln writes ({})",
                node.op_type(),
                known.join(", ")
            ),
        );
    };
    if opset < spec.since {
        return fail(
            at,
            format!(
                "{} needs opset {} or newer; the model imports opset {opset}",
                spec.op, spec.since
            ),
        );
    }
    let count = |what: &str, n: usize, (lo, hi): (usize, usize)| {
        if (lo..=hi).contains(&n) {
            Ok(())
        } else if lo == hi {
            fail(&at, format!("{what}: {n} given; {} takes {lo}", spec.op))
        } else {
            fail(
                &at,
                format!("{what}: {n} given; {} takes {lo} to {hi}", spec.op),
            )
        }
    };
    count("inputs", node.input.len(), spec.inputs)?;
    count("outputs", node.output.len(), spec.outputs)?;
    for (k, input) in node.input.iter().enumerate() {
        if input.is_empty() {
            return fail(&at, format!("input #{k} is empty"));
        }
        if !names.defined.contains_key(input.as_str()) {
            return fail(
                &at,
                format!(
                    "input {input:?} is not a graph input, an initializer or an earlier node's output"
                ),
            );
        }
    }
    let mut seen = HashSet::new();
    for a in &node.attribute {
        check_attribute(a, spec, &at)?;
        if !seen.insert(a.name()) {
            return fail(&at, format!("attribute {:?} is given twice", a.name()));
        }
    }
    if let Some(missing) = spec
        .attrs
        .iter()
        .find(|s| s.required && !seen.contains(s.name))
    {
        return fail(
            &at,
            format!("the required attribute {:?} is missing", missing.name),
        );
    }
    for output in &node.output {
        names.define(output, &at)?;
    }
    Ok(())
}

fn check_attribute(a: &AttributeProto, spec: &OpSpec, at: &str) -> Result<(), CheckError> {
    let Some(s) = spec.attrs.iter().find(|s| s.name == a.name()) else {
        return fail(
            at,
            format!("attribute {:?} is not one {} takes", a.name(), spec.op),
        );
    };
    let kind = a.r#type();
    let has_value = match s.kind {
        Float => a.f.is_some(),
        Int => a.i.is_some(),
        Str => a.s.is_some(),
        // Every list kiln writes (kernel shapes, strides, pads, dilations) is of sizes.
        Ints => !a.ints.is_empty() && a.ints.iter().all(|&v| v >= 0),
        _ => false,
    };
    if kind != s.kind || !has_value {
        return fail(
            at,
            format!(
                "attribute {:?} must be a {} (found type {})",
                a.name(),
                s.kind.as_str_name(),
                kind.as_str_name()
            ),
        );
    }
    match (spec.op, a.name()) {
        ("Gelu", "approximate") if !matches!(a.s(), b"none" | b"tanh") => fail(
            at,
            format!(
                "approximate must be \"none\" or \"tanh\"; found {:?}",
                String::from_utf8_lossy(a.s())
            ),
        ),
        ("Gemm", "transA" | "transB") if !matches!(a.i(), 0 | 1) => {
            fail(at, format!("{} must be 0 or 1; found {}", a.name(), a.i()))
        }
        _ => Ok(()),
    }
}
