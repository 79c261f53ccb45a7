//! Where an imported model came from (ONNX or Keras), kept in the model file's
//! `__metadata__.source` as JSON. Jobs carry it to the models they derive, so an
//! ONNX export of an optimized model gives back the graph input and output names
//! the user's serving stack already calls.

use serde::{Deserialize, Serialize};

use super::model_file::ModelMeta;

/// The `__metadata__` key (in [`ModelMeta::extra`]) holding [`Source`] as JSON.
pub const METADATA_KEY: &str = "source";

/// What an import recorded about the original file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Source {
    /// `onnx` or `keras`.
    pub format: String,
    /// The graph input's name (ONNX) or the input layer's name (Keras).
    pub input_name: String,
    /// The name of the output kiln kept.
    pub output_name: String,
    /// ONNX `producer_name` / Keras' `metadata.json` `keras_version` producer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub producer_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub producer_version: Option<String>,
    /// The default-domain (`ai.onnx`) opset of an ONNX file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opset: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ir_version: Option<i64>,
    /// What the import changed or left out, in words (e.g. a dropped label output).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl Source {
    /// The source recorded in `meta`, if any (a malformed entry reads as none).
    pub fn read(meta: &ModelMeta) -> Option<Source> {
        meta.extra
            .get(METADATA_KEY)
            .and_then(|json| serde_json::from_str(json).ok())
    }

    /// Records `self` in `meta`.
    pub fn write(&self, meta: &mut ModelMeta) {
        if let Ok(json) = serde_json::to_string(self) {
            meta.extra.insert(METADATA_KEY.into(), json);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_nn::spec::Architecture;

    #[test]
    fn a_source_survives_the_metadata_round_trip() {
        let mut meta = ModelMeta::new(Architecture {
            input_dim: 2,
            input_shape: None,
            layers: vec![],
        });
        assert_eq!(Source::read(&meta), None);
        let s = Source {
            format: "onnx".into(),
            input_name: "X".into(),
            output_name: "probabilities".into(),
            producer_name: Some("skl2onnx".into()),
            producer_version: Some("1.20.0".into()),
            opset: Some(21),
            ir_version: Some(10),
            notes: vec!["output_label dropped".into()],
        };
        s.write(&mut meta);
        assert_eq!(Source::read(&meta), Some(s));
    }
}
