//! [`SqliteStore`] as the two store traits: each method hands the pool to the
//! table module that holds its SQL.

use std::collections::HashSet;
use std::time::Duration;

use uuid::Uuid;

use super::{SqliteStore, artifacts, datasets, jobs, metrics, models};
use crate::jobs::references::ModelRole;
use crate::store::{
    ArtifactRecord, CancelOutcome, Catalog, CompletedJob, Completion, DatasetRecord,
    HeartbeatOutcome, InsertJobOutcome, JobRecord, JobStatus, MetricPoint, ModelRecord,
    NewDatasetRecord, NewJobRecord, NewModelRecord, QueueStore, StoreError,
};

impl QueueStore for SqliteStore {
    async fn claim_next(&self, lease: Duration) -> Result<Option<JobRecord>, StoreError> {
        jobs::claim_next(self.pool(), lease).await
    }

    async fn heartbeat(
        &self,
        id: Uuid,
        attempt: i64,
        lease: Duration,
    ) -> Result<HeartbeatOutcome, StoreError> {
        jobs::heartbeat(self.pool(), id, attempt, lease).await
    }

    async fn set_progress(
        &self,
        id: Uuid,
        attempt: i64,
        progress: f64,
    ) -> Result<bool, StoreError> {
        jobs::set_progress(self.pool(), id, attempt, progress).await
    }

    async fn record_metrics(
        &self,
        job_id: Uuid,
        step: i64,
        values: &[(String, f64)],
    ) -> Result<(), StoreError> {
        metrics::record_metrics(self.pool(), job_id, step, values).await
    }

    async fn complete(
        &self,
        id: Uuid,
        attempt: i64,
        done: CompletedJob,
    ) -> Result<Completion, StoreError> {
        jobs::complete(self.pool(), id, attempt, done).await
    }

    async fn fail(&self, id: Uuid, attempt: i64, message: &str) -> Result<JobRecord, StoreError> {
        jobs::fail(self.pool(), id, attempt, message).await
    }

    async fn mark_cancelled(&self, id: Uuid, attempt: i64) -> Result<JobRecord, StoreError> {
        jobs::mark_cancelled(self.pool(), id, attempt).await
    }

    async fn release(&self, id: Uuid, attempt: i64) -> Result<JobRecord, StoreError> {
        jobs::release(self.pool(), id, attempt).await
    }

    async fn requeue_expired(&self, now_ms: i64) -> Result<Vec<JobRecord>, StoreError> {
        jobs::requeue_expired(self.pool(), now_ms).await
    }

    async fn requeue_running_at_start(&self) -> Result<Vec<JobRecord>, StoreError> {
        jobs::requeue_running_at_start(self.pool()).await
    }
}

impl Catalog for SqliteStore {
    async fn ping(&self) -> Result<i64, StoreError> {
        self.ping_schema().await
    }

    async fn close(&self) {
        self.pool().close().await;
    }

    async fn insert_dataset(&self, new: NewDatasetRecord) -> Result<DatasetRecord, StoreError> {
        datasets::insert_dataset(self.pool(), new).await
    }

    async fn get_dataset(&self, id: Uuid) -> Result<Option<DatasetRecord>, StoreError> {
        datasets::get_dataset(self.pool(), id).await
    }

    async fn list_datasets(
        &self,
        limit: u32,
        cursor: Option<Uuid>,
    ) -> Result<Vec<DatasetRecord>, StoreError> {
        datasets::list_datasets(self.pool(), limit, cursor).await
    }

    async fn delete_dataset(&self, id: Uuid) -> Result<bool, StoreError> {
        datasets::delete_dataset(self.pool(), id).await
    }

    async fn dataset_in_use(&self, id: Uuid) -> Result<bool, StoreError> {
        datasets::dataset_in_use(self.pool(), id).await
    }

    async fn insert_model(&self, new: NewModelRecord) -> Result<ModelRecord, StoreError> {
        models::insert_model(self.pool(), new).await
    }

    async fn get_model(&self, id: Uuid) -> Result<Option<ModelRecord>, StoreError> {
        models::get_model(self.pool(), id).await
    }

    async fn list_models(
        &self,
        limit: u32,
        cursor: Option<Uuid>,
    ) -> Result<Vec<ModelRecord>, StoreError> {
        models::list_models(self.pool(), limit, cursor).await
    }

    async fn delete_model(&self, id: Uuid) -> Result<bool, StoreError> {
        models::delete_model(self.pool(), id).await
    }

    async fn model_in_use(&self, id: Uuid) -> Result<bool, StoreError> {
        models::model_in_use(self.pool(), id).await
    }

    async fn insert_job(&self, new: NewJobRecord) -> Result<InsertJobOutcome, StoreError> {
        jobs::insert_job(self.pool(), new).await
    }

    async fn job_models(&self, job_id: Uuid) -> Result<Vec<(ModelRole, Uuid)>, StoreError> {
        jobs::job_models(self.pool(), job_id).await
    }

    async fn job_by_idempotency_key(&self, key: &str) -> Result<Option<JobRecord>, StoreError> {
        jobs::job_by_idempotency_key(self.pool(), key).await
    }

    async fn get_job(&self, id: Uuid) -> Result<Option<JobRecord>, StoreError> {
        jobs::get_job(self.pool(), id).await
    }

    async fn list_jobs(
        &self,
        status: Option<JobStatus>,
        kind: Option<&str>,
        limit: u32,
        cursor: Option<Uuid>,
    ) -> Result<Vec<JobRecord>, StoreError> {
        jobs::list_jobs(self.pool(), status, kind, limit, cursor).await
    }

    async fn request_cancel(&self, id: Uuid) -> Result<CancelOutcome, StoreError> {
        jobs::request_cancel(self.pool(), id).await
    }

    async fn artifacts_for_job(&self, job_id: Uuid) -> Result<Vec<ArtifactRecord>, StoreError> {
        artifacts::artifacts_for_job(self.pool(), job_id).await
    }

    async fn get_artifact(&self, id: Uuid) -> Result<Option<ArtifactRecord>, StoreError> {
        artifacts::get_artifact(self.pool(), id).await
    }

    async fn job_metrics(&self, job_id: Uuid) -> Result<Vec<MetricPoint>, StoreError> {
        metrics::job_metrics(self.pool(), job_id).await
    }

    async fn blob_referenced(&self, sha256: &str) -> Result<bool, StoreError> {
        self.blob_rows_referencing(sha256).await
    }

    async fn referenced_blobs(&self) -> Result<HashSet<String>, StoreError> {
        self.blob_rows_all().await
    }
}
