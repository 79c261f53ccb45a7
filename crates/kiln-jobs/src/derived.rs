//! A model a job derived from its input model: lineage metadata and the
//! [`ProducedModel`] the queue stores.

use serde_json::{Map, Value};

use super::{JobInputs, JobOutput, ProducedModel};
use kiln_formats::model_file::ModelFile;
use kiln_formats::model_file::ModelMeta;
use kiln_formats::source::Source;
use kiln_nn::Sequential;
use kiln_nn::data::Task;

/// Metadata of a trained model derived by job `job_id` from model `parent_id`.
pub fn derived_meta(
    model: &Sequential,
    task: Option<Task>,
    parent_id: uuid::Uuid,
    job_id: uuid::Uuid,
) -> ModelMeta {
    let mut meta = ModelMeta::new(model.architecture().clone());
    meta.trained = true;
    meta.task = task;
    meta.parent_id = Some(parent_id.to_string());
    meta.job_id = Some(job_id.to_string());
    meta
}

/// [`derived_meta`] for the job whose inputs are `inputs`; keeps the parent's task
/// (or the dataset's, when the parent had none) and where it was imported from.
pub fn meta_for(model: &Sequential, inputs: &JobInputs) -> ModelMeta {
    let task = inputs.model.meta.task.or(Some(inputs.dataset.task));
    let mut meta = derived_meta(model, task, inputs.model_id, inputs.job_id);
    if let Some(source) = Source::read(&inputs.model.meta) {
        source.write(&mut meta);
    }
    meta
}

/// The stored form of a derived model, named `{prefix}-{first 8 hex digits of the parent}`.
pub fn produced(
    prefix: &str,
    parent_id: uuid::Uuid,
    model: &Sequential,
    file: Vec<u8>,
    dtype: &str,
    task: Option<Task>,
    source: Option<Source>,
) -> ProducedModel {
    ProducedModel {
        name: format!("{prefix}-{}", &parent_id.simple().to_string()[..8]),
        architecture: model.architecture().clone(),
        file,
        params: model.param_count(),
        nonzero_params: model.nonzero_params(),
        dtype: dtype.into(),
        task,
        source,
    }
}

/// The output of a job that derived `file` (stored as `bytes`) from its input model.
pub fn output(
    prefix: &str,
    inputs: &JobInputs,
    file: &ModelFile,
    bytes: Vec<u8>,
    dtype: &str,
    metrics: Map<String, Value>,
    before: Map<String, Value>,
) -> JobOutput {
    JobOutput {
        model: Some(produced(
            prefix,
            inputs.model_id,
            &file.model,
            bytes,
            dtype,
            file.meta.task,
            Source::read(&file.meta),
        )),
        metrics,
        before: Some(before),
        ..JobOutput::default()
    }
}
