//! kiln → ONNX: any kiln model (fp32, pruned, compressed, int8) as an ONNX graph that ONNX
//! Runtime runs and a reader can follow.
//!
//! The model: `ir_version` 10, the default-domain opset 21 (`Gelu` needs 20), producer `kiln`
//! and the crate version, a `doc_string` summing up the network, and `metadata_props` with
//! kiln's metadata (`kiln.dtype`, `kiln.architecture`, `kiln.task`, `kiln.parent_id`,
//! `kiln.job_id`, `kiln.quantization`, `kiln.source`, those that are set). The graph input
//! and output keep the names an imported model came with ([`Source`]), else `input` and
//! `output`, float with a symbolic `batch`: the input `[batch, C, H, W]` for a network over
//! images and `[batch, width]` otherwise, the output always `[batch, width]` (kiln's rows). Initializers and values are
//! named after kiln's tensors (`layers.{i}.weight`, `layers.{i}.bias`, …) and never take
//! the input's or output's name.
//!
//! Float dense layers are written by [`dense`], int8 layers (QDQ) by [`qdq`], image layers by
//! [`conv`]; dropout layers are left out (inference) and batch norms are folded into the layer
//! before them ([`fold_batch_norm`]). The result passes [`check`](super::check::check) before it is
//! encoded: a failure there is kiln's bug, reported as [`ExportError::Check`].

use prost::Message;

use super::check::{CheckError, check};
use super::proto::tensor_shape_proto::Dimension;
use super::proto::tensor_shape_proto::dimension::Value as Dim;
use super::proto::type_proto::{Tensor, Value as TypeValue};
use super::proto::{
    GraphProto, ModelProto, OperatorSetIdProto, StringStringEntryProto, TensorShapeProto,
    TypeProto, ValueInfoProto, tensor_proto::DataType,
};
use crate::model_file::ModelFile;
use crate::quantized::Quantization;
use crate::source::{self, Source};
use kiln_nn::layers::Layer;
use kiln_nn::optimize::fold::fold_batch_norm;
use kiln_nn::optimize::quant::qmodel::QuantConfig;
use kiln_nn::spec::{Activation, Architecture, LayerSpec};

mod conv;
mod dense;
pub(super) mod graph;
mod qdq;

#[cfg(test)]
mod tests;

use conv::GraphValue;
use graph::GraphBuilder;

/// The IR version kiln writes.
pub const IR_VERSION: i64 = 10;
/// The default-domain opset kiln writes.
pub const OPSET: i64 = 21;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The model's int8 layers do not fit its network (a corrupt or hand-made model file).
    #[error("the int8 layers cannot be exported: {0}")]
    Int8(String),
    /// The network has no layer that computes anything, so there is no node to write.
    #[error("the network has no layer to export")]
    Empty,
    /// kiln built a graph its own check rejects: an internal error.
    #[error("the exported graph failed kiln's structural check: {0}")]
    Check(#[from] CheckError),
}

/// Writes `file` as an ONNX model (the bytes of a `ModelProto`).
pub fn export(file: &ModelFile) -> Result<Vec<u8>, ExportError> {
    let model = to_model_proto(file)?;
    check(&model)?;
    Ok(model.encode_to_vec())
}

/// The `ModelProto` [`export`] encodes, before its check.
pub fn to_model_proto(file: &ModelFile) -> Result<ModelProto, ExportError> {
    let model = &file.model;
    let arch = model.architecture();
    let (input, output) = io_names(Source::read(&file.meta).as_ref());
    // Rebuilding the int8 network validates the stored layers against the model.
    let quantization = match (&file.meta.quantization, file.int8()) {
        (Some(q), Some(Ok(_))) => Some(q),
        (_, Some(Err(e))) => return Err(ExportError::Int8(e.to_string())),
        _ => None,
    };
    // Batch norms are folded into the layer before them (int8 models have none to fold, and
    // their layer indices must stay those the quantization names).
    let folded;
    let model = match quantization {
        None => {
            folded = fold_batch_norm(model);
            &folded
        }
        Some(_) => model,
    };
    let mut g = GraphBuilder::new(&[&input, &output]);
    let input_shape = arch.input();
    let mut x = match input_shape.dims() {
        &[c, h, w] => GraphValue {
            name: input.clone(),
            image: Some([c, h, w]),
        },
        _ => GraphValue::rows(input.clone()),
    };
    for (i, layer) in model.layers().iter().enumerate() {
        x = match layer {
            Layer::Dense(d) => {
                let rows = conv::rows(&mut g, i, &x);
                GraphValue::rows(
                    match quantization.and_then(|q| q.layer(i).map(|l| (q, l))) {
                        Some((q, lq)) => qdq::layer(&mut g, lq, d, q.config.mode, &rows),
                        None => dense::layer(&mut g, i, d, &rows),
                    },
                )
            }
            Layer::Dropout(_) => x,
            Layer::Conv2d(c) => conv::conv(&mut g, i, c, &x),
            Layer::Pool2d(p) => conv::pool(&mut g, i, p, &x),
            Layer::GlobalAvgPool2d(_) => conv::global_avg_pool(&mut g, i, &x),
            Layer::BatchNorm(bn) => conv::batch_norm(&mut g, i, bn, &x),
            Layer::Flatten(_) => GraphValue::rows(conv::rows(&mut g, i, &x)),
        };
    }
    // kiln's outputs are rows whatever the last layer is.
    if x.image.is_some() {
        conv::rows(&mut g, model.layers().len(), &x);
    }
    if !g.finish(&output) {
        return Err(ExportError::Empty);
    }
    let dtype = match quantization {
        Some(_) => "int8",
        None => file.meta.dtype.as_str(),
    };
    let summary = summary(model.architecture(), dtype, quantization.map(|q| &q.config));
    let graph = GraphProto {
        name: Some("kiln".into()),
        doc_string: Some(summary.clone()),
        input: vec![float_tensor(&input, input_shape.dims())],
        output: vec![float_tensor(&output, &[arch.output_dim()])],
        node: g.nodes,
        initializer: g.initializers,
        ..Default::default()
    };
    Ok(ModelProto {
        ir_version: Some(IR_VERSION),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(OPSET),
        }],
        producer_name: Some("kiln".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        doc_string: Some(summary),
        graph: Some(graph),
        metadata_props: metadata(file, dtype, quantization)
            .into_iter()
            .map(|(key, value)| StringStringEntryProto {
                key: Some(key.into()),
                value: Some(value),
            })
            .collect(),
        ..Default::default()
    })
}

/// The graph's input and output names: the imported model's, else `input` and `output`
/// (the output is renamed should a source give both the same name).
fn io_names(source: Option<&Source>) -> (String, String) {
    let pick = |name: Option<&str>, default: &str| match name {
        Some(n) if !n.is_empty() => n.to_string(),
        _ => default.to_string(),
    };
    let input = pick(source.map(|s| s.input_name.as_str()), "input");
    let mut output = pick(source.map(|s| s.output_name.as_str()), "output");
    if output == input {
        output = format!("{input}_output");
    }
    (input, output)
}

/// A float `[batch, dims…]` graph input or output.
fn float_tensor(name: &str, dims: &[usize]) -> ValueInfoProto {
    let dim = |value| Dimension {
        value: Some(value),
        ..Default::default()
    };
    ValueInfoProto {
        name: Some(name.to_string()),
        r#type: Some(TypeProto {
            value: Some(TypeValue::TensorType(Tensor {
                elem_type: Some(DataType::Float as i32),
                shape: Some(TensorShapeProto {
                    dim: std::iter::once(dim(Dim::DimParam("batch".into())))
                        .chain(
                            dims.iter()
                                .map(|&d| dim(Dim::DimValue(i64::try_from(d).unwrap_or(i64::MAX)))),
                        )
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn activation_name(a: Activation) -> &'static str {
    match a {
        Activation::Linear => "linear",
        Activation::Relu => "relu",
        Activation::Relu6 => "relu6",
        Activation::LeakyRelu => "leaky_relu",
        Activation::Sigmoid => "sigmoid",
        Activation::Tanh => "tanh",
        Activation::Softmax => "softmax",
        Activation::Gelu => "gelu",
        Activation::GeluErf => "gelu_erf",
    }
}

/// `kiln model: input 20 → dense 19 relu → dropout 0.3 → dense 5 softmax; dtype int8 (…)`.
fn summary(arch: &Architecture, dtype: &str, quant: Option<&QuantConfig>) -> String {
    let mut s = match &arch.input_shape {
        Some(dims) => format!("kiln model: input {dims:?}"),
        None => format!("kiln model: input {}", arch.input_dim),
    };
    for layer in &arch.layers {
        match layer {
            LayerSpec::Dense {
                units,
                activation,
                use_bias,
            } => {
                s.push_str(&format!(
                    " → dense {units} {}",
                    activation_name(*activation)
                ));
                if !use_bias {
                    s.push_str(" (no bias)");
                }
            }
            LayerSpec::Dropout { rate } => s.push_str(&format!(" → dropout {rate} (omitted)")),
            LayerSpec::Conv2d {
                filters,
                kernel_size: [kh, kw],
                activation,
                ..
            } => s.push_str(&format!(
                " → conv2d {filters} {kh}×{kw} {}",
                activation_name(*activation)
            )),
            other => s.push_str(&format!(" → {}", other.type_name())),
        }
    }
    s.push_str(&format!("; dtype {dtype}"));
    if let Some(q) = quant {
        let mode = match q.mode {
            kiln_nn::optimize::quant::qmodel::QuantMode::Static => "static",
            kiln_nn::optimize::quant::qmodel::QuantMode::Dynamic => "dynamic",
        };
        s.push_str(&format!(
            " ({mode} u8 activations, {} {} i8 weights, as QDQ)",
            serde_plain(&q.scheme),
            serde_plain(&q.granularity)
        ));
    }
    s
}

/// A unit enum's serde name (`per_channel`), as the model file's header spells it.
fn serde_plain(v: &impl serde::Serialize) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

/// kiln's metadata a reader of the ONNX file may want, `kiln.`-prefixed; unset ones left out.
fn metadata(
    file: &ModelFile,
    dtype: &str,
    quantization: Option<&Quantization>,
) -> Vec<(&'static str, String)> {
    let meta = &file.meta;
    let mut out = vec![("kiln.dtype", dtype.to_string())];
    if let Ok(json) = serde_json::to_string(file.model.architecture()) {
        out.push(("kiln.architecture", json));
    }
    out.push(("kiln.trained", meta.trained.to_string()));
    if let Some(t) = meta.task {
        out.push(("kiln.task", t.as_str().to_string()));
    }
    if let Some(p) = &meta.parent_id {
        out.push(("kiln.parent_id", p.clone()));
    }
    if let Some(j) = &meta.job_id {
        out.push(("kiln.job_id", j.clone()));
    }
    if let Some(json) = quantization.and_then(|q| q.header_json().ok()) {
        out.push(("kiln.quantization", json));
    }
    if let Some(json) = meta.extra.get(source::METADATA_KEY) {
        out.push(("kiln.source", json.clone()));
    }
    out
}
