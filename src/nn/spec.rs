//! The Keras-like architecture description a client sends and a model file stores.

use serde::{Deserialize, Serialize};

use crate::validation::{Checker, Invalid};

/// An element-wise (or, for softmax, row-wise) activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    Linear,
    Relu,
    LeakyRelu,
    Sigmoid,
    Tanh,
    Softmax,
    /// GELU, tanh approximation (PyTorch `approximate="tanh"`).
    Gelu,
    /// Exact GELU `z·Φ(z)` with the error function (PyTorch's and Keras' default, ONNX `Gelu`).
    GeluErf,
}

/// One layer of a sequential network.
///
/// Deserialised through [`RawLayer`] rather than as an internally tagged enum:
/// serde buffers tagged content and loses the path of an error inside it, and a
/// client should learn that `layers[2].activation` was wrong, not just `layers[2]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", try_from = "RawLayer")]
pub enum LayerSpec {
    /// `y = act(x · W + b)`, `W: [in, units]`.
    Dense {
        units: usize,
        #[serde(default = "default_activation")]
        activation: Activation,
        #[serde(default = "default_true")]
        use_bias: bool,
    },
    /// Zeroes a fraction `rate` of activations while training (inverted dropout); identity at inference.
    Dropout { rate: f32 },
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum LayerType {
    Dense,
    Dropout,
}

/// Every field any layer type takes; [`LayerSpec`]'s `TryFrom` checks which apply.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLayer {
    #[serde(rename = "type")]
    kind: LayerType,
    units: Option<usize>,
    activation: Option<Activation>,
    use_bias: Option<bool>,
    rate: Option<f32>,
}

impl TryFrom<RawLayer> for LayerSpec {
    type Error = String;

    fn try_from(raw: RawLayer) -> Result<Self, String> {
        match raw.kind {
            LayerType::Dense => {
                if raw.rate.is_some() {
                    return Err("`rate` belongs to dropout layers, not dense ones".into());
                }
                Ok(LayerSpec::Dense {
                    units: raw.units.ok_or("a dense layer needs `units`")?,
                    activation: raw.activation.unwrap_or_else(default_activation),
                    use_bias: raw.use_bias.unwrap_or_else(default_true),
                })
            }
            LayerType::Dropout => {
                if raw.units.is_some() || raw.activation.is_some() || raw.use_bias.is_some() {
                    return Err("a dropout layer takes only `rate`".into());
                }
                Ok(LayerSpec::Dropout {
                    rate: raw.rate.ok_or("a dropout layer needs `rate`")?,
                })
            }
        }
    }
}

fn default_activation() -> Activation {
    Activation::Linear
}

fn default_true() -> bool {
    true
}

/// `{"input_dim": 100, "layers": [...]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Architecture {
    pub input_dim: usize,
    pub layers: Vec<LayerSpec>,
}

/// Size limits an architecture must respect; they come from configuration.
#[derive(Debug, Clone, Copy)]
pub struct ArchitectureLimits {
    pub max_params: u64,
    pub max_units: usize,
    pub max_layers: usize,
}

impl Default for ArchitectureLimits {
    fn default() -> Self {
        Self {
            max_params: 50_000_000,
            max_units: 65_536,
            max_layers: 64,
        }
    }
}

impl Architecture {
    /// The task the output layer implies for a network kiln did not define (an import):
    /// one sigmoid unit → binary, a softmax of two or more → multiclass, one linear unit →
    /// regression; anything else says nothing.
    pub fn implied_task(&self) -> Option<crate::nn::data::Task> {
        use crate::nn::data::Task;
        let last = self.layers.iter().rev().find_map(|l| match l {
            LayerSpec::Dense {
                units, activation, ..
            } => Some((*units, *activation)),
            LayerSpec::Dropout { .. } => None,
        })?;
        match last {
            (1, Activation::Sigmoid) => Some(Task::Binary),
            (n, Activation::Softmax) if n >= 2 => Some(Task::Multiclass),
            (1, Activation::Linear) => Some(Task::Regression),
            _ => None,
        }
    }

    /// Width of the network's output (the last dense layer's units, or the input width).
    pub fn output_dim(&self) -> usize {
        self.dense_units().last().copied().unwrap_or(self.input_dim)
    }

    /// The units of every dense layer, in order (dropout layers have none).
    pub fn dense_units(&self) -> Vec<usize> {
        self.layers
            .iter()
            .filter_map(|l| match l {
                LayerSpec::Dense { units, .. } => Some(*units),
                LayerSpec::Dropout { .. } => None,
            })
            .collect()
    }

    /// Activation of the last dense layer, which decides how outputs are read (probability, logits, value).
    pub fn output_activation(&self) -> Activation {
        self.layers
            .iter()
            .rev()
            .find_map(|l| match l {
                LayerSpec::Dense { activation, .. } => Some(*activation),
                LayerSpec::Dropout { .. } => None,
            })
            .unwrap_or(Activation::Linear)
    }

    /// Number of trainable scalars.
    pub fn param_count(&self) -> u64 {
        let mut width = self.input_dim as u64;
        let mut total = 0u64;
        for layer in &self.layers {
            if let LayerSpec::Dense {
                units, use_bias, ..
            } = layer
            {
                let units = *units as u64;
                total = total
                    .saturating_add(width.saturating_mul(units))
                    .saturating_add(if *use_bias { units } else { 0 });
                width = units;
            }
        }
        total
    }

    /// Checks shape and size; errors name fields relative to the architecture object.
    pub fn check(&self, limits: &ArchitectureLimits) -> Result<(), Invalid> {
        let mut c = Checker::new();
        c.require(
            self.input_dim >= 1 && self.input_dim <= limits.max_units,
            "input_dim",
            format!("must be between 1 and {}", limits.max_units),
        );
        c.require(
            !self.layers.is_empty(),
            "layers",
            "must contain at least one layer",
        );
        c.require(
            self.layers.len() <= limits.max_layers,
            "layers",
            format!("at most {} layers are allowed", limits.max_layers),
        );
        let mut dense = 0;
        for (i, layer) in self.layers.iter().enumerate() {
            match layer {
                LayerSpec::Dense { units, .. } => {
                    dense += 1;
                    c.require(
                        *units >= 1 && *units <= limits.max_units,
                        format!("layers[{i}].units"),
                        format!("must be between 1 and {}", limits.max_units),
                    );
                }
                LayerSpec::Dropout { rate } => c.require(
                    rate.is_finite() && (0.0..1.0).contains(rate),
                    format!("layers[{i}].rate"),
                    "must be a number in [0, 1)",
                ),
            }
        }
        c.require(
            self.layers.is_empty() || dense > 0,
            "layers",
            "must contain at least one dense layer",
        );
        let params = self.param_count();
        c.require(
            params <= limits.max_params,
            "layers",
            format!(
                "the network has {params} parameters; the limit is {}",
                limits.max_params
            ),
        );
        c.finish(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_output_layer_implies_the_task_of_an_imported_network() {
        use crate::nn::data::Task;
        let with_head = |units: usize, activation: Activation| Architecture {
            input_dim: 4,
            layers: vec![
                LayerSpec::Dense {
                    units,
                    activation,
                    use_bias: true,
                },
                LayerSpec::Dropout { rate: 0.1 },
            ],
        };
        assert_eq!(
            with_head(1, Activation::Sigmoid).implied_task(),
            Some(Task::Binary)
        );
        assert_eq!(
            with_head(3, Activation::Softmax).implied_task(),
            Some(Task::Multiclass)
        );
        assert_eq!(
            with_head(1, Activation::Linear).implied_task(),
            Some(Task::Regression)
        );
        assert_eq!(with_head(2, Activation::Sigmoid).implied_task(), None);
        assert_eq!(with_head(1, Activation::Softmax).implied_task(), None);
        assert_eq!(with_head(4, Activation::Relu).implied_task(), None);
    }

    fn seed() -> Architecture {
        serde_json::from_str(
            r#"{"input_dim": 100, "layers": [
                {"type": "dense", "units": 64, "activation": "relu"},
                {"type": "dropout", "rate": 0.2},
                {"type": "dense", "units": 32, "activation": "relu"},
                {"type": "dense", "units": 1, "activation": "sigmoid"}]}"#,
        )
        .expect("seed architecture parses")
    }

    #[test]
    fn the_seed_architecture_has_the_keras_parameter_count() {
        // Keras model.summary(): 6464 + 2080 + 33.
        assert_eq!(seed().param_count(), 8577);
        assert_eq!(seed().output_dim(), 1);
        assert_eq!(seed().output_activation(), Activation::Sigmoid);
        assert!(seed().check(&ArchitectureLimits::default()).is_ok());
    }

    #[test]
    fn an_unknown_layer_type_or_activation_does_not_parse() {
        let bad_layer = r#"{"input_dim": 2, "layers": [{"type": "conv9d", "units": 1}]}"#;
        assert!(serde_json::from_str::<Architecture>(bad_layer).is_err());
        let bad_act = r#"{"input_dim": 2, "layers": [{"type": "dense", "units": 1, "activation": "swishy"}]}"#;
        assert!(serde_json::from_str::<Architecture>(bad_act).is_err());
    }

    #[test]
    fn zero_units_and_a_dropout_rate_of_one_name_their_fields() {
        let arch: Architecture = serde_json::from_str(
            r#"{"input_dim": 2, "layers": [{"type": "dense", "units": 0}, {"type": "dropout", "rate": 1.0}]}"#,
        )
        .expect("parses");
        let err = arch
            .check(&ArchitectureLimits::default())
            .expect_err("must be rejected");
        let fields: Vec<_> = err.0.iter().map(|e| e.field.as_str()).collect();
        assert!(fields.contains(&"layers[0].units"), "{fields:?}");
        assert!(fields.contains(&"layers[1].rate"), "{fields:?}");
    }
}
