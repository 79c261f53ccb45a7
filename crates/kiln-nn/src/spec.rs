//! The Keras-like architecture description a client sends and a model file stores.
//!
//! Parsing lives in `raw` (so an error can name the exact field), the layer-by-
//! layer shape walk in `shapes`; this file holds the types and their checks.

mod raw;
pub mod shapes;

use serde::{Deserialize, Serialize};

use crate::validation::{Checker, Invalid};

pub use shapes::{LayerShapeError, layer_output_shape, layer_param_count};

use crate::layers::shape::Shape;

/// An element-wise (or, for softmax, row-wise) activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    Linear,
    Relu,
    /// `min(max(z, 0), 6)`: MobileNet's activation (PyTorch `ReLU6`, ONNX `Clip(0, 6)`).
    Relu6,
    LeakyRelu,
    Sigmoid,
    Tanh,
    Softmax,
    /// GELU, tanh approximation (PyTorch `approximate="tanh"`).
    Gelu,
    /// Exact GELU `z·Φ(z)` with the error function (PyTorch's and Keras' default, ONNX `Gelu`).
    GeluErf,
}

/// How a window meets the border: `"valid"` (no padding), `"same"` (ONNX
/// `SAME_UPPER`: output `ceil(in / stride)`, an odd total pad's extra row at the
/// end) or explicit `[top, left, bottom, right]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(try_from = "raw::PaddingRepr", into = "raw::PaddingRepr")]
pub enum Padding {
    Valid,
    Same,
    Explicit([usize; 4]),
}

/// One layer of a sequential network. Images are `[channels, height, width]`.
///
/// Deserialised through `raw::RawLayer` rather than as an internally tagged enum:
/// serde buffers tagged content and loses the path of an error inside it, and a
/// client should learn that `layers[2].activation` was wrong, not just `layers[2]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", try_from = "raw::RawLayer")]
pub enum LayerSpec {
    /// `y = act(x · W + b)`, `W: [in, units]`; takes flat samples.
    Dense {
        units: usize,
        activation: Activation,
        use_bias: bool,
    },
    /// Zeroes a fraction `rate` of activations while training (inverted dropout); identity at inference.
    Dropout { rate: f32 },
    /// 2-D cross-correlation (ONNX `Conv`), weights `[filters, channels / groups, kh, kw]`;
    /// depthwise when `groups` equals the input channels.
    Conv2d {
        filters: usize,
        kernel_size: [usize; 2],
        strides: [usize; 2],
        padding: Padding,
        dilation: [usize; 2],
        groups: usize,
        activation: Activation,
        use_bias: bool,
    },
    /// The largest value of each window; padding never wins.
    MaxPool2d {
        pool_size: [usize; 2],
        strides: [usize; 2],
        padding: Padding,
    },
    /// The mean of each window over the positions inside the input (padding is not counted).
    AvgPool2d {
        pool_size: [usize; 2],
        strides: [usize; 2],
        padding: Padding,
    },
    /// `[C, H, W] → [C]`: the mean of each channel.
    GlobalAvgPool2d,
    /// Per-channel (or per-feature) normalization with learned scale and shift,
    /// batch statistics while training, running statistics at inference
    /// (`running ← momentum · running + (1 − momentum) · batch`, as Keras).
    /// It must follow a `conv2d` or `dense` layer with a linear activation, so it
    /// folds into that layer; `activation` is applied after it.
    BatchNorm {
        momentum: f32,
        epsilon: f32,
        activation: Activation,
    },
    /// `[C, H, W] → [C·H·W]`, channels-first order (free: the memory is unchanged).
    Flatten,
}

impl LayerSpec {
    /// The `type` a client writes.
    pub fn type_name(&self) -> &'static str {
        match self {
            LayerSpec::Dense { .. } => "dense",
            LayerSpec::Dropout { .. } => "dropout",
            LayerSpec::Conv2d { .. } => "conv2d",
            LayerSpec::MaxPool2d { .. } => "max_pool2d",
            LayerSpec::AvgPool2d { .. } => "avg_pool2d",
            LayerSpec::GlobalAvgPool2d => "global_avg_pool2d",
            LayerSpec::BatchNorm { .. } => "batch_norm",
            LayerSpec::Flatten => "flatten",
        }
    }

    /// The activation applied at the layer's output, for layers that have one.
    pub fn activation(&self) -> Option<Activation> {
        match self {
            LayerSpec::Dense { activation, .. }
            | LayerSpec::Conv2d { activation, .. }
            | LayerSpec::BatchNorm { activation, .. } => Some(*activation),
            _ => None,
        }
    }
}

fn default_activation() -> Activation {
    Activation::Linear
}

/// `{"input_dim": 100, "layers": [...]}` or `{"input_shape": [1, 28, 28], "layers": [...]}`.
///
/// `input_dim` is always the number of scalars per sample (the width of a
/// dataset row); `input_shape` is present for image inputs, channels first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(try_from = "raw::RawArchitecture")]
pub struct Architecture {
    pub input_dim: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_shape: Option<Vec<usize>>,
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

/// Scalars per sample allowed at any layer's output (an image input or a
/// feature map): 16 Mi, a 3×2048×2048 image.
const MAX_SAMPLE_SIZE: usize = 1 << 24;

impl Architecture {
    /// A flat-input architecture (`input_dim` features).
    pub fn flat(input_dim: usize, layers: Vec<LayerSpec>) -> Self {
        Self {
            input_dim,
            input_shape: None,
            layers,
        }
    }

    /// The per-sample input shape: `input_shape`, or `[input_dim]`.
    pub fn input(&self) -> Shape {
        match &self.input_shape {
            Some(dims) => Shape::new(dims.clone()),
            None => Shape::features(self.input_dim),
        }
    }

    /// The task the output layer implies for a network kiln did not define (an import):
    /// one sigmoid unit → binary, a softmax of two or more → multiclass, one linear unit →
    /// regression; anything else says nothing.
    pub fn implied_task(&self) -> Option<crate::data::Task> {
        use crate::data::Task;
        let last = self.layers.iter().rev().find_map(|l| match l {
            LayerSpec::Dense {
                units, activation, ..
            } => Some((*units, *activation)),
            _ => None,
        })?;
        match last {
            (1, Activation::Sigmoid) => Some(Task::Binary),
            (n, Activation::Softmax) if n >= 2 => Some(Task::Multiclass),
            (1, Activation::Linear) => Some(Task::Regression),
            _ => None,
        }
    }

    /// Width of the network's output (the last dense layer's units, which
    /// [`Self::check`] makes the head, or the input width).
    /// Values per sample of the network's output (the last layer's shape, flat).
    pub fn output_dim(&self) -> usize {
        match self.shapes() {
            Ok(shapes) => shapes.last().map_or(self.input().size(), Shape::size),
            // An architecture that does not chain: its last dense layer is the best guess.
            Err(_) => self.dense_units().last().copied().unwrap_or(self.input_dim),
        }
    }

    /// The units of every dense layer, in order.
    pub fn dense_units(&self) -> Vec<usize> {
        self.layers
            .iter()
            .filter_map(|l| match l {
                LayerSpec::Dense { units, .. } => Some(*units),
                _ => None,
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
                _ => None,
            })
            .unwrap_or(Activation::Linear)
    }

    /// Whether any layer works on images (the network is not a plain MLP).
    pub fn has_spatial_layers(&self) -> bool {
        self.input_shape.is_some()
            || self
                .layers
                .iter()
                .any(|l| !matches!(l, LayerSpec::Dense { .. } | LayerSpec::Dropout { .. }))
    }

    /// Number of trainable scalars (up to the first layer whose shapes do not
    /// fit, on an architecture that has not passed [`Self::check`]).
    pub fn param_count(&self) -> u64 {
        let mut shape = self.input();
        let mut total = 0u64;
        for layer in &self.layers {
            total = total.saturating_add(layer_param_count(layer, &shape));
            match layer_output_shape(layer, &shape) {
                Ok(next) => shape = next,
                Err(_) => break,
            }
        }
        total
    }

    /// The per-sample output shape of every layer, or the first layer that
    /// cannot take what the one before gives (field relative to the architecture).
    pub fn shapes(&self) -> Result<Vec<Shape>, Invalid> {
        let mut shape = self.input();
        let mut out = Vec::with_capacity(self.layers.len());
        for (i, layer) in self.layers.iter().enumerate() {
            shape = layer_output_shape(layer, &shape).map_err(|e| e.at(i))?;
            out.push(shape.clone());
        }
        Ok(out)
    }

    /// Checks shape and size; errors name fields relative to the architecture object.
    pub fn check(&self, limits: &ArchitectureLimits) -> Result<(), Invalid> {
        let mut c = Checker::new();
        match &self.input_shape {
            None => c.require(
                self.input_dim >= 1 && self.input_dim <= limits.max_units,
                "input_dim",
                format!("must be between 1 and {}", limits.max_units),
            ),
            Some(dims) => {
                c.require(
                    dims.len() == 3,
                    "input_shape",
                    format!("must be [channels, height, width] (or use input_dim for flat input); found {dims:?}"),
                );
                c.require(
                    dims.iter().all(|&d| d >= 1) && self.input_dim <= MAX_SAMPLE_SIZE,
                    "input_shape",
                    format!(
                        "every dimension must be at least 1 and a sample at most {MAX_SAMPLE_SIZE} scalars"
                    ),
                );
            }
        }
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
        for (i, layer) in self.layers.iter().enumerate() {
            check_layer(&mut c, i, layer, limits);
            if let LayerSpec::BatchNorm { .. } = layer {
                let foldable = matches!(
                    i.checked_sub(1).map(|p| &self.layers[p]),
                    Some(
                        LayerSpec::Dense {
                            activation: Activation::Linear,
                            ..
                        } | LayerSpec::Conv2d {
                            activation: Activation::Linear,
                            ..
                        }
                    )
                );
                c.require(
                    foldable,
                    format!("layers[{i}]"),
                    "a batch_norm must directly follow a conv2d or dense layer with a linear \
                     activation, so it can be folded into that layer; put the activation on the \
                     batch_norm",
                );
            }
        }
        let head = self
            .layers
            .iter()
            .rposition(|l| !matches!(l, LayerSpec::Dropout { .. }));
        match head {
            Some(h) => c.require(
                matches!(self.layers[h], LayerSpec::Dense { .. }),
                format!("layers[{h}]"),
                "the last layer (dropout aside) must be dense: its units are the network's outputs",
            ),
            None => c.require(
                self.layers.is_empty(),
                "layers",
                "must contain at least one dense layer",
            ),
        }
        // The shape walk only makes sense over layers whose own fields are sound.
        c.finish(())?;
        let shapes = self.shapes()?;
        let mut c = Checker::new();
        if let Some(i) = shapes.iter().position(|s| s.size() > MAX_SAMPLE_SIZE) {
            c.push(
                format!("layers[{i}]"),
                format!(
                    "outputs {} scalars per sample ({}); the limit is {MAX_SAMPLE_SIZE}",
                    shapes[i].size(),
                    shapes[i]
                ),
            );
        }
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

/// The checks of one layer's own fields (its fit with its input is in [`Architecture::shapes`]).
fn check_layer(c: &mut Checker, i: usize, layer: &LayerSpec, limits: &ArchitectureLimits) {
    let field = |name: &str| format!("layers[{i}].{name}");
    let window = |c: &mut Checker, name: &str, v: &[usize; 2]| {
        c.require(
            v.iter().all(|&k| (1..=limits.max_units).contains(&k)),
            field(name),
            format!("must be between 1 and {}; found {v:?}", limits.max_units),
        )
    };
    match layer {
        LayerSpec::Dense { units, .. } => c.require(
            *units >= 1 && *units <= limits.max_units,
            field("units"),
            format!("must be between 1 and {}", limits.max_units),
        ),
        LayerSpec::Dropout { rate } => c.require(
            rate.is_finite() && (0.0..1.0).contains(rate),
            field("rate"),
            "must be a number in [0, 1)",
        ),
        LayerSpec::Conv2d {
            filters,
            kernel_size,
            strides,
            dilation,
            groups,
            ..
        } => {
            c.require(
                *filters >= 1 && *filters <= limits.max_units,
                field("filters"),
                format!("must be between 1 and {}", limits.max_units),
            );
            window(c, "kernel_size", kernel_size);
            window(c, "strides", strides);
            window(c, "dilation", dilation);
            c.require(*groups >= 1, field("groups"), "must be at least 1");
        }
        LayerSpec::MaxPool2d {
            pool_size, strides, ..
        }
        | LayerSpec::AvgPool2d {
            pool_size, strides, ..
        } => {
            window(c, "pool_size", pool_size);
            window(c, "strides", strides);
        }
        LayerSpec::BatchNorm {
            momentum, epsilon, ..
        } => {
            c.require(
                momentum.is_finite() && (0.0..1.0).contains(momentum),
                field("momentum"),
                "must be a number in [0, 1)",
            );
            c.require(
                epsilon.is_finite() && *epsilon > 0.0,
                field("epsilon"),
                "must be a positive number",
            );
        }
        LayerSpec::GlobalAvgPool2d | LayerSpec::Flatten => {}
    }
}

#[cfg(test)]
mod tests;
