//! Keras 3 `.keras` files → kiln.
//!
//! A `.keras` file is a zip ([`archive`]) of `config.json` (the layer graph, [`config`]),
//! `metadata.json` (the Keras version) and `model.weights.h5` (HDF5, [`weights`]). A
//! `Sequential` model or a `Functional` chain ([`graph`]) of dense layers ([`layers`])
//! becomes a trained kiln model whose predictions match Keras' `model.predict`;
//! [`Source`] records the input and output layer names and the Keras version.
//!
//! Everything is checked in the order a user would fix it (zip, config, layers,
//! architecture limits, weights), and every refusal is an [`Invalid`] on the field
//! `file` naming the entry or the layer (name and class) and why. No input panics.

mod archive;
mod config;
mod graph;
mod layers;
mod weights;

#[cfg(test)]
mod tests;

use crate::model_file::{ModelFile, ModelMeta};
use crate::source::Source;
use kiln_nn::Sequential;
use kiln_nn::spec::{Architecture, ArchitectureLimits, LayerSpec};
use kiln_nn::validation::{FieldError, Invalid};

use archive::{Archive, CONFIG};
use config::{LayerConfig, Metadata, ModelConfig};
use weights::DenseWant;

const FIELD: &str = "file";

/// Reads a `.keras` zip (`config.json`, `metadata.json`, `model.weights.h5`).
pub fn import(bytes: &[u8], limits: &ArchitectureLimits) -> Result<ModelFile, Invalid> {
    let archive = Archive::read(bytes)?;
    let model: ModelConfig = serde_json::from_slice(&archive.config)
        .map_err(|e| invalid(format!("{CONFIG} is not a Keras model config: {e}")))?;
    match model.class_name.as_str() {
        "Sequential" => {}
        "Functional" | "Model" => graph::check_chain(&model.config)?,
        other => {
            return Err(invalid(format!(
                "{CONFIG}: the model is a {other}; kiln imports Sequential and Functional models"
            )));
        }
    }
    let plan = layers::plan(&model)?;
    let architecture = Architecture::flat(plan.input_dim, plan.layers);
    architecture
        .check(limits)
        .map_err(|e| name_layers(e, &plan.origins))?;

    let mut width = architecture.input_dim;
    let mut wants = Vec::new();
    let mut dense = plan.dense.iter();
    for layer in &architecture.layers {
        if let LayerSpec::Dense {
            units, use_bias, ..
        } = layer
            && let Some((name, index)) = dense.next()
        {
            wants.push(DenseWant {
                name,
                index: *index,
                inputs: width,
                units: *units,
                use_bias: *use_bias,
            });
            width = *units;
        }
    }
    let weights = weights::read(archive.weights, &wants)?;
    let network = Sequential::from_weights(&architecture, weights).map_err(invalid)?;

    let metadata: Metadata = archive
        .metadata
        .as_deref()
        .and_then(|m| serde_json::from_slice(m).ok())
        .unwrap_or_default();
    let mut meta = ModelMeta::new(architecture);
    meta.trained = true;
    meta.task = meta.architecture.implied_task();
    Source {
        format: "keras".into(),
        input_name: plan.input_name,
        output_name: plan.output_name,
        producer_name: Some("keras".into()),
        producer_version: metadata.keras_version,
        opset: None,
        ir_version: None,
        notes: plan.notes,
    }
    .write(&mut meta);
    Ok(ModelFile {
        model: network,
        meta,
    })
}

/// An error on the upload's `file` field.
fn invalid(message: impl Into<String>) -> Invalid {
    Invalid::one(FIELD, message)
}

/// `layer "name" (Class)`, how every layer error begins.
fn layer_label(layer: &LayerConfig) -> String {
    format!("layer \"{}\" ({})", layer.name(), layer.class_name)
}

/// Rewrites [`Architecture::check`]'s `layers[i].units` errors as messages on `file`
/// naming the Keras layer behind kiln's layer `i`.
fn name_layers(e: Invalid, origins: &[(String, String)]) -> Invalid {
    Invalid(
        e.0.into_iter()
            .map(|FieldError { field, message }| {
                let layer = field
                    .strip_prefix("layers[")
                    .and_then(|rest| rest.split_once(']'))
                    .and_then(|(i, rest)| Some((i.parse::<usize>().ok()?, rest)))
                    .and_then(|(i, rest)| origins.get(i).map(|o| (o, rest)));
                let message = match layer {
                    Some(((name, class), rest)) => format!(
                        "layer \"{name}\" ({class}): {} {message}",
                        rest.trim_start_matches('.')
                    ),
                    None if field == "input_dim" => format!("the input width {message}"),
                    None => format!("the model: {message}"),
                };
                FieldError::new(FIELD, message)
            })
            .collect(),
    )
}
