//! Loads a claimed job's inputs: the model file blob and the normalised dataset blobs.

use crate::blobs::{BlobBackend, BlobStore};
use crate::formats::dataset_file;
use crate::formats::model_file::ModelFile;
use crate::jobs::references::{InputModels, ModelRole};
use crate::jobs::{JobError, JobInputs};
use crate::store::{Catalog, JobRecord, Store};

fn decode_model(bytes: &[u8]) -> Result<ModelFile, JobError> {
    crate::formats::model::read(bytes)
        .map_err(|e| JobError::Failed(format!("the model file cannot be read: {e}")))
}

fn internal(what: &str, e: impl std::fmt::Display) -> JobError {
    JobError::Failed(format!("cannot load the {what}: {e}"))
}

/// Reads the model and datasets a job names. Decoding runs on the blocking pool.
pub(super) async fn load_inputs(
    store: Store,
    blobs: BlobStore,
    job: JobRecord,
) -> Result<JobInputs, JobError> {
    let model = store
        .get_model(job.model_id)
        .await
        .map_err(|e| internal("model", e))?
        .ok_or_else(|| JobError::Failed(format!("model {} no longer exists", job.model_id)))?;
    let model_bytes = blobs
        .read(&model.sha256)
        .await
        .map_err(|e| internal("model file", e))?;
    // The normalised datasets' bytes; they are decoded with the model, off the runtime.
    let dataset_bytes = |id: uuid::Uuid| {
        let store = store.clone();
        let blobs = blobs.clone();
        async move {
            let d = store
                .get_dataset(id)
                .await
                .map_err(|e| internal("dataset", e))?
                .ok_or_else(|| JobError::Failed(format!("dataset {id} no longer exists")))?;
            blobs
                .read(&d.data_sha256)
                .await
                .map_err(|e| internal("dataset", e))
        }
    };
    let data = dataset_bytes(job.dataset_id).await?;
    let eval = match job.eval_dataset_id {
        Some(id) => Some(dataset_bytes(id).await?),
        None => None,
    };
    // The further models the job references (a distill job's student, …), by role.
    let references = store
        .job_models(job.id)
        .await
        .map_err(|e| internal("job's models", e))?;
    let mut referenced = Vec::new();
    for (role, id) in references {
        if role == ModelRole::Input {
            continue;
        }
        let what = role.as_str();
        let record = store
            .get_model(id)
            .await
            .map_err(|e| internal(&format!("{what} model"), e))?
            .ok_or_else(|| JobError::Failed(format!("{what} model {id} no longer exists")))?;
        let bytes = blobs
            .read(&record.sha256)
            .await
            .map_err(|e| internal(&format!("{what} model file"), e))?;
        referenced.push((role, bytes));
    }
    let params = job.params.clone();
    let model_id = job.model_id;
    let job_id = job.id;
    tokio::task::spawn_blocking(move || {
        let model = decode_model(&model_bytes)?;
        let size = model_bytes.len();
        let mut models = InputModels::default();
        for (role, bytes) in &referenced {
            models.insert(*role, decode_model(bytes)?);
        }
        let dataset = dataset_file::read_npz(&data).map_err(|e| internal("dataset", e))?;
        let eval_dataset = eval
            .map(|b| dataset_file::read_npz(&b).map_err(|e| internal("evaluation dataset", e)))
            .transpose()?;
        Ok(JobInputs {
            model,
            model_bytes: size,
            dataset,
            eval_dataset,
            params,
            model_id,
            job_id,
            models,
        })
    })
    .await
    .map_err(|e| internal("inputs", e))?
}
