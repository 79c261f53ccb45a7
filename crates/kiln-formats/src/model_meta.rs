//! What every stored kiln model is, whatever its encoding: the network and
//! kiln's metadata. The safetensors file ([`super::model_file`]) and the
//! compressed artifact ([`super::compressed`]) both decode to a [`ModelFile`];
//! [`super::model::read`] picks the decoder.

use std::collections::BTreeMap;

use super::quantized::Quantization;
use kiln_nn::Sequential;
use kiln_nn::data::Task;
use kiln_nn::spec::Architecture;
use kiln_nn::validation::Invalid;

pub const FORMAT: &str = "kiln";
pub const FORMAT_VERSION: u32 = 1;

/// kiln's own fields, stored in the safetensors header's `__metadata__`.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelMeta {
    pub format: String,
    pub format_version: u32,
    pub architecture: Architecture,
    pub dtype: String,
    /// False for a freshly initialised model: training starts from a seeded init instead.
    pub trained: bool,
    /// The task the model was last trained for.
    pub task: Option<Task>,
    /// The model this one was derived from.
    pub parent_id: Option<String>,
    /// The job that produced this model.
    pub job_id: Option<String>,
    /// Metadata entries kiln does not interpret, kept as they were.
    pub extra: BTreeMap<String, String>,
    /// The int8 layers of a quantized model (`dtype` `int8`); see [`super::quantized`].
    pub quantization: Option<Quantization>,
}

impl ModelMeta {
    /// Metadata of an untrained model with no lineage.
    pub fn new(architecture: Architecture) -> Self {
        Self {
            format: FORMAT.into(),
            format_version: FORMAT_VERSION,
            architecture,
            dtype: "f32".into(),
            trained: false,
            task: None,
            parent_id: None,
            job_id: None,
            extra: BTreeMap::new(),
            quantization: None,
        }
    }
}

/// A decoded model file: the network and its metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelFile {
    pub model: Sequential,
    pub meta: ModelMeta,
}

impl ModelFile {
    /// The int8 network of a quantized model; `None` for a float one.
    pub fn int8(
        &self,
    ) -> Option<
        Result<
            kiln_nn::optimize::quant::qmodel::QuantizedModel,
            kiln_nn::optimize::quant::qmodel::QuantError,
        >,
    > {
        self.meta.quantization.as_ref().map(|q| {
            kiln_nn::optimize::quant::qmodel::QuantizedModel::from_parts(
                &self.model,
                &q.config,
                q.layers.clone(),
            )
        })
    }

    /// The form the model is served in: its int8 network when quantized, else the
    /// float network compiled with sparse kernels where they are faster (timed on `sample`).
    pub fn predictor(
        &self,
        sample: Option<ndarray::ArrayView2<f32>>,
    ) -> Result<Box<dyn kiln_nn::Predictor>, Invalid> {
        match self.int8() {
            Some(Ok(q)) => Ok(Box::new(q)),
            Some(Err(e)) => Err(Invalid::one(
                "file",
                format!("the int8 layers cannot be rebuilt: {e}"),
            )),
            None => Ok(Box::new(match sample {
                Some(x) => kiln_nn::kernels::sparse::compile_on(&self.model, x),
                None => kiln_nn::kernels::sparse::compile(&self.model),
            })),
        }
    }

    /// A freshly initialised, untrained model (what `POST /v1/models` with an architecture stores).
    pub fn untrained(architecture: &Architecture, seed: u64) -> Self {
        Self {
            model: Sequential::new(architecture, seed),
            meta: ModelMeta::new(architecture.clone()),
        }
    }
}
