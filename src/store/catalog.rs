//! The services' view of the store: datasets, models, jobs as requests and
//! listings, artifacts and metric history.
//!
//! Lists are newest first; `cursor` is the last id of the previous page (ids
//! are UUID v7, so id order is creation order).

use std::collections::HashSet;
use std::future::Future;

use uuid::Uuid;

use super::{
    ArtifactRecord, CancelOutcome, DatasetRecord, InsertJobOutcome, JobRecord, JobStatus,
    MetricPoint, ModelRecord, NewDatasetRecord, NewJobRecord, NewModelRecord, StoreError,
};
use crate::jobs::references::ModelRole;

/// Futures are `Send` so handlers and spawned tasks can await them anywhere.
pub trait Catalog: Send + Sync {
    /// Readiness: the database answers and its schema is current. Returns the
    /// number of queued jobs.
    fn ping(&self) -> impl Future<Output = Result<i64, StoreError>> + Send;

    /// Closes the connections (waits for them to be returned).
    fn close(&self) -> impl Future<Output = ()> + Send;

    fn insert_dataset(
        &self,
        new: NewDatasetRecord,
    ) -> impl Future<Output = Result<DatasetRecord, StoreError>> + Send;

    fn get_dataset(
        &self,
        id: Uuid,
    ) -> impl Future<Output = Result<Option<DatasetRecord>, StoreError>> + Send;

    fn list_datasets(
        &self,
        limit: u32,
        cursor: Option<Uuid>,
    ) -> impl Future<Output = Result<Vec<DatasetRecord>, StoreError>> + Send;

    /// Deletes the row; true when there was one. The caller checks
    /// [`Catalog::dataset_in_use`] first and removes unreferenced blobs after.
    fn delete_dataset(&self, id: Uuid) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// True while a queued or running job trains or evaluates on this dataset.
    fn dataset_in_use(&self, id: Uuid) -> impl Future<Output = Result<bool, StoreError>> + Send;

    fn insert_model(
        &self,
        new: NewModelRecord,
    ) -> impl Future<Output = Result<ModelRecord, StoreError>> + Send;

    fn get_model(
        &self,
        id: Uuid,
    ) -> impl Future<Output = Result<Option<ModelRecord>, StoreError>> + Send;

    fn list_models(
        &self,
        limit: u32,
        cursor: Option<Uuid>,
    ) -> impl Future<Output = Result<Vec<ModelRecord>, StoreError>> + Send;

    /// Deletes the row; true when there was one. Models derived from it keep
    /// existing with `parent_id` unset.
    fn delete_model(&self, id: Uuid) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// True while a queued or running job references this model in any role
    /// (its input, a distill job's student, …).
    fn model_in_use(&self, id: Uuid) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Queues a job with the models it references, honouring its idempotency
    /// key: the same key with the same request hash returns the existing job,
    /// with another hash `KeyConflict`.
    fn insert_job(
        &self,
        new: NewJobRecord,
    ) -> impl Future<Output = Result<InsertJobOutcome, StoreError>> + Send;

    /// The stored models a job references, by role (its input model among them).
    fn job_models(
        &self,
        job_id: Uuid,
    ) -> impl Future<Output = Result<Vec<(ModelRole, Uuid)>, StoreError>> + Send;

    fn job_by_idempotency_key(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<JobRecord>, StoreError>> + Send;

    fn get_job(
        &self,
        id: Uuid,
    ) -> impl Future<Output = Result<Option<JobRecord>, StoreError>> + Send;

    /// Newest first, optionally only one status and/or kind.
    fn list_jobs(
        &self,
        status: Option<JobStatus>,
        kind: Option<&str>,
        limit: u32,
        cursor: Option<Uuid>,
    ) -> impl Future<Output = Result<Vec<JobRecord>, StoreError>> + Send;

    /// Cancels a queued job at once, or asks a running one to stop.
    fn request_cancel(
        &self,
        id: Uuid,
    ) -> impl Future<Output = Result<CancelOutcome, StoreError>> + Send;

    /// A job's artifacts in the order they were registered.
    fn artifacts_for_job(
        &self,
        job_id: Uuid,
    ) -> impl Future<Output = Result<Vec<ArtifactRecord>, StoreError>> + Send;

    fn get_artifact(
        &self,
        id: Uuid,
    ) -> impl Future<Output = Result<Option<ArtifactRecord>, StoreError>> + Send;

    /// The whole metric history of a job, by step then name.
    fn job_metrics(
        &self,
        job_id: Uuid,
    ) -> impl Future<Output = Result<Vec<MetricPoint>, StoreError>> + Send;

    /// Whether any dataset, model or artifact names this blob; a blob nobody
    /// names may be deleted.
    fn blob_referenced(
        &self,
        sha256: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Every blob digest a dataset, model or artifact names.
    fn referenced_blobs(&self) -> impl Future<Output = Result<HashSet<String>, StoreError>> + Send;
}
