//! The parts of Keras 3's `config.json` (and `metadata.json`) kiln reads.
//!
//! Only the fields that change inference are typed; initializers, regularizers and
//! constraints act while training and are ignored. Layer configs stay [`Value`]s until
//! their class is known, so an unsupported layer is refused by name and class rather
//! than failing to deserialise somewhere inside it.

use serde::Deserialize;
use serde_json::Value;

/// The top-level object: `{"class_name": "Sequential" | "Functional", "config": {...}}`.
#[derive(Debug, Deserialize)]
pub struct ModelConfig {
    pub class_name: String,
    pub config: ModelBody,
    #[serde(default)]
    pub build_config: Option<BuildConfig>,
}

#[derive(Debug, Deserialize)]
pub struct ModelBody {
    pub layers: Vec<LayerConfig>,
    /// Sequential: the input shape it was built with, when it has no `InputLayer`.
    #[serde(default)]
    pub build_input_shape: Option<Value>,
    /// Functional: `[name, node, tensor]` or a list of them.
    #[serde(default)]
    pub input_layers: Option<Value>,
    #[serde(default)]
    pub output_layers: Option<Value>,
}

/// One entry of `layers`.
#[derive(Debug, Deserialize)]
pub struct LayerConfig {
    pub class_name: String,
    /// Set for `keras.layers` classes; a custom layer has its own module.
    #[serde(default)]
    pub module: Option<String>,
    #[serde(default)]
    pub config: Value,
    /// Functional only (Sequential layers carry it in `config.name`).
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub build_config: Option<BuildConfig>,
    /// Functional: the calls feeding this layer; each names its inputs in `keras_history`.
    #[serde(default)]
    pub inbound_nodes: Vec<Value>,
}

impl LayerConfig {
    /// The layer's name (`config.name`, else the Functional entry's `name`).
    pub fn name(&self) -> &str {
        self.config
            .get("name")
            .and_then(Value::as_str)
            .or(self.name.as_deref())
            .unwrap_or("")
    }
}

#[derive(Debug, Deserialize)]
pub struct BuildConfig {
    #[serde(default)]
    pub input_shape: Option<Value>,
}

/// `InputLayer`'s config: Keras 3 writes `batch_shape`, Keras 2-era files `batch_input_shape`.
#[derive(Debug, Deserialize)]
pub struct InputConfig {
    #[serde(default)]
    pub batch_shape: Option<Value>,
    #[serde(default)]
    pub batch_input_shape: Option<Value>,
    #[serde(default)]
    pub dtype: Option<Value>,
    #[serde(default)]
    pub sparse: Option<bool>,
    #[serde(default)]
    pub ragged: Option<bool>,
}

/// `Dense`'s config, the fields that change what it computes.
#[derive(Debug, Deserialize)]
pub struct DenseConfig {
    pub units: u64,
    #[serde(default)]
    pub activation: Option<Value>,
    #[serde(default = "yes")]
    pub use_bias: bool,
    #[serde(default)]
    pub dtype: Option<Value>,
    /// LoRA adds trainable factors kiln has no place for.
    #[serde(default)]
    pub lora_rank: Option<Value>,
    #[serde(default)]
    pub quantization_config: Option<Value>,
}

#[derive(Debug, Deserialize)]
pub struct DropoutConfig {
    pub rate: f64,
    #[serde(default)]
    pub dtype: Option<Value>,
}

/// `Activation` layers.
#[derive(Debug, Deserialize)]
pub struct ActivationConfig {
    #[serde(default)]
    pub activation: Option<Value>,
    #[serde(default)]
    pub dtype: Option<Value>,
}

#[derive(Debug, Deserialize)]
pub struct FlattenConfig {
    #[serde(default)]
    pub dtype: Option<Value>,
}

/// `metadata.json`: `{"keras_version": "3.15.1", "date_saved": ...}`.
#[derive(Debug, Default, Deserialize)]
pub struct Metadata {
    #[serde(default)]
    pub keras_version: Option<String>,
}

fn yes() -> bool {
    true
}

/// The float type of a layer's `dtype`: a string (`"float32"`) or a `DTypePolicy`
/// object (`{"class_name": "DTypePolicy", "config": {"name": "float32"}}`); `None` when
/// absent (Keras' default, float32). A quantized policy reads as its class name.
pub fn dtype_name(dtype: &Value) -> Option<String> {
    match dtype {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => {
            let class = o.get("class_name").and_then(Value::as_str);
            if class.is_some_and(|c| c != "DTypePolicy") {
                return class.map(str::to_string);
            }
            Some(
                o.get("config")
                    .and_then(|c| c.get("name"))
                    .and_then(Value::as_str)
                    .unwrap_or("an unreadable dtype policy")
                    .to_string(),
            )
        }
        other => Some(other.to_string()),
    }
}

/// The width `n` of a shape `[null, n]`, or a description of why it is not flat.
pub fn flat_width(shape: &Value) -> Result<u64, String> {
    match row_width(shape)? {
        (n, false) => Ok(n),
        (_, true) => Err(format!(
            "has input shape {shape}; kiln models take flat rows, [batch, features]"
        )),
    }
}

/// The features per row of a shape `[null, d1, d2, …]` (their product, in the row-major
/// order `Flatten` reads them) and whether it has more than one feature axis.
pub fn row_width(shape: &Value) -> Result<(u64, bool), String> {
    let dims = shape
        .as_array()
        .ok_or_else(|| format!("has input shape {shape}, which is not a list"))?;
    let [batch, rest @ ..] = dims.as_slice() else {
        return Err(format!("has input shape {shape}, with no batch axis"));
    };
    if rest.is_empty() || !(batch.is_null() || batch.is_u64()) {
        return Err(format!(
            "has input shape {shape}; kiln models take flat rows, [batch, features]"
        ));
    }
    let mut width: u64 = 1;
    for d in rest {
        let d = d
            .as_u64()
            .ok_or_else(|| format!("has input shape {shape}, with no fixed width"))?;
        width = width
            .checked_mul(d)
            .ok_or_else(|| format!("has input shape {shape}, more features than can exist"))?;
    }
    Ok((width, rest.len() > 1))
}

/// The layer names referenced by `keras_history` entries anywhere inside `node`
/// (a Functional `inbound_nodes` entry).
pub fn inbound_names(node: &Value, out: &mut Vec<String>) {
    match node {
        Value::Object(o) => {
            if let Some(Value::Array(h)) = o.get("keras_history")
                && let Some(name) = h.first().and_then(Value::as_str)
            {
                out.push(name.to_string());
                return;
            }
            for v in o.values() {
                inbound_names(v, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|v| inbound_names(v, out)),
        _ => {}
    }
}

/// The layer names of `input_layers` / `output_layers`: `[name, 0, 0]` or `[[name, 0, 0], ...]`.
pub fn endpoint_names(v: &Value) -> Vec<String> {
    match v {
        Value::Array(a) => match a.first() {
            Some(Value::String(s)) => vec![s.clone()],
            _ => a.iter().flat_map(endpoint_names).collect(),
        },
        Value::Object(o) => o.values().flat_map(endpoint_names).collect(),
        _ => vec![],
    }
}
