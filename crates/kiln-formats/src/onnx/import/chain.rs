//! Walking from the graph input to the kept value and matching nodes to kiln's
//! layers: a dense layer (Gemm, or MatMul plus an optional constant Add) or a
//! convolution followed by at most one activation, and the image layers of
//! [`image`] (pooling, batch norm). Shape-only and inference-identity nodes
//! (Flatten, Reshape, Identity, Dropout, Cast to float) leave no layer behind,
//! except that a Flatten of an image becomes kiln's `flatten`.

mod image;

use std::collections::HashSet;

use ndarray::{Array1, Array2, ArrayD};

use super::batch_shape::match_batch_reshape;
use super::gelu::match_erf_gelu;
use super::graph::{Graph, is_default_domain};
use super::tensor::{self, Values};
use super::{invalid, unsupported};
use crate::onnx::proto::tensor_proto::DataType;
use crate::onnx::proto::{NodeProto, type_proto};
use kiln_nn::spec::{Activation, LayerSpec};
use kiln_nn::validation::Invalid;

/// One dense layer as read from the file, weights in kiln's `[in, out]` layout.
pub(super) struct Dense {
    pub w: Array2<f32>,
    pub b: Option<Array1<f32>>,
    pub activation: Activation,
    /// The node that set `activation`, for messages.
    activated_by: Option<String>,
}

/// Any other layer: its spec and its tensors under kiln's names and shapes
/// (see `LayerOps::tensors`).
pub(super) struct Other {
    pub spec: LayerSpec,
    pub tensors: Vec<(&'static str, ArrayD<f32>)>,
    activated_by: Option<String>,
}

/// One kiln layer matched in the graph.
pub(super) enum Imported {
    Dense(Dense),
    Other(Other),
}

impl Imported {
    pub fn spec(&self) -> LayerSpec {
        match self {
            Imported::Dense(d) => LayerSpec::Dense {
                units: d.w.ncols(),
                activation: d.activation,
                use_bias: d.b.is_some(),
            },
            Imported::Other(o) => o.spec.clone(),
        }
    }

    /// Whether the layer works on images (kiln needs the input's `[C, H, W]`).
    pub fn is_spatial(&self) -> bool {
        matches!(
            self,
            Imported::Other(Other {
                spec: LayerSpec::Conv2d { .. }
                    | LayerSpec::MaxPool2d { .. }
                    | LayerSpec::AvgPool2d { .. }
                    | LayerSpec::GlobalAvgPool2d,
                ..
            })
        )
    }

    fn activated_by(&self) -> Option<&str> {
        match self {
            Imported::Dense(d) => d.activated_by.as_deref(),
            Imported::Other(o) => o.activated_by.as_deref(),
        }
    }

    /// Sets the activation of a layer that has one; false for layers without.
    fn set_activation(&mut self, act: Activation, by: &str) -> bool {
        let slot = match self {
            Imported::Dense(d) => {
                d.activated_by = Some(by.to_string());
                &mut d.activation
            }
            Imported::Other(Other {
                spec: LayerSpec::Conv2d { activation, .. } | LayerSpec::BatchNorm { activation, .. },
                activated_by,
                ..
            }) => {
                *activated_by = Some(by.to_string());
                activation
            }
            Imported::Other(_) => return false,
        };
        *slot = act;
        true
    }
}

/// The matched network.
pub(super) struct Chain {
    pub layers: Vec<Imported>,
    /// The graph input's `[C, H, W]`, when it declares an image of known size.
    pub input_image: Option<[usize; 3]>,
    /// The graph input's features per sample, when known.
    pub input_width: Option<usize>,
    pub notes: Vec<String>,
}

impl Chain {
    /// kiln's head must be a dense layer, so a BatchNormalization right after the
    /// last Gemm (a classifier's `BatchNorm1d` before its softmax) is folded into it
    /// as inference computes it, `W·s`, `(b − mean)·s + β` with `s = γ/√(var + ε)`,
    /// and its activation moves with it. Anywhere else a batch norm stays a layer.
    pub fn fold_trailing_batch_norm(&mut self) {
        let n = self.layers.len();
        let Some(Imported::Other(Other {
            spec:
                LayerSpec::BatchNorm {
                    epsilon,
                    activation,
                    ..
                },
            tensors,
            activated_by,
        })) = self.layers.last()
        else {
            return;
        };
        if !matches!(self.layers.get(n.wrapping_sub(2)), Some(Imported::Dense(d)) if d.activated_by.is_none())
        {
            return;
        }
        let get = |name: &str| {
            tensors
                .iter()
                .find(|(t, _)| *t == name)
                .map(|(_, v)| v.iter().copied().collect::<Array1<f32>>())
        };
        let (Some(gamma), Some(beta), Some(mean), Some(var)) = (
            get("weight"),
            get("bias"),
            get("running_mean"),
            get("running_var"),
        ) else {
            return;
        };
        let scale = &gamma / &var.mapv(|v| (v + epsilon).sqrt());
        let (activation, activated_by) = (*activation, activated_by.clone());
        if !matches!(self.layers.get(n - 2), Some(Imported::Dense(d)) if d.w.ncols() == scale.len())
        {
            return;
        }
        self.layers.pop();
        let Some(Imported::Dense(dense)) = self.layers.last_mut() else {
            return;
        };
        let bias = dense.b.take().unwrap_or_else(|| Array1::zeros(scale.len()));
        dense.w *= &scale;
        dense.b = Some((bias - &mean) * &scale + &beta);
        dense.activation = activation;
        dense.activated_by = activated_by;
        self.notes.push(
            "a BatchNormalization after the last dense layer was folded into it (kiln's last \
             layer is dense)"
                .to_string(),
        );
    }
}

struct Walk<'g, 'a> {
    graph: &'g Graph<'a>,
    opset: i64,
    /// The value the chain has reached.
    cur: String,
    /// Its feature width, when known.
    width: Option<usize>,
    /// Whether it is `[batch, features]` (false before a leading Flatten/Reshape).
    flat: bool,
    /// Its element type while it is not float yet (only the graph input can be).
    non_float: Option<i32>,
    /// The input's fixed batch size, if it has one.
    batch: Option<i64>,
    /// `[C, H, W]` while kiln's value is an image of known size.
    image: Option<[usize; 3]>,
    input_image: Option<[usize; 3]>,
    input_width: Option<usize>,
    layers: Vec<Imported>,
    /// A scikit-learn `Scaler` (`(x − offset) · scale`) waiting to fold into the first layer.
    scaler: Option<(String, Vec<f32>, Vec<f32>)>,
    visited: HashSet<usize>,
    notes: Vec<String>,
}

/// Matches the nodes from the graph input to `kept` (through `needed` only) to layers.
pub(super) fn walk(
    graph: &Graph,
    needed: &HashSet<usize>,
    opset: i64,
    kept: &str,
) -> Result<Chain, Invalid> {
    let mut w = Walk::start(graph, opset)?;
    while w.cur != kept {
        let users: Vec<usize> = graph
            .consumers(&w.cur)
            .iter()
            .copied()
            .filter(|i| needed.contains(i))
            .collect();
        match users.as_slice() {
            [] if w.cur == graph.input.name() => {
                return Err(invalid(format!(
                    "the output \"{kept}\" does not depend on the graph input \"{}\"",
                    w.cur
                )));
            }
            [] => {
                return Err(invalid(format!(
                    "\"{}\" does not lead on to the output \"{kept}\"",
                    w.cur
                )));
            }
            [one] => w.step(*one)?,
            many => match match_erf_gelu(graph, needed, &w.cur, many) {
                Some(gelu) => {
                    w.require_float(&graph.describe(gelu.erf))?;
                    let desc = format!("the Erf GELU at {}", graph.describe(gelu.erf));
                    w.activate(&desc, Activation::GeluErf)?;
                    w.visited.extend(gelu.nodes);
                    w.cur = gelu.output;
                }
                None if let Some(sized) = match_batch_reshape(graph, needed, &w.cur, many) => {
                    let desc = graph.describe(sized.reshape);
                    w.visited.extend(sized.nodes);
                    w.visited.insert(sized.reshape);
                    w.notes.push(format!(
                        "{desc}: its shape, computed from the input's batch size, folded to the \
                         constant {:?}",
                        sized.shape
                    ));
                    w.reshape_to(graph.node(sized.reshape), &desc, sized.shape, false)?;
                    w.cur = graph
                        .node(sized.reshape)
                        .output
                        .first()
                        .cloned()
                        .unwrap_or_default();
                }
                None => {
                    let names: Vec<String> = many.iter().map(|&i| graph.describe(i)).collect();
                    return Err(invalid(format!(
                        "the network branches at \"{}\" (read by {}); kiln imports a single chain \
                         of layers",
                        w.cur,
                        names.join(" and ")
                    )));
                }
            },
        }
    }
    for &i in &graph.order {
        let node = graph.node(i);
        let constant = node.op_type() == "Constant" && is_default_domain(node);
        if needed.contains(&i) && !w.visited.contains(&i) && !constant {
            return Err(invalid(format!(
                "{} computes part of \"{kept}\" off the chain from the input; kiln imports a single \
                 chain of layers",
                graph.describe(i)
            )));
        }
    }
    if w.layers.is_empty() {
        return Err(invalid(
            "the graph has no layer with weights (Gemm, MatMul or Conv); kiln imports dense and \
             convolutional networks",
        ));
    }
    Ok(Chain {
        layers: w.layers,
        input_image: w.input_image,
        input_width: w.input_width,
        notes: w.notes,
    })
}

fn attr<'n>(node: &'n NodeProto, name: &str) -> Option<&'n crate::onnx::proto::AttributeProto> {
    node.attribute.iter().find(|a| a.name() == name)
}

fn attr_i(node: &NodeProto, name: &str, default: i64) -> i64 {
    attr(node, name).and_then(|a| a.i).unwrap_or(default)
}

fn attr_f(node: &NodeProto, name: &str, default: f32) -> f32 {
    attr(node, name).and_then(|a| a.f).unwrap_or(default)
}

impl<'g, 'a> Walk<'g, 'a> {
    fn start(graph: &'g Graph<'a>, opset: i64) -> Result<Self, Invalid> {
        let input = graph.input;
        let name = input.name();
        let mut walk = Walk {
            graph,
            opset,
            cur: name.to_string(),
            width: None,
            flat: true,
            non_float: None,
            batch: None,
            image: None,
            input_image: None,
            input_width: None,
            layers: Vec::new(),
            scaler: None,
            visited: HashSet::new(),
            notes: Vec::new(),
        };
        let tensor = match input.r#type.as_ref().and_then(|t| t.value.as_ref()) {
            None => return Ok(walk),
            Some(type_proto::Value::TensorType(t)) => t,
            Some(_) => {
                return Err(invalid(format!(
                    "graph input \"{name}\" is not a tensor; kiln imports networks over a float \
                     tensor [batch, features]"
                )));
            }
        };
        let elem = tensor.elem_type();
        let castable = [
            DataType::Double,
            DataType::Int64,
            DataType::Int32,
            DataType::Float16,
        ];
        if elem != DataType::Float as i32 {
            if !castable.iter().any(|t| *t as i32 == elem) {
                return Err(invalid(format!(
                    "graph input \"{name}\" holds {}; kiln imports networks over float tensors",
                    tensor::type_name(elem)
                )));
            }
            walk.non_float = Some(elem);
        }
        let Some(shape) = &tensor.shape else {
            return Ok(walk);
        };
        use crate::onnx::proto::tensor_shape_proto::dimension::Value;
        let dims: Vec<Option<usize>> = shape
            .dim
            .iter()
            .map(|d| match d.value {
                Some(Value::DimValue(v)) if v > 0 => usize::try_from(v).ok(),
                _ => None,
            })
            .collect();
        match dims.as_slice() {
            [] | [_] => {
                return Err(invalid(format!(
                    "graph input \"{name}\" has rank {}; kiln imports inputs of shape [batch, \
                     features] (or [batch, d1, d2, …] flattened first)",
                    dims.len()
                )));
            }
            [batch, width] => {
                walk.width = *width;
                walk.batch = batch.and_then(|b| i64::try_from(b).ok());
            }
            [batch, rest @ ..] => {
                walk.flat = false;
                walk.batch = batch.and_then(|b| i64::try_from(b).ok());
                walk.width = rest
                    .iter()
                    .try_fold(1usize, |acc, d| acc.checked_mul((*d)?));
                // Kept only when its size is known without overflow (`width`).
                if let ([Some(c), Some(h), Some(w)], Some(_)) = (rest, walk.width) {
                    walk.image = Some([*c, *h, *w]);
                    walk.input_image = walk.image;
                }
            }
        }
        walk.input_width = walk.width;
        Ok(walk)
    }

    fn require_float(&self, desc: &str) -> Result<(), Invalid> {
        match self.non_float {
            Some(t) => Err(invalid(format!(
                "{desc} reads \"{}\", a {} tensor; kiln imports float networks (a Cast to float as \
                 the first node is accepted)",
                self.cur,
                tensor::type_name(t)
            ))),
            None => Ok(()),
        }
    }

    fn step(&mut self, i: usize) -> Result<(), Invalid> {
        let node = self.graph.node(i);
        let desc = self.graph.describe(i);
        self.visited.insert(i);
        if node.domain() == "ai.onnx.ml" && node.op_type() == "Scaler" {
            self.scale(node, &desc)?;
            self.cur = node.output.first().cloned().unwrap_or_default();
            return Ok(());
        }
        if !is_default_domain(node) {
            return Err(unsupported(&desc, node));
        }
        let op = node.op_type();
        if op != "Cast" {
            self.require_float(&desc)?;
        }
        match op {
            "Gemm" => self.gemm(node, &desc)?,
            "MatMul" => self.matmul(node, &desc)?,
            "Conv" => self.conv(node, &desc)?,
            "MaxPool" | "AveragePool" => self.pool(node, &desc)?,
            "GlobalAveragePool" => self.global_pool(node, &desc)?,
            "ReduceMean" => self.reduce_mean(node, &desc)?,
            "Shape" | "Gather" | "Unsqueeze" => {
                return Err(invalid(format!(
                    "{desc}: {op} on the chain; kiln reads it only in the batch-size arithmetic of \
                     x.view(x.size(0), -1) (Shape → Gather → Unsqueeze → Concat → Reshape)"
                )));
            }
            "BatchNormalization" => self.batch_norm(node, &desc)?,
            "Add" => self.add(node, &desc)?,
            "Clip" => {
                self.data_input(node, &desc)?;
                let act = self.clip(node, &desc)?;
                self.activate(&desc, act)?;
            }
            "Relu" | "Sigmoid" | "Tanh" | "LeakyRelu" | "Softmax" | "Gelu" => {
                self.data_input(node, &desc)?;
                let act = self.activation(node, &desc)?;
                self.activate(&desc, act)?;
            }
            "Identity" => self.data_input(node, &desc)?,
            "Dropout" => self.dropout(node, &desc)?,
            "Flatten" => self.flatten(node, &desc)?,
            "Reshape" => self.reshape(node, &desc)?,
            "Cast" => self.cast(node, &desc)?,
            "Transpose" => {
                return Err(invalid(format!(
                    "{desc}: transposes \"{}\", the data; kiln reads a Transpose only of a \
                     constant weight",
                    self.cur
                )));
            }
            "Div" | "Mul" | "Erf" => {
                return Err(invalid(format!(
                    "{desc}: a standalone {op} is not a kiln layer; kiln reads {op} only as part of \
                     the Erf form of GELU (Div(x, √2) → Erf → Add 1 → Mul x → Mul 0.5)"
                )));
            }
            _ => return Err(unsupported(&desc, node)),
        }
        self.cur = node.output.first().cloned().unwrap_or_default();
        Ok(())
    }

    /// Checks that the node reads the chain's value as its first (data) input.
    fn data_input(&self, node: &NodeProto, desc: &str) -> Result<(), Invalid> {
        if node.input.first() == Some(&self.cur) {
            Ok(())
        } else {
            Err(invalid(format!(
                "{desc} reads \"{}\" in another position than its data input",
                self.cur
            )))
        }
    }

    /// `Clip(0, 6)` is relu6 and `Clip(0)` with no upper bound relu; other bounds
    /// are no kiln activation. The bounds are inputs (kiln reads opset 11 and later).
    fn clip(&mut self, node: &NodeProto, desc: &str) -> Result<Activation, Invalid> {
        let mut bound = |k: usize, role: &str| -> Result<Option<f32>, Invalid> {
            let Some(name) = node.input.get(k).filter(|n| !n.is_empty()) else {
                return Ok(None);
            };
            match self.constant(desc, name, role)?.values.as_slice() {
                [v] => Ok(Some(*v)),
                other => Err(invalid(format!(
                    "{desc}: Clip {role} \"{name}\" holds {} values; kiln needs one",
                    other.len()
                ))),
            }
        };
        let (lo, hi) = (bound(1, "min")?, bound(2, "max")?);
        let cap = kiln_nn::layers::activation::RELU6_CAP;
        match (lo, hi) {
            (Some(l), Some(h)) if l == 0.0 && h == cap => Ok(Activation::Relu6),
            (Some(0.0), None) => Ok(Activation::Relu),
            _ => {
                let show = |b: Option<f32>| b.map_or_else(|| "none".to_string(), |v| v.to_string());
                Err(invalid(format!(
                    "{desc}: Clip to [{}, {}]; kiln reads Clip(0, 6) as relu6 and Clip(0) as relu",
                    show(lo),
                    show(hi)
                )))
            }
        }
    }

    fn activation(&self, node: &NodeProto, desc: &str) -> Result<Activation, Invalid> {
        Ok(match node.op_type() {
            "Relu" => Activation::Relu,
            "Sigmoid" => Activation::Sigmoid,
            "Tanh" => Activation::Tanh,
            "LeakyRelu" => {
                let alpha = attr_f(node, "alpha", 0.01);
                if (alpha - kiln_nn::layers::activation::LEAKY_RELU_SLOPE).abs() > 1e-6 {
                    return Err(invalid(format!(
                        "{desc}: LeakyRelu alpha is {alpha}; kiln's leaky_relu has the fixed slope \
                         0.01"
                    )));
                }
                Activation::LeakyRelu
            }
            "Softmax" => {
                let axis = attr_i(node, "axis", if self.opset < 13 { 1 } else { -1 });
                if !self.flat || !matches!(axis, 1 | -1) {
                    return Err(invalid(format!(
                        "{desc}: Softmax over axis {axis}; kiln's softmax is row-wise (axis 1 or -1 \
                         of [batch, features])"
                    )));
                }
                Activation::Softmax
            }
            _ => match attr(node, "approximate").map(|a| a.s()) {
                Some(b"tanh") => Activation::Gelu,
                None | Some(b"none") => Activation::GeluErf,
                Some(other) => {
                    return Err(invalid(format!(
                        "{desc}: Gelu approximate=\"{}\" is unknown; ONNX defines \"none\" and \"tanh\"",
                        String::from_utf8_lossy(other)
                    )));
                }
            },
        })
    }

    fn activate(&mut self, desc: &str, act: Activation) -> Result<(), Invalid> {
        let n = self.layers.len();
        let target = match self.layers.last() {
            None => {
                return Err(invalid(format!(
                    "{desc}: an activation before any layer with weights; kiln's layers are a \
                     dense layer (Gemm or MatMul), a Conv or a BatchNormalization followed by its \
                     activation"
                )));
            }
            Some(Imported::Other(Other {
                spec: LayerSpec::MaxPool2d { .. },
                ..
            })) if n >= 2 && image::commutes_with_max(act) => {
                // max(σ(x)) = σ(max(x)) for a non-decreasing σ: the activation moves to the
                // layer before the pool, where kiln applies it.
                self.notes.push(format!(
                    "{desc} after a MaxPool applied before it (the same values: the activation \
                     does not decrease)"
                ));
                n - 2
            }
            Some(_) => n - 1,
        };
        let layer = &mut self.layers[target];
        if let Some(prev) = layer.activated_by() {
            return Err(invalid(format!(
                "{desc}: a second activation right after {prev}; each kiln layer has one activation"
            )));
        }
        if !layer.set_activation(act, desc) {
            return Err(invalid(format!(
                "{desc}: an activation right after a {} layer; kiln applies activations only at \
                 dense, conv2d and batch_norm layers",
                layer.spec().type_name()
            )));
        }
        Ok(())
    }

    /// The float constant `name`, read as input `role` of the node; a 2-D `Transpose` of a
    /// constant (what exporters leave when they do not fold it) is read as its result.
    fn constant(&mut self, desc: &str, name: &str, role: &str) -> Result<Values<f32>, Invalid> {
        if let Some(v) = self.transposed_constant(desc, name)? {
            return Ok(v);
        }
        match self.graph.constant(name) {
            Some(t) => tensor::floats(t, desc),
            None => {
                let by = self
                    .graph
                    .producer(name)
                    .map_or_else(|| "the graph input".to_string(), |p| self.graph.describe(p));
                Err(invalid(format!(
                    "{desc}: input {role} \"{name}\" is computed by {by}, not a constant; kiln needs \
                     weights as initializers or Constant nodes"
                )))
            }
        }
    }

    fn transposed_constant(
        &mut self,
        desc: &str,
        name: &str,
    ) -> Result<Option<Values<f32>>, Invalid> {
        let Some(p) = self.graph.producer(name) else {
            return Ok(None);
        };
        let node = self.graph.node(p);
        if node.op_type() != "Transpose" || !is_default_domain(node) {
            return Ok(None);
        }
        let Some(t) = node.input.first().and_then(|i| self.graph.constant(i)) else {
            return Ok(None);
        };
        let v = tensor::floats(t, desc)?;
        let perm = attr(node, "perm").map(|a| a.ints.clone());
        let &[rows, cols] = v.dims.as_slice() else {
            return Err(invalid(format!(
                "{}: transposes a weight of shape {:?}; kiln needs a 2-D weight",
                self.graph.describe(p),
                v.dims
            )));
        };
        if !matches!(perm.as_deref(), None | Some([1, 0])) {
            return Err(invalid(format!(
                "{}: perm {perm:?} of a 2-D weight; kiln reads perm [1, 0]",
                self.graph.describe(p)
            )));
        }
        let m = Array2::from_shape_vec((rows, cols), v.values)
            .map_err(|e| invalid(format!("{desc}: weight \"{name}\": {e}")))?;
        self.visited.insert(p);
        Ok(Some(Values {
            dims: vec![cols, rows],
            values: m.t().iter().copied().collect(),
        }))
    }

    /// A 2-D weight constant.
    fn weight(&mut self, desc: &str, name: &str, role: &str) -> Result<Array2<f32>, Invalid> {
        let v = self.constant(desc, name, role)?;
        let &[rows, cols] = v.dims.as_slice() else {
            return Err(invalid(format!(
                "{desc}: weight \"{name}\" has shape {:?}; kiln needs a 2-D weight",
                v.dims
            )));
        };
        Array2::from_shape_vec((rows, cols), v.values)
            .map_err(|e| invalid(format!("{desc}: weight \"{name}\": {e}")))
    }

    /// A bias constant broadcast to `n` units: `[n]`, `[1, n]` or one value.
    fn bias(
        &mut self,
        desc: &str,
        name: &str,
        role: &str,
        n: usize,
    ) -> Result<Array1<f32>, Invalid> {
        let v = self.constant(desc, name, role)?;
        match v.dims.as_slice() {
            [] | [1] | [1, 1] if v.values.len() == 1 => Ok(Array1::from_elem(n, v.values[0])),
            [k] | [1, k] if *k == n => Ok(Array1::from_vec(v.values)),
            dims => Err(invalid(format!(
                "{desc}: bias \"{name}\" has shape {dims:?}; kiln needs [{n}], [1, {n}] or a single \
                 value"
            ))),
        }
    }

    fn transposed_batch(&self, desc: &str) -> Invalid {
        invalid(format!(
            "{desc}: \"{}\" enters transposed or as the weight operand, so the batch would be \
             transposed; kiln's dense layer computes x·W with x as [batch, features]",
            self.cur
        ))
    }

    fn gemm(&mut self, node: &NodeProto, desc: &str) -> Result<(), Invalid> {
        let (a, b) = match node.input.as_slice() {
            [a, b] | [a, b, _] => (a, b),
            _ => {
                return Err(invalid(format!(
                    "{desc}: Gemm needs inputs A, B and optionally C"
                )));
            }
        };
        if attr_i(node, "transA", 0) != 0 || *b == self.cur || *a != self.cur {
            return Err(self.transposed_batch(desc));
        }
        let mut w = self.weight(desc, b, "B")?;
        if attr_i(node, "transB", 0) != 0 {
            w = w.t().as_standard_layout().into_owned();
        }
        let alpha = attr_f(node, "alpha", 1.0);
        if alpha != 1.0 {
            w *= alpha;
        }
        let bias = match node.input.get(2).filter(|c| !c.is_empty()) {
            Some(c) => {
                let beta = attr_f(node, "beta", 1.0);
                Some(self.bias(desc, c, "C", w.ncols())? * beta)
            }
            None => None,
        };
        self.push_dense(desc, b, w, bias)
    }

    fn matmul(&mut self, node: &NodeProto, desc: &str) -> Result<(), Invalid> {
        let [a, b] = node.input.as_slice() else {
            return Err(invalid(format!("{desc}: MatMul needs two inputs")));
        };
        if *a != self.cur {
            return Err(self.transposed_batch(desc));
        }
        let w = self.weight(desc, b, "B")?;
        self.push_dense(desc, b, w, None)
    }

    fn push_dense(
        &mut self,
        desc: &str,
        name: &str,
        w: Array2<f32>,
        b: Option<Array1<f32>>,
    ) -> Result<(), Invalid> {
        if !self.flat {
            return Err(invalid(format!(
                "{desc} reads \"{}\", a tensor of rank above 2; kiln's dense layers take [batch, \
                 features] (Flatten or Reshape it first)",
                self.cur
            )));
        }
        let (k, n) = w.dim();
        let (w, b) = match self.scaler.take() {
            Some((by, offset, scale)) => fold_scaler(&by, desc, w, b, &offset, &scale)?,
            None => (w, b),
        };
        if let Some(width) = self.width.filter(|&width| width != k) {
            return Err(invalid(format!(
                "{desc}: weight \"{name}\" takes {k} input features but \"{}\" reaching it has \
                 {width}",
                self.cur
            )));
        }
        self.width = Some(n);
        self.layers.push(Imported::Dense(Dense {
            w,
            b,
            activation: Activation::Linear,
            activated_by: None,
        }));
        Ok(())
    }

    /// A constant Add right after a dense layer folds into its bias.
    fn add(&mut self, node: &NodeProto, desc: &str) -> Result<(), Invalid> {
        let [x, y] = node.input.as_slice() else {
            return Err(invalid(format!("{desc}: Add needs two inputs")));
        };
        let other = if *x == self.cur { y } else { x };
        if other == &self.cur || self.graph.constant(other).is_none() {
            return Err(invalid(format!(
                "{desc}: adds \"{x}\" and \"{y}\", two computed tensors (a residual or skip \
                 connection); kiln imports a single chain of dense layers"
            )));
        }
        let n = match self.layers.last() {
            Some(Imported::Dense(last)) if last.activated_by.is_none() => last.w.ncols(),
            Some(last) => {
                let after = last.activated_by().map_or_else(
                    || format!("a {} layer", last.spec().type_name()),
                    str::to_string,
                );
                return Err(invalid(format!(
                    "{desc}: adds a constant after {after}; kiln folds a constant Add only into the \
                     dense layer right before it"
                )));
            }
            None => {
                return Err(invalid(format!(
                    "{desc}: adds a constant before any dense layer; kiln folds a constant Add only \
                     into the dense layer right before it"
                )));
            }
        };
        let b = self.bias(desc, other, "bias", n)?;
        if let Some(Imported::Dense(last)) = self.layers.last_mut() {
            last.b = Some(match last.b.take() {
                Some(old) => old + b,
                None => b,
            });
        }
        Ok(())
    }

    fn dropout(&mut self, node: &NodeProto, desc: &str) -> Result<(), Invalid> {
        self.data_input(node, desc)?;
        if let Some(mask) = node.output.get(1).filter(|m| !m.is_empty())
            && (!self.graph.consumers(mask).is_empty() || self.graph.is_graph_output(mask))
        {
            return Err(invalid(format!(
                "{desc}: its mask output \"{mask}\" is used; kiln treats Dropout as the identity \
                 it is at inference"
            )));
        }
        if let Some(mode) = node.input.get(2).filter(|m| !m.is_empty()) {
            let off = self
                .graph
                .constant(mode)
                .and_then(|t| tensor::ints(t, desc).ok())
                .is_some_and(|v| v.values.iter().all(|&m| m == 0));
            if !off {
                return Err(invalid(format!(
                    "{desc}: training_mode \"{mode}\" is not a constant false; kiln imports \
                     inference graphs"
                )));
            }
        }
        Ok(())
    }

    fn flatten(&mut self, node: &NodeProto, desc: &str) -> Result<(), Invalid> {
        self.data_input(node, desc)?;
        let axis = attr_i(node, "axis", 1);
        if axis != 1 && !(axis == -1 && self.flat) {
            return Err(invalid(format!(
                "{desc}: Flatten with axis {axis} would fold the batch into the features; kiln \
                 accepts axis 1"
            )));
        }
        self.flatten_image();
        self.flat = true;
        Ok(())
    }

    fn reshape(&mut self, node: &NodeProto, desc: &str) -> Result<(), Invalid> {
        self.data_input(node, desc)?;
        let Some(shape_name) = node.input.get(1) else {
            return Err(invalid(format!("{desc}: Reshape needs a shape input")));
        };
        let Some(t) = self.graph.constant(shape_name) else {
            return Err(invalid(format!(
                "{desc}: shape \"{shape_name}\" is computed, not a constant; kiln accepts a Reshape \
                 to a constant [batch, features]"
            )));
        };
        let shape = tensor::ints(t, desc)?.values;
        let allow_zero = attr_i(node, "allowzero", 0) != 0;
        self.reshape_to(node, desc, shape, allow_zero)
    }

    /// A Reshape of the chain's value to `shape` (`0` copies the input's size unless
    /// `allow_zero`).
    fn reshape_to(
        &mut self,
        node: &NodeProto,
        desc: &str,
        shape: Vec<i64>,
        allow_zero: bool,
    ) -> Result<(), Invalid> {
        self.data_input(node, desc)?;
        let batch_ok =
            |a: i64| a == -1 || (a == 0 && !allow_zero) || (a > 0 && self.batch == Some(a));
        let width = match (shape.as_slice(), self.width) {
            ([a, b], Some(w))
                if batch_ok(*a) && (i64::try_from(w) == Ok(*b) || (*b == -1 && *a != -1)) =>
            {
                Some(w)
            }
            ([a, b], None) if batch_ok(*a) && *b > 0 => usize::try_from(*b).ok(),
            ([a, -1], None) if batch_ok(*a) && *a != -1 => None,
            _ => {
                let want = self.width.map_or("features".to_string(), |w| w.to_string());
                return Err(invalid(format!(
                    "{desc}: reshapes \"{}\" to {shape:?}; kiln accepts only a Reshape to [batch, \
                     features] ([-1, {want}] or [0, {want}])",
                    self.cur
                )));
            }
        };
        self.width = width;
        self.flatten_image();
        self.flat = true;
        Ok(())
    }

    /// scikit-learn's `StandardScaler` as skl2onnx writes it: kept for the first dense layer.
    fn scale(&mut self, node: &NodeProto, desc: &str) -> Result<(), Invalid> {
        self.data_input(node, desc)?;
        if !self.layers.is_empty() || self.scaler.is_some() || !self.flat {
            return Err(invalid(format!(
                "{desc}: a Scaler kiln can fold only into the first dense layer, on flat rows \
                 before it"
            )));
        }
        let floats = |name: &str| {
            attr(node, name)
                .map(|a| a.floats.clone())
                .unwrap_or_default()
        };
        let (offset, scale) = (floats("offset"), floats("scale"));
        let fits = |v: &[f32]| v.len() == 1 || self.width.is_none_or(|w| v.len() == w);
        if offset.is_empty() || scale.is_empty() || !fits(&offset) || !fits(&scale) {
            return Err(invalid(format!(
                "{desc}: offset ({} values) and scale ({} values) must each hold one value or one \
                 per feature{}",
                offset.len(),
                scale.len(),
                self.width.map_or(String::new(), |w| format!(" ({w})"))
            )));
        }
        if let Some(t) = self.non_float.take() {
            self.notes.push(format!(
                "input \"{}\" is {} in the file; kiln reads float32",
                self.cur,
                tensor::type_name(t)
            ));
        }
        self.notes.push(format!(
            "{desc} ((x − offset) · scale) folded into the first dense layer's weights and bias"
        ));
        self.scaler = Some((desc.to_string(), offset, scale));
        Ok(())
    }

    fn cast(&mut self, node: &NodeProto, desc: &str) -> Result<(), Invalid> {
        self.data_input(node, desc)?;
        let to = attr_i(node, "to", 0);
        if to != i64::from(DataType::Float as i32) {
            return Err(invalid(format!(
                "{desc}: casts to {}; kiln's networks compute in float32",
                i32::try_from(to).map_or_else(|_| to.to_string(), tensor::type_name)
            )));
        }
        if let Some(t) = self.non_float.take() {
            self.notes.push(format!(
                "input \"{}\" is {} in the file; kiln reads float32 (the file casts it to float \
                 first)",
                self.cur,
                tensor::type_name(t)
            ));
        }
        Ok(())
    }
}

/// `((x − o) · s) · W + b = x · (diag(s) W) + (b − (o · s) · W)`: the scaler folded into the
/// layer it feeds, per input feature `i` (a single offset or scale applies to every feature).
fn fold_scaler(
    by: &str,
    desc: &str,
    mut w: Array2<f32>,
    b: Option<Array1<f32>>,
    offset: &[f32],
    scale: &[f32],
) -> Result<(Array2<f32>, Option<Array1<f32>>), Invalid> {
    let k = w.nrows();
    let pick = |v: &[f32], i: usize| if v.len() == 1 { v[0] } else { v[i] };
    if (offset.len() != 1 && offset.len() != k) || (scale.len() != 1 && scale.len() != k) {
        return Err(invalid(format!(
            "{by}: offset and scale do not fit the {k} input features of {desc}"
        )));
    }
    let mut shift = b.unwrap_or_else(|| Array1::zeros(w.ncols()));
    for (i, mut row) in w.rows_mut().into_iter().enumerate() {
        let s = pick(scale, i);
        row.mapv_inplace(|v| v * s);
        let o = pick(offset, i);
        shift.scaled_add(-o, &row);
    }
    Ok((w, Some(shift)))
}
