//! The graph under construction: unique value names, initializers and nodes in the order they
//! run, so the exporters of each layer only say what they add.

use std::collections::HashSet;

use super::super::proto::attribute_proto::AttributeType;
use super::super::proto::tensor_proto::DataType;
use super::super::proto::{AttributeProto, NodeProto, TensorProto};

/// Nodes and initializers of one graph, with every value name taken so far.
pub(super) struct GraphBuilder {
    taken: HashSet<String>,
    pub nodes: Vec<NodeProto>,
    pub initializers: Vec<TensorProto>,
}

impl GraphBuilder {
    /// A builder whose values never take the `reserved` names (the graph's input and output).
    pub fn new(reserved: &[&str]) -> Self {
        Self {
            taken: reserved.iter().map(|s| s.to_string()).collect(),
            nodes: Vec::new(),
            initializers: Vec::new(),
        }
    }

    /// `base`, or `base_1`, `base_2`, … when taken (a user's input may be called `layers.0.bias`).
    pub fn fresh(&mut self, base: &str) -> String {
        let mut name = base.to_string();
        let mut n = 1;
        while self.taken.contains(&name) {
            name = format!("{base}_{n}");
            n += 1;
        }
        self.taken.insert(name.clone());
        name
    }

    /// Adds an initializer named after `base`; returns its name.
    pub fn initializer(
        &mut self,
        base: &str,
        dtype: DataType,
        dims: &[usize],
        raw: Vec<u8>,
    ) -> String {
        let name = self.fresh(base);
        self.initializers.push(TensorProto {
            name: Some(name.clone()),
            data_type: Some(dtype as i32),
            dims: dims
                .iter()
                .map(|&d| i64::try_from(d).unwrap_or(i64::MAX))
                .collect(),
            raw_data: Some(raw),
            ..Default::default()
        });
        name
    }

    /// An int64 initializer of `values` (a `Reshape` target).
    pub fn int64s(&mut self, base: &str, values: &[i64]) -> String {
        let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializer(base, DataType::Int64, &[values.len()], raw)
    }

    /// A float initializer of `values` (little-endian, as ONNX `raw_data` is).
    pub fn floats(
        &mut self,
        base: &str,
        dims: &[usize],
        values: impl IntoIterator<Item = f32>,
    ) -> String {
        let raw = values.into_iter().flat_map(f32::to_le_bytes).collect();
        self.initializer(base, DataType::Float, dims, raw)
    }

    /// Appends node `name` running `op` on `inputs`; its outputs are named `name` (the first)
    /// and `name` + each of `more_outputs`. Returns the output names.
    pub fn node(
        &mut self,
        op: &str,
        name: &str,
        inputs: &[&str],
        more_outputs: &[&str],
        attribute: Vec<AttributeProto>,
    ) -> Vec<String> {
        let mut output = vec![self.fresh(name)];
        for suffix in more_outputs {
            output.push(self.fresh(&format!("{name}{suffix}")));
        }
        self.nodes.push(NodeProto {
            name: Some(name.to_string()),
            op_type: Some(op.to_string()),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: output.clone(),
            attribute,
            ..Default::default()
        });
        output
    }

    /// [`node`](Self::node) with one output, returned.
    pub fn op(
        &mut self,
        op: &str,
        name: &str,
        inputs: &[&str],
        attribute: Vec<AttributeProto>,
    ) -> String {
        let mut out = self.node(op, name, inputs, &[], attribute);
        out.pop().unwrap_or_default()
    }

    /// Gives the last node's first output the name `output` (reserved at [`new`](Self::new)),
    /// making it the graph's result. `false` when there is no node.
    pub fn finish(&mut self, output: &str) -> bool {
        match self.nodes.last_mut().and_then(|n| n.output.first_mut()) {
            Some(last) => {
                *last = output.to_string();
                true
            }
            None => false,
        }
    }
}

/// An attribute of `kind` named `name`, its value still to set.
pub(in crate::onnx) fn attribute(name: &str, kind: AttributeType) -> AttributeProto {
    AttributeProto {
        name: Some(name.to_string()),
        r#type: Some(kind as i32),
        ..Default::default()
    }
}

pub(in crate::onnx) fn attr_int(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        i: Some(value),
        ..attribute(name, AttributeType::Int)
    }
}

pub(in crate::onnx) fn attr_ints(
    name: &str,
    values: impl IntoIterator<Item = usize>,
) -> AttributeProto {
    AttributeProto {
        ints: values
            .into_iter()
            .map(|v| i64::try_from(v).unwrap_or(i64::MAX))
            .collect(),
        ..attribute(name, AttributeType::Ints)
    }
}

pub(in crate::onnx) fn attr_float(name: &str, value: f32) -> AttributeProto {
    AttributeProto {
        f: Some(value),
        ..attribute(name, AttributeType::Float)
    }
}

pub(in crate::onnx) fn attr_string(name: &str, value: &str) -> AttributeProto {
    AttributeProto {
        s: Some(value.as_bytes().to_vec()),
        ..attribute(name, AttributeType::String)
    }
}
