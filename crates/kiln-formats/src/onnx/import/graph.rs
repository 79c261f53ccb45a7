//! The graph as kiln walks it: which node makes and which nodes read each value,
//! the constants (initializers and `Constant` nodes), the one real input, and a
//! topological order computed from the edges (node order in a file is not trusted).

use std::collections::{HashMap, HashSet, VecDeque};

use super::{invalid, tensor};
use crate::onnx::proto::{GraphProto, NodeProto, TensorProto, ValueInfoProto};
use kiln_nn::validation::Invalid;

pub(super) struct Graph<'a> {
    pub nodes: &'a [NodeProto],
    pub outputs: &'a [ValueInfoProto],
    /// The one graph input that is not an initializer.
    pub input: &'a ValueInfoProto,
    /// Node indices, every producer before its consumers.
    pub order: Vec<usize>,
    producer: HashMap<&'a str, usize>,
    consumers: HashMap<&'a str, Vec<usize>>,
    initializers: HashMap<&'a str, &'a TensorProto>,
    constants: HashMap<&'a str, TensorProto>,
}

/// `node "fc2" (Gemm)`, or the node's position and first output when it has no name.
pub(super) fn describe(node: &NodeProto, index: usize) -> String {
    if node.name().is_empty() {
        let out = node.output.first().map_or("", String::as_str);
        format!("node #{index} ({} making \"{out}\")", node.op_type())
    } else {
        format!("node \"{}\" ({})", node.name(), node.op_type())
    }
}

impl<'a> Graph<'a> {
    pub fn build(g: &'a GraphProto) -> Result<Self, Invalid> {
        if let Some(s) = g.sparse_initializer.first() {
            let name = s.values.as_ref().map_or("", |v| v.name());
            return Err(invalid(format!(
                "tensor \"{name}\" is a sparse initializer; kiln reads dense initializers"
            )));
        }
        let initializers: HashMap<&str, &TensorProto> =
            g.initializer.iter().map(|t| (t.name(), t)).collect();
        let real: Vec<&ValueInfoProto> = g
            .input
            .iter()
            .filter(|i| !initializers.contains_key(i.name()))
            .collect();
        let input = match real.as_slice() {
            [one] => *one,
            [] => return Err(invalid("the graph has no input (other than initializers)")),
            many => {
                let names: Vec<String> = many.iter().map(|i| format!("\"{}\"", i.name())).collect();
                return Err(invalid(format!(
                    "the graph has {} inputs ({}); kiln imports networks with one input",
                    many.len(),
                    names.join(", ")
                )));
            }
        };

        let nodes = g.node.as_slice();
        let mut producer: HashMap<&str, usize> = HashMap::new();
        let mut constants = HashMap::new();
        for (i, node) in nodes.iter().enumerate() {
            for out in node.output.iter().filter(|o| !o.is_empty()) {
                let clash = if let Some(&j) = producer.get(out.as_str()) {
                    Some(describe(&nodes[j], j))
                } else if initializers.contains_key(out.as_str()) {
                    Some("an initializer".to_string())
                } else if out == input.name() {
                    Some("the graph input".to_string())
                } else {
                    None
                };
                if let Some(other) = clash {
                    return Err(invalid(format!(
                        "{} makes \"{out}\", which {other} already makes; each value must have one producer",
                        describe(node, i)
                    )));
                }
                producer.insert(out.as_str(), i);
            }
            if node.op_type() == "Constant" && is_default_domain(node) {
                let t = tensor::constant_node(node, &describe(node, i))?;
                if let Some(out) = node.output.first() {
                    constants.insert(out.as_str(), t);
                }
            }
        }

        let mut consumers: HashMap<&str, Vec<usize>> = HashMap::new();
        let mut indegree = vec![0usize; nodes.len()];
        let mut successors: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
        let mut predecessors: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
        for (i, node) in nodes.iter().enumerate() {
            let mut seen = HashSet::new();
            for name in node.input.iter().filter(|n| !n.is_empty()) {
                if !seen.insert(name.as_str()) {
                    continue;
                }
                consumers.entry(name.as_str()).or_default().push(i);
                if let Some(&p) = producer.get(name.as_str()) {
                    indegree[i] += 1;
                    successors[p].push(i);
                    predecessors[i].push(p);
                } else if !initializers.contains_key(name.as_str()) && name != input.name() {
                    return Err(invalid(format!(
                        "{} reads \"{name}\", which no node, initializer or graph input makes",
                        describe(node, i)
                    )));
                }
            }
        }

        // Kahn's algorithm; whatever is left over lies on or behind a cycle.
        let mut ready: VecDeque<usize> = (0..nodes.len()).filter(|&i| indegree[i] == 0).collect();
        let mut order = Vec::with_capacity(nodes.len());
        while let Some(i) = ready.pop_front() {
            order.push(i);
            for &s in &successors[i] {
                indegree[s] -= 1;
                if indegree[s] == 0 {
                    ready.push_back(s);
                }
            }
        }
        if order.len() < nodes.len() {
            // Walking back through unfinished predecessors for as many steps as there
            // are nodes must end on a cycle.
            let mut at = (0..nodes.len()).find(|&i| indegree[i] > 0).unwrap_or(0);
            for _ in 0..nodes.len() {
                match predecessors[at].iter().find(|&&p| indegree[p] > 0) {
                    Some(&p) => at = p,
                    None => break,
                }
            }
            return Err(invalid(format!(
                "the graph has a cycle through {}; an ONNX graph must be acyclic",
                describe(&nodes[at], at)
            )));
        }

        for out in &g.output {
            let name = out.name();
            if !producer.contains_key(name)
                && !initializers.contains_key(name)
                && name != input.name()
            {
                return Err(invalid(format!(
                    "graph output \"{name}\" is made by no node, initializer or graph input"
                )));
            }
        }

        Ok(Self {
            nodes,
            outputs: &g.output,
            input,
            order,
            producer,
            consumers,
            initializers,
            constants,
        })
    }

    /// The constant named `name`: an initializer or a `Constant` node's output.
    pub fn constant(&self, name: &str) -> Option<&TensorProto> {
        self.initializers
            .get(name)
            .copied()
            .or_else(|| self.constants.get(name))
    }

    /// The node making `name`.
    pub fn producer(&self, name: &str) -> Option<usize> {
        self.producer.get(name).copied()
    }

    /// The nodes reading `name` (each once).
    pub fn consumers(&self, name: &str) -> &[usize] {
        self.consumers.get(name).map_or(&[], Vec::as_slice)
    }

    pub fn node(&self, i: usize) -> &'a NodeProto {
        &self.nodes[i]
    }

    pub fn describe(&self, i: usize) -> String {
        describe(&self.nodes[i], i)
    }

    pub fn is_graph_output(&self, name: &str) -> bool {
        self.outputs.iter().any(|o| o.name() == name)
    }

    /// Whether node `i` is the default-domain op `op`.
    pub fn is_op(&self, i: usize, op: &str) -> bool {
        let n = &self.nodes[i];
        n.op_type() == op && is_default_domain(n)
    }

    /// The first output of node `i`.
    pub fn output(&self, i: usize) -> Option<&'a str> {
        self.nodes[i].output.first().map(String::as_str)
    }

    /// The one node among `needed` that reads `value`, if exactly one does.
    pub fn sole_consumer(&self, value: &str, needed: &HashSet<usize>) -> Option<usize> {
        match self
            .consumers(value)
            .iter()
            .filter(|i| needed.contains(i))
            .collect::<Vec<_>>()
            .as_slice()
        {
            [one] => Some(**one),
            _ => None,
        }
    }

    /// The single float value of a one-element constant, if `name` is one.
    pub fn scalar(&self, name: &str) -> Option<f32> {
        let t = self.constant(name)?;
        tensor::floats(t, "").ok()?.scalar().copied()
    }
}

pub(super) fn is_default_domain(node: &NodeProto) -> bool {
    matches!(node.domain(), "" | "ai.onnx")
}
