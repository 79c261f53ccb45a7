//! Keras layers → kiln's layer list.
//!
//! kiln's network is a list of Dense and Dropout layers with one activation each, so
//! `InputLayer` gives the input width, `Flatten` is a no-op (kiln's rows are the flattened
//! input, in row-major order, when the input has more than one feature axis), and an
//! `Activation` layer is folded into the linear Dense right before it. Anything else
//! is refused naming the layer, its class and why; nothing is silently approximated.

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::config::{
    ActivationConfig, DenseConfig, DropoutConfig, FlattenConfig, InputConfig, LayerConfig,
    ModelConfig, dtype_name, flat_width, row_width,
};
use super::{invalid, layer_label};
use kiln_nn::spec::{Activation, LayerSpec};
use kiln_nn::validation::Invalid;

const KNOWN: [&str; 8] = [
    "InputLayer",
    "Dense",
    "Dropout",
    "Activation",
    "ReLU",
    "LeakyReLU",
    "Softmax",
    "Flatten",
];
const SUPPORTED: &str = "kiln imports dense networks (InputLayer, Dense, Dropout, Activation, \
                         ReLU, LeakyReLU, Softmax, Flatten)";
/// The Keras name of InputLayer's default, used when a Sequential model has none.
const DEFAULT_INPUT_NAME: &str = "input_layer";

/// What the translation produced.
#[derive(Debug)]
pub struct Plan {
    pub input_dim: usize,
    pub input_name: String,
    pub output_name: String,
    pub layers: Vec<LayerSpec>,
    /// The Keras layer (name, class) behind each of `layers`, for error messages.
    pub origins: Vec<(String, String)>,
    /// Per Dense layer: its name and how many Dense layers precede it (its weights' path).
    pub dense: Vec<(String, usize)>,
    pub notes: Vec<String>,
}

/// Translates `model.config.layers` (already known to be a chain).
pub fn plan(model: &ModelConfig) -> Result<Plan, Invalid> {
    let layers = &model.config.layers;
    // The kind of layer first: it is the more basic reason, e.g. a Conv2D model is
    // refused for its convolution, not for its image-shaped input.
    for layer in layers {
        let custom = layer.module.as_ref().filter(|m| !m.starts_with("keras"));
        if let Some(module) = custom {
            return Err(invalid(format!(
                "{} is a custom layer (module {module}); {SUPPORTED}",
                layer_label(layer)
            )));
        }
        if !KNOWN.contains(&layer.class_name.as_str()) {
            return Err(invalid(format!("{}: {SUPPORTED}", layer_label(layer))));
        }
    }
    let mut plan = Plan {
        input_dim: 0,
        input_name: DEFAULT_INPUT_NAME.into(),
        output_name: String::new(),
        layers: Vec::new(),
        origins: Vec::new(),
        dense: Vec::new(),
        notes: Vec::new(),
    };
    let mut input: Option<u64> = None;
    let mut dense_seen = 0;
    // The InputLayer's shape while it has several feature axes that no Flatten has folded.
    let mut unflattened: Option<(String, Value)> = None;
    // Whether the last kiln layer is a linear Dense an Activation layer may fold into.
    let mut foldable = false;
    for (i, layer) in layers.iter().enumerate() {
        let refuse = |why: String| invalid(format!("{} {why}", layer_label(layer)));
        let name = layer.name().to_string();
        match layer.class_name.as_str() {
            "InputLayer" => {
                if i != 0 {
                    return Err(refuse("is a second input; kiln models have one".into()));
                }
                let c: InputConfig = typed(layer)?;
                float32(layer, c.dtype.as_ref())?;
                if c.sparse == Some(true) || c.ragged == Some(true) {
                    return Err(refuse(
                        "takes sparse or ragged tensors; kiln takes dense rows".into(),
                    ));
                }
                let shape = c.batch_shape.or(c.batch_input_shape).ok_or_else(|| {
                    refuse("has no batch_shape, so the input width is unknown".into())
                })?;
                let (width, multi) = row_width(&shape).map_err(&refuse)?;
                if multi {
                    unflattened = Some((name.clone(), shape));
                }
                input = Some(width);
                plan.input_name = name.clone();
            }
            "Dense" => {
                let c: DenseConfig = typed(layer)?;
                float32(layer, c.dtype.as_ref())?;
                if c.lora_rank.as_ref().is_some_and(|r| !r.is_null()) {
                    return Err(refuse(
                        "has LoRA weights (lora_rank); kiln imports plain Dense kernels".into(),
                    ));
                }
                if c.quantization_config.as_ref().is_some_and(|q| !q.is_null()) {
                    return Err(refuse(
                        "is quantized (quantization_config); kiln imports float32 weights".into(),
                    ));
                }
                if input.is_none() {
                    input = Some(sequential_input_width(model, layer).map_err(&refuse)?);
                }
                if let Some((from, shape)) = &unflattened {
                    return Err(refuse(format!(
                        "reads the {shape} input of \"{from}\" without a Flatten; kiln's Dense \
                         layers take flat rows, [batch, features] (add a Flatten first)"
                    )));
                }
                let activation = activation(c.activation.as_ref()).map_err(&refuse)?;
                let units = usize::try_from(c.units)
                    .map_err(|_| refuse(format!("has {} units", c.units)))?;
                plan.layers.push(LayerSpec::Dense {
                    units,
                    activation,
                    use_bias: c.use_bias,
                });
                plan.origins.push((name.clone(), layer.class_name.clone()));
                plan.dense.push((name.clone(), dense_seen));
                dense_seen += 1;
                foldable = activation == Activation::Linear;
            }
            "Dropout" => {
                let c: DropoutConfig = typed(layer)?;
                float32(layer, c.dtype.as_ref())?;
                if !(c.rate.is_finite() && (0.0..1.0).contains(&c.rate)) {
                    return Err(refuse(format!(
                        "has rate {}; kiln takes a rate in [0, 1)",
                        c.rate
                    )));
                }
                plan.layers.push(LayerSpec::Dropout {
                    rate: c.rate as f32,
                });
                plan.origins.push((name.clone(), layer.class_name.clone()));
                foldable = false;
            }
            "Activation" | "ReLU" | "LeakyReLU" | "Softmax" => {
                let act = if layer.class_name == "Activation" {
                    let c: ActivationConfig = typed(layer)?;
                    float32(layer, c.dtype.as_ref())?;
                    activation(c.activation.as_ref()).map_err(&refuse)?
                } else {
                    float32(layer, layer.config.get("dtype"))?;
                    activation_layer(layer).map_err(&refuse)?
                };
                if act == Activation::Linear {
                    plan.notes.push(format!(
                        "{} layer \"{name}\" (linear) dropped",
                        layer.class_name
                    ));
                } else if foldable
                    && let Some(LayerSpec::Dense { activation, .. }) = plan.layers.last_mut()
                {
                    *activation = act;
                    foldable = false;
                    let into = plan
                        .origins
                        .last()
                        .map(|o| o.0.as_str())
                        .unwrap_or_default();
                    plan.notes.push(format!(
                        "{} layer \"{name}\" folded into Dense \"{into}\"",
                        layer.class_name
                    ));
                } else {
                    return Err(refuse(
                        "does not follow a Dense layer with a linear activation; kiln applies \
                         one activation per Dense layer, so only such an activation layer can be \
                         folded into it"
                            .into(),
                    ));
                }
            }
            "Flatten" => {
                let c: FlattenConfig = typed(layer)?;
                float32(layer, c.dtype.as_ref())?;
                match unflattened.take() {
                    Some((from, shape)) => plan.notes.push(format!(
                        "Flatten layer \"{name}\" dropped: kiln's rows are the {shape} input of \
                         \"{from}\" flattened in row-major order, {} features",
                        input.unwrap_or(0)
                    )),
                    None => plan.notes.push(format!(
                        "Flatten layer \"{name}\" dropped: its input is already flat"
                    )),
                }
            }
            _ => return Err(invalid(format!("{}: {SUPPORTED}", layer_label(layer)))),
        }
        plan.output_name = name;
    }
    if plan.dense.is_empty() {
        return Err(invalid(
            "config.json: the model has no Dense layer; kiln imports dense networks",
        ));
    }
    let width = input.unwrap_or(0);
    plan.input_dim = usize::try_from(width)
        .map_err(|_| invalid(format!("config.json: the input width {width} is too large")))?;
    Ok(plan)
}

/// The input width of a Sequential model saved without an `InputLayer`: its build
/// shape, else the first Dense layer's.
fn sequential_input_width(model: &ModelConfig, first_dense: &LayerConfig) -> Result<u64, String> {
    let shape = model
        .config
        .build_input_shape
        .clone()
        .filter(|v| !v.is_null())
        .or_else(|| {
            model
                .build_config
                .as_ref()
                .and_then(|b| b.input_shape.clone())
        })
        .filter(|v| !v.is_null())
        .or_else(|| first_dense.config.get("batch_input_shape").cloned())
        .filter(|v| !v.is_null())
        .or_else(|| {
            first_dense
                .build_config
                .as_ref()
                .and_then(|b| b.input_shape.clone())
        })
        .filter(|v| !v.is_null())
        .ok_or_else(|| "is first and the model has no InputLayer nor input shape".to_string())?;
    flat_width(&shape)
}

/// The layer's `config` as `T`; a mismatch names the layer.
fn typed<T: DeserializeOwned>(layer: &LayerConfig) -> Result<T, Invalid> {
    serde_json::from_value(layer.config.clone())
        .map_err(|e| invalid(format!("config.json: {}: {e}", layer_label(layer))))
}

/// Refuses any dtype but float32 (absent means Keras' default, float32).
fn float32(layer: &LayerConfig, dtype: Option<&Value>) -> Result<(), Invalid> {
    match dtype.and_then(dtype_name) {
        None => Ok(()),
        Some(d) if d == "float32" => Ok(()),
        Some(d) => Err(invalid(format!(
            "{} has dtype {d}; kiln imports float32 models",
            layer_label(layer)
        ))),
    }
}

/// The activation of a `ReLU`, `LeakyReLU` or `Softmax` layer, when kiln has it exactly.
fn activation_layer(layer: &LayerConfig) -> Result<Activation, String> {
    let c = &layer.config;
    let num = |key: &str| c.get(key).and_then(Value::as_f64);
    match layer.class_name.as_str() {
        "ReLU" => {
            let max_value = c.get("max_value").filter(|v| !v.is_null());
            let plain = num("negative_slope").unwrap_or(0.0) == 0.0
                && num("threshold").unwrap_or(0.0) == 0.0;
            let relu6 = f64::from(kiln_nn::layers::activation::RELU6_CAP);
            match (plain, max_value.map(Value::as_f64)) {
                (true, None) => Ok(Activation::Relu),
                (true, Some(Some(m))) if m == relu6 => Ok(Activation::Relu6),
                _ => Err(
                    "has negative_slope, threshold or a max_value other than 6 set; kiln's relu is \
                     max(x, 0) and its relu6 min(max(x, 0), 6)"
                        .into(),
                ),
            }
        }
        "LeakyReLU" => {
            // Keras 3 saves `negative_slope` (default 0.3); older files `alpha`.
            let slope = num("negative_slope")
                .or_else(|| num("alpha"))
                .unwrap_or(0.3);
            let kiln = f64::from(kiln_nn::layers::activation::LEAKY_RELU_SLOPE);
            if (slope - kiln).abs() < 1e-6 {
                Ok(Activation::LeakyRelu)
            } else {
                Err(format!(
                    "has negative_slope {slope}; kiln's leaky_relu has the fixed slope 0.01"
                ))
            }
        }
        _ => match c.get("axis") {
            None | Some(Value::Null) => Ok(Activation::Softmax),
            Some(a) if a.as_i64() == Some(-1) || a.as_i64() == Some(1) => Ok(Activation::Softmax),
            Some(a) => Err(format!(
                "is a softmax over axis {a}; kiln's softmax is over the features"
            )),
        },
    }
}

/// A Keras activation: a name, or `{"class_name": "function", "config": name}`.
///
/// Keras' `gelu` is exact unless called with `approximate=True`, which a saved config
/// cannot spell; so it maps to kiln's `gelu_erf`. Keras' `leaky_relu` slope (0.2)
/// differs from kiln's (0.01) and is refused.
fn activation(v: Option<&Value>) -> Result<Activation, String> {
    let name = match v {
        None | Some(Value::Null) => return Ok(Activation::Linear),
        Some(Value::String(s)) => s.as_str(),
        Some(Value::Object(o))
            if o.get("class_name").and_then(Value::as_str) == Some("function") =>
        {
            o.get("config").and_then(Value::as_str).unwrap_or_default()
        }
        Some(other) => {
            return Err(format!(
                "has activation {other}; kiln imports the built-in activations linear, relu, \
                 relu6, sigmoid, tanh, softmax and gelu"
            ));
        }
    };
    match name {
        "linear" => Ok(Activation::Linear),
        "relu" => Ok(Activation::Relu),
        "relu6" => Ok(Activation::Relu6),
        "sigmoid" => Ok(Activation::Sigmoid),
        "tanh" => Ok(Activation::Tanh),
        "softmax" => Ok(Activation::Softmax),
        "gelu" => Ok(Activation::GeluErf),
        "leaky_relu" => Err(
            "has activation leaky_relu, whose Keras slope (0.2) differs from kiln's (0.01)".into(),
        ),
        other => Err(format!(
            "has activation \"{other}\", which kiln does not have (it has linear, relu, relu6, \
             sigmoid, tanh, softmax and gelu)"
        )),
    }
}
