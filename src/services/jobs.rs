//! Jobs: checked against their model and datasets before they are queued, so
//! a bad parameter is a 422 now rather than a failed job later.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::page::PageRequest;
use super::{ServiceError, Services};
use crate::jobs::references::{params_model_refs, referenced_models, resolve_params_model};
use crate::jobs::{DatasetShape, JobKind, check_params};
use crate::nn::data::Task;
use crate::store::{
    ArtifactRecord, CancelOutcome, Catalog, DatasetRecord, InsertJobOutcome, JobRecord, JobStatus,
    MetricPoint, NewJobRecord,
};
use crate::validation::{Checker, Invalid};

/// A job as the client asked for it.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub kind: JobKind,
    pub model: Uuid,
    pub dataset: Uuid,
    pub eval_dataset: Option<Uuid>,
    pub params: Value,
}

#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub status: Option<JobStatus>,
    pub kind: Option<JobKind>,
}

fn shape(record: &DatasetRecord) -> Result<DatasetShape, ServiceError> {
    let task = Task::parse(&record.task).ok_or_else(|| {
        ServiceError::Internal(anyhow::anyhow!(
            "dataset {} has unknown task {}",
            record.id,
            record.task
        ))
    })?;
    Ok(DatasetShape {
        rows: record.rows as usize,
        features: record.features as usize,
        classes: record.classes as usize,
        task,
        input_shape: record.input_shape.clone(),
    })
}

fn key_reused() -> ServiceError {
    ServiceError::Conflict {
        field: "Idempotency-Key",
        detail: "this Idempotency-Key was used for a different request".into(),
    }
}

impl Services {
    pub async fn create_job(
        &self,
        req: NewJob,
        idempotency_key: Option<String>,
    ) -> Result<JobRecord, ServiceError> {
        let request_hash = {
            let canonical = json!({
                "kind": req.kind, "model": req.model, "dataset": req.dataset,
                "eval_dataset": req.eval_dataset, "params": req.params,
            });
            let digest = Sha256::digest(canonical.to_string().as_bytes());
            digest
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        };
        // A replay with the same key is answered before anything else is checked.
        if let Some(key) = &idempotency_key
            && let Some(existing) = self.store.job_by_idempotency_key(key).await?
        {
            return if existing.request_hash.as_deref() == Some(request_hash.as_str()) {
                Ok(existing)
            } else {
                Err(key_reused())
            };
        }

        let mut c = Checker::new();
        let model = self.store.get_model(req.model).await?;
        c.require(
            model.is_some(),
            "model",
            format!("no model with id {}", req.model),
        );
        let dataset = self.store.get_dataset(req.dataset).await?;
        c.require(
            dataset.is_some(),
            "dataset",
            format!("no dataset with id {}", req.dataset),
        );
        let eval_dataset = match req.eval_dataset {
            None => None,
            Some(id) => {
                let d = self.store.get_dataset(id).await?;
                c.require(
                    d.is_some(),
                    "eval_dataset",
                    format!("no dataset with id {id}"),
                );
                d
            }
        };
        c.require(
            req.params.is_object() || req.params.is_null(),
            "params",
            "must be an object",
        );
        c.finish(())?;
        let (Some(model), Some(dataset)) = (model, dataset) else {
            return Err(ServiceError::Internal(anyhow::anyhow!(
                "checked references vanished"
            )));
        };
        let mut params = if req.params.is_null() {
            json!({})
        } else {
            req.params.clone()
        };
        self.resolve_params_models(req.kind, &mut params).await?;
        let eval_shape = eval_dataset.as_ref().map(shape).transpose()?;
        let normalized = check_params(
            req.kind,
            &params,
            &model.architecture,
            &shape(&dataset)?,
            eval_shape.as_ref(),
            &self.settings.job_limits(),
        )?;

        let outcome = self
            .store
            .insert_job(NewJobRecord {
                id: Uuid::now_v7(),
                kind: req.kind.as_str().to_string(),
                model_id: model.id,
                dataset_id: dataset.id,
                eval_dataset_id: eval_dataset.map(|d| d.id),
                models: referenced_models(req.kind, model.id, &normalized),
                params: normalized,
                max_attempts: i64::from(self.settings.queue.max_attempts),
                idempotency_key,
                request_hash: Some(request_hash),
            })
            .await?;
        let job = match outcome {
            InsertJobOutcome::Created(job) => {
                tracing::info!(job_id = %job.id, kind = %job.kind, "job queued");
                self.queue.notify();
                job
            }
            InsertJobOutcome::Existing(job) => job,
            InsertJobOutcome::KeyConflict => {
                return Err(key_reused());
            }
        };
        Ok(job)
    }

    /// Replaces each model id the params of `kind` name by its normalised form
    /// (for a distill student `{"model", "architecture"}`), so the params check sees
    /// the model's shape and the job record says which network was used.
    async fn resolve_params_models(
        &self,
        kind: JobKind,
        params: &mut Value,
    ) -> Result<(), ServiceError> {
        for reference in params_model_refs(kind, params) {
            let id = reference
                .value
                .as_str()
                .and_then(|s| Uuid::parse_str(s).ok())
                .ok_or_else(|| {
                    Invalid::one(
                        reference.field,
                        "must be a model id or an architecture ({\"input_dim\": …, \"layers\": […]})",
                    )
                })?;
            let model =
                self.store.get_model(id).await?.ok_or_else(|| {
                    Invalid::one(reference.field, format!("no model with id {id}"))
                })?;
            resolve_params_model(reference.role, params, id, &model.architecture);
        }
        Ok(())
    }

    pub async fn list_jobs(
        &self,
        filter: &JobFilter,
        page: PageRequest,
    ) -> Result<Vec<JobRecord>, ServiceError> {
        Ok(self
            .store
            .list_jobs(
                filter.status,
                filter.kind.map(JobKind::as_str),
                page.limit + 1,
                page.cursor,
            )
            .await?)
    }

    pub async fn get_job(&self, id: Uuid) -> Result<JobRecord, ServiceError> {
        self.store
            .get_job(id)
            .await?
            .ok_or_else(|| ServiceError::not_found("job", "id", id))
    }

    pub async fn cancel_job(&self, id: Uuid) -> Result<JobRecord, ServiceError> {
        match self.store.request_cancel(id).await? {
            CancelOutcome::NotFound => Err(ServiceError::not_found("job", "id", id)),
            CancelOutcome::AlreadyFinished(job) => Err(ServiceError::Conflict {
                field: "id",
                detail: format!("job {id} has already finished ({})", job.status),
            }),
            CancelOutcome::Cancelled(job) | CancelOutcome::Requested(job) => {
                tracing::info!(job_id = %id, status = %job.status, "cancellation requested");
                Ok(job)
            }
        }
    }

    pub async fn job_metrics(&self, id: Uuid) -> Result<Vec<MetricPoint>, ServiceError> {
        self.get_job(id).await?;
        Ok(self.store.job_metrics(id).await?)
    }

    pub async fn job_artifacts(&self, id: Uuid) -> Result<Vec<ArtifactRecord>, ServiceError> {
        self.get_job(id).await?;
        Ok(self.store.artifacts_for_job(id).await?)
    }
}
