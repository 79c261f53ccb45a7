//! ONNX → kiln: reads the graphs dense and convolutional networks export to
//! (PyTorch's Gemm or MatMul + Add, Conv, pools and batch norms, scikit-learn's
//! MLPs through skl2onnx) and matches them to kiln's layer list. Anything kiln cannot represent exactly is refused with a 422 that
//! names the node or tensor and why; nothing in the file can make it panic or
//! allocate more than the file holds.
//!
//! [`graph`] indexes the decoded graph, [`tensor`] reads constants, [`output`]
//! picks the value kiln keeps (dropping classifier tails), [`chain`] (with
//! [`gelu`]) walks from the input to it.

mod batch_shape;
mod chain;
mod gelu;
mod graph;
mod output;
mod tensor;
#[cfg(test)]
mod tests;

use prost::Message;

use super::proto::{ModelProto, NodeProto};
use super::{MAX_OPSET, MIN_IR_VERSION, MIN_OPSET};
use crate::model_file::{ModelFile, ModelMeta};
use crate::source::Source;
use kiln_nn::model::Sequential;
use kiln_nn::spec::{Architecture, ArchitectureLimits, LayerSpec};
use kiln_nn::validation::{FieldError, Invalid};

/// Ops kiln drops when they only feed outputs it does not keep.
const TAIL_OPS: &[&str] = &[
    "ArgMax",
    "ZipMap",
    "ArrayFeatureExtractor",
    "Cast",
    "Reshape",
    "Sub",
    "Concat",
];

/// Default-domain ops that can appear on the chain (Div, Mul and Erf only in the Erf GELU,
/// Transpose only of a constant weight).
const CHAIN_OPS: &[&str] = &[
    "Gemm",
    "MatMul",
    "Conv",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "ReduceMean",
    "BatchNormalization",
    "Add",
    "Relu",
    "Clip",
    "LeakyRelu",
    "Sigmoid",
    "Tanh",
    "Softmax",
    "Gelu",
    "Identity",
    "Dropout",
    "Flatten",
    "Reshape",
    "Cast",
    "Constant",
    "Div",
    "Mul",
    "Erf",
    "Transpose",
    // Only in `x.view(x.size(0), -1)`'s shape arithmetic, folded to a constant.
    "Shape",
    "Gather",
    "Unsqueeze",
];

/// The ONNX-ML ops kiln reads: classifier tails, and `Scaler` (scikit-learn's
/// `StandardScaler`), which folds into the first dense layer.
const ML_OPS: &[&str] = &["ZipMap", "ArrayFeatureExtractor", "Scaler"];

fn invalid(message: impl Into<String>) -> Invalid {
    Invalid::one("file", message)
}

fn unsupported(desc: &str, node: &NodeProto) -> Invalid {
    let op = match node.domain() {
        "" | "ai.onnx" => node.op_type().to_string(),
        domain => format!("{domain}.{}", node.op_type()),
    };
    invalid(format!(
        "{desc}: op type {op} is not supported; kiln imports dense and convolutional networks \
         (Gemm, MatMul + Add, Conv, MaxPool, AveragePool, GlobalAveragePool, spatial ReduceMean, \
         BatchNormalization,          Relu, Clip(0, 6), LeakyRelu, Sigmoid, Tanh, Softmax, Gelu and its Erf form, Identity, Dropout, \
         Flatten, Reshape, Cast, Constant, and scikit-learn's Scaler) and drops classifier tails \
         ({})",
        TAIL_OPS.join(", ")
    ))
}

/// Reads an ONNX `ModelProto` and matches its graph to kiln's layer list.
pub fn import(bytes: &[u8], limits: &ArchitectureLimits) -> Result<ModelFile, Invalid> {
    let model = ModelProto::decode(bytes).map_err(|e| {
        invalid(format!(
            "not an ONNX model: the protobuf is truncated or malformed ({e})"
        ))
    })?;
    let opset = check_versions(&model)?;
    let Some(g) = model.graph.as_ref() else {
        return Err(invalid("not an ONNX model: the file holds no graph"));
    };
    let graph = graph::Graph::build(g)?;
    for &i in &graph.order {
        let node = graph.node(i);
        let known = match node.domain() {
            "" | "ai.onnx" => {
                CHAIN_OPS.contains(&node.op_type())
                    || (TAIL_OPS.contains(&node.op_type()) && !ML_OPS.contains(&node.op_type()))
            }
            "ai.onnx.ml" => ML_OPS.contains(&node.op_type()),
            _ => false,
        };
        if !known {
            return Err(unsupported(&graph.describe(i), node));
        }
    }
    let mut kept = output::choose(&graph)?;
    let needed = output::needed(&graph, &kept.value);
    output::check_dropped(&graph, &needed, &mut kept)?;
    let mut chain = chain::walk(&graph, &needed, opset, &kept.value)?;
    chain.fold_trailing_batch_norm();
    let chain_notes = std::mem::take(&mut chain.notes);

    let architecture = architecture_of(&chain);
    architecture.check(limits).map_err(|e| {
        Invalid(
            e.0.into_iter()
                .map(|f| {
                    FieldError::new(
                        "file",
                        format!(
                            "the imported network does not fit kiln's layer rules or limits: architecture.{}: {}",
                            f.field, f.message
                        ),
                    )
                })
                .collect(),
        )
    })?;
    let task = architecture.implied_task();
    let model_net = network(&architecture, chain.layers)?;

    let mut meta = ModelMeta::new(architecture);
    meta.trained = true;
    meta.task = task;
    let mut notes = kept.notes;
    notes.extend(chain_notes);
    Source {
        format: "onnx".into(),
        input_name: graph.input.name().to_string(),
        output_name: kept.value,
        producer_name: model.producer_name.clone().filter(|s| !s.is_empty()),
        producer_version: model.producer_version.clone().filter(|s| !s.is_empty()),
        opset: Some(opset),
        ir_version: model.ir_version,
        notes,
    }
    .write(&mut meta);
    Ok(ModelFile {
        model: model_net,
        meta,
    })
}

/// The architecture of the matched layers: over the input image when any layer
/// works on images, otherwise over flat rows (a Flatten of the input leaves no layer).
fn architecture_of(chain: &chain::Chain) -> Architecture {
    let specs = chain.layers.iter().map(chain::Imported::spec);
    match chain.input_image {
        Some(image) if chain.layers.iter().any(chain::Imported::is_spatial) => Architecture {
            input_dim: image.iter().product(),
            input_shape: Some(image.to_vec()),
            layers: specs.collect(),
        },
        _ => {
            let first = chain.layers.iter().find_map(|l| match l {
                chain::Imported::Dense(d) => Some(d.w.nrows()),
                chain::Imported::Other(o) => o.tensors.first().map(|(_, t)| t.len()),
            });
            let input_dim = chain.input_width.or(first).unwrap_or(0);
            let layers = specs.filter(|s| *s != LayerSpec::Flatten).collect();
            Architecture::flat(input_dim, layers)
        }
    }
}

/// kiln's network with the file's weights: dense layers through
/// [`Sequential::from_weights`], every other layer's tensors by name.
fn network(
    architecture: &Architecture,
    layers: Vec<chain::Imported>,
) -> Result<Sequential, Invalid> {
    let (dense, others): (Vec<_>, Vec<_>) = layers
        .into_iter()
        .filter(|l| architecture.input_shape.is_some() || l.spec() != LayerSpec::Flatten)
        .enumerate()
        .partition(|(_, l)| matches!(l, chain::Imported::Dense(_)));
    let weights = dense
        .into_iter()
        .filter_map(|(_, l)| match l {
            chain::Imported::Dense(d) => Some((d.w, d.b)),
            chain::Imported::Other(_) => None,
        })
        .collect();
    let mut model = Sequential::from_weights(architecture, weights)
        .map_err(|e| invalid(format!("the imported weights do not fit: {e}")))?;
    for (i, layer) in others {
        let chain::Imported::Other(other) = layer else {
            continue;
        };
        let Some(dst_layer) = model.layers_mut().get_mut(i) else {
            return Err(invalid(format!("layer {i} is missing from the network")));
        };
        for (name, values) in other.tensors {
            match dst_layer.tensor_mut(name) {
                Some(mut dst) if dst.shape() == values.shape() => dst.assign(&values),
                Some(dst) => {
                    return Err(invalid(format!(
                        "layers.{i}.{name} has shape {:?}; kiln's layer needs {:?}",
                        values.shape(),
                        dst.shape()
                    )));
                }
                None => return Err(invalid(format!("layer {i} has no tensor {name}"))),
            }
        }
    }
    Ok(model)
}

/// Checks the IR version and the default-domain opset; returns the opset.
fn check_versions(model: &ModelProto) -> Result<i64, Invalid> {
    let Some(ir) = model.ir_version else {
        return Err(invalid(
            "not an ONNX model: the file has no ir_version (is it an ONNX ModelProto?)",
        ));
    };
    if ir < MIN_IR_VERSION {
        return Err(invalid(format!(
            "the file's IR version is {ir}; kiln imports IR version {MIN_IR_VERSION} or newer \
             (onnx 1.6+; re-save the model with a current onnx)"
        )));
    }
    let default: Vec<i64> = model
        .opset_import
        .iter()
        .filter(|o| matches!(o.domain(), "" | "ai.onnx"))
        .map(|o| o.version())
        .collect();
    match default.as_slice() {
        [] => Err(invalid(
            "the file declares no default-domain (ai.onnx) opset; kiln needs one to read its ops",
        )),
        [v] if (MIN_OPSET..=MAX_OPSET).contains(v) => Ok(*v),
        [v] => Err(invalid(format!(
            "the file's default-domain opset is {v}; kiln imports opsets {MIN_OPSET} to \
             {MAX_OPSET} (convert it with onnx.version_converter)"
        ))),
        _ => Err(invalid(
            "the file declares the default-domain opset more than once",
        )),
    }
}
