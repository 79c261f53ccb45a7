//! Which value kiln keeps as the network's output, and what it drops: converters
//! add classifier tails (labels through ArgMax, ZipMap'd probabilities, the binary
//! `[1 − p, p]` pair) that kiln replaces by the probability tensor itself.

use std::collections::HashSet;

use super::graph::{Graph, is_default_domain};
use super::{TAIL_OPS, invalid};
use crate::onnx::proto::tensor_proto::DataType;
use crate::onnx::proto::type_proto;
use kiln_nn::validation::Invalid;

/// The value the imported network computes, and what the import noted about it.
pub(super) struct Kept {
    /// The value the chain must end at.
    pub value: String,
    /// The graph output chosen (the value itself, its ZipMap, or the binary pair).
    pub chosen_output: String,
    pub notes: Vec<String>,
}

enum Kind {
    Float,
    ZipMapOf(String),
    Other(String),
}

fn kind(graph: &Graph, i: usize) -> Kind {
    let out = &graph.outputs[i];
    if let Some(p) = graph.producer(out.name()) {
        let node = graph.node(p);
        if node.op_type() == "ZipMap" {
            return Kind::ZipMapOf(node.input.first().cloned().unwrap_or_default());
        }
    }
    match out.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        None => Kind::Float,
        Some(type_proto::Value::TensorType(t)) if t.elem_type() == DataType::Float as i32 => {
            Kind::Float
        }
        Some(type_proto::Value::TensorType(t)) => Kind::Other(format!(
            "{} tensor",
            super::tensor::type_name(t.elem_type())
        )),
        Some(_) => Kind::Other("not a tensor".into()),
    }
}

/// Picks the kept value: a float tensor output wins, a ZipMap output stands for
/// its input, and `Concat(1 − p, p)` of a sigmoid `p` is read as `p`.
pub(super) fn choose(graph: &Graph) -> Result<Kept, Invalid> {
    let kinds: Vec<Kind> = (0..graph.outputs.len()).map(|i| kind(graph, i)).collect();
    let name = |i: usize| graph.outputs[i].name().to_string();
    let floats: Vec<usize> = (0..kinds.len())
        .filter(|&i| matches!(kinds[i], Kind::Float))
        .collect();
    let zips: Vec<usize> = (0..kinds.len())
        .filter(|&i| matches!(kinds[i], Kind::ZipMapOf(_)))
        .collect();
    let list = |ix: &[usize]| {
        ix.iter()
            .map(|&i| format!("\"{}\"", name(i)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut notes = Vec::new();
    let (mut value, chosen) = match (floats.as_slice(), zips.as_slice()) {
        ([one], _) => (name(*one), *one),
        ([], [one]) => {
            let input = match &kinds[*one] {
                Kind::ZipMapOf(input) => input.clone(),
                _ => String::new(),
            };
            notes.push(format!(
                "\"{}\" is a ZipMap of \"{input}\" in the file; kiln outputs that tensor",
                name(*one)
            ));
            (input, *one)
        }
        ([], []) => {
            let all: Vec<String> = (0..kinds.len())
                .map(|i| match &kinds[i] {
                    Kind::Other(what) => format!("\"{}\" ({what})", name(i)),
                    _ => format!("\"{}\"", name(i)),
                })
                .collect();
            return Err(invalid(format!(
                "no graph output is a float tensor (outputs: {}); kiln imports networks whose output \
                 is a float tensor",
                if all.is_empty() {
                    "none".to_string()
                } else {
                    all.join(", ")
                }
            )));
        }
        (many, []) | ([], many) => {
            return Err(invalid(format!(
                "the graph has {} float outputs ({}); kiln imports networks with one output",
                many.len(),
                list(many)
            )));
        }
        (f, z) => {
            return Err(invalid(format!(
                "the graph has {} float outputs ({}); kiln imports networks with one output",
                f.len(),
                list(f) + ", " + &list(z)
            )));
        }
    };
    if let Some(p) = binary_p(graph, &value) {
        notes.push(format!(
            "binary probabilities [1−p, p] (\"{value}\") are kiln's sigmoid output p (\"{p}\")"
        ));
        value = p;
    }
    Ok(Kept {
        value,
        chosen_output: name(chosen),
        notes,
    })
}

/// `p` when `value` is `Concat([Sub(1, p), p], axis=1)` and `p` is a Sigmoid's output.
fn binary_p(graph: &Graph, value: &str) -> Option<String> {
    let concat = graph.node(graph.producer(value)?);
    let axis = concat
        .attribute
        .iter()
        .find(|a| a.name() == "axis")
        .map(|a| a.i());
    if concat.op_type() != "Concat" || !matches!(axis, Some(1 | -1)) {
        return None;
    }
    let [q, p] = concat.input.as_slice() else {
        return None;
    };
    let sub = graph.node(graph.producer(q)?);
    let [one, sub_p] = sub.input.as_slice() else {
        return None;
    };
    let sigmoid = graph.node(graph.producer(p)?);
    let is_one = graph.scalar(one) == Some(1.0);
    (sub.op_type() == "Sub" && sub_p == p && is_one && sigmoid.op_type() == "Sigmoid")
        .then(|| p.clone())
}

/// The nodes the kept value depends on.
pub(super) fn needed(graph: &Graph, value: &str) -> HashSet<usize> {
    let mut needed = HashSet::new();
    let mut stack: Vec<usize> = graph.producer(value).into_iter().collect();
    while let Some(i) = stack.pop() {
        if needed.insert(i) {
            stack.extend(graph.node(i).input.iter().filter_map(|n| graph.producer(n)));
        }
    }
    needed
}

/// Checks that every node off the chain is a classifier-tail op (or a Constant) and
/// notes each dropped graph output.
pub(super) fn check_dropped(
    graph: &Graph,
    needed: &HashSet<usize>,
    kept: &mut Kept,
) -> Result<(), Invalid> {
    for &i in &graph.order {
        if needed.contains(&i) {
            continue;
        }
        let node = graph.node(i);
        let op = node.op_type();
        let tail = TAIL_OPS.contains(&op) || (op == "Constant" && is_default_domain(node));
        if !tail {
            return Err(invalid(format!(
                "{} is off the chain that computes \"{}\"; kiln drops only classifier-tail nodes \
                 ({}) that feed dropped outputs",
                graph.describe(i),
                kept.value,
                TAIL_OPS.join(", ")
            )));
        }
    }
    for out in graph.outputs {
        let name = out.name();
        if name == kept.chosen_output || name == kept.value {
            continue;
        }
        let ops = dropped_ops(graph, needed, name);
        let labels = ops.iter().any(|o| o == "ArgMax");
        let what = if labels {
            format!(" ({}: class labels)", ops.join(" → "))
        } else if ops.is_empty() {
            String::new()
        } else {
            format!(" ({})", ops.join(" → "))
        };
        let keeps = if labels {
            "the probabilities".to_string()
        } else {
            format!("\"{}\"", kept.value)
        };
        kept.notes.push(format!(
            "output \"{name}\"{what} dropped; kiln keeps {keeps}"
        ));
    }
    Ok(())
}

/// The op types (in graph order, repeats merged) of the dropped nodes making `name`.
fn dropped_ops(graph: &Graph, needed: &HashSet<usize>, name: &str) -> Vec<String> {
    let mut mine = HashSet::new();
    let mut stack: Vec<usize> = graph.producer(name).into_iter().collect();
    while let Some(i) = stack.pop() {
        if !needed.contains(&i) && mine.insert(i) {
            stack.extend(graph.node(i).input.iter().filter_map(|n| graph.producer(n)));
        }
    }
    let mut ops: Vec<String> = Vec::new();
    for &i in &graph.order {
        let op = graph.node(i).op_type();
        if mine.contains(&i) && op != "Constant" && ops.last().map(String::as_str) != Some(op) {
            ops.push(op.to_string());
        }
    }
    ops
}
