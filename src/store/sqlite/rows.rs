//! Rows as SQLite returns them (JSON columns wrapped, status as text), turned
//! into domain records here so nothing outside this folder sees an sqlx type.

use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use crate::formats::source::Source;
use crate::nn::spec::Architecture;
use crate::store::{
    ArtifactRecord, DatasetRecord, JobRecord, JobStatus, MetricPoint, ModelRecord, StoreError,
};

#[derive(sqlx::FromRow)]
pub(super) struct JobRow {
    pub(super) id: Uuid,
    kind: String,
    status: String,
    model_id: Uuid,
    dataset_id: Uuid,
    eval_dataset_id: Option<Uuid>,
    params: Json<Value>,
    progress: f64,
    attempts: i64,
    max_attempts: i64,
    lease_until: Option<i64>,
    heartbeat_at: Option<i64>,
    cancel_requested: bool,
    error: Option<String>,
    result: Option<Json<Value>>,
    idempotency_key: Option<String>,
    request_hash: Option<String>,
    created_at: i64,
    started_at: Option<i64>,
    finished_at: Option<i64>,
}

impl TryFrom<JobRow> for JobRecord {
    type Error = StoreError;

    fn try_from(r: JobRow) -> Result<Self, StoreError> {
        let status = JobStatus::parse(&r.status).ok_or_else(|| StoreError::UnknownStatus {
            job_id: r.id,
            status: r.status.clone(),
        })?;
        Ok(JobRecord {
            id: r.id,
            kind: r.kind,
            status,
            model_id: r.model_id,
            dataset_id: r.dataset_id,
            eval_dataset_id: r.eval_dataset_id,
            params: r.params.0,
            progress: r.progress,
            attempts: r.attempts,
            max_attempts: r.max_attempts,
            lease_until: r.lease_until,
            heartbeat_at: r.heartbeat_at,
            cancel_requested: r.cancel_requested,
            error: r.error,
            result: r.result.map(|j| j.0),
            idempotency_key: r.idempotency_key,
            request_hash: r.request_hash,
            created_at: r.created_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
        })
    }
}

/// One job row, if any, as a record.
pub(super) fn job(row: Option<JobRow>) -> Result<Option<JobRecord>, StoreError> {
    row.map(JobRecord::try_from).transpose()
}

/// Job rows as records, failing on the first unreadable one.
pub(super) fn jobs(rows: Vec<JobRow>) -> Result<Vec<JobRecord>, StoreError> {
    rows.into_iter().map(JobRecord::try_from).collect()
}

#[derive(sqlx::FromRow)]
pub(super) struct ModelRow {
    pub(super) id: Uuid,
    name: String,
    created_at: i64,
    architecture: Json<Architecture>,
    params: i64,
    nonzero_params: i64,
    size_bytes: i64,
    dtype: String,
    sha256: String,
    trained: bool,
    parent_id: Option<Uuid>,
    job_id: Option<Uuid>,
    task: Option<String>,
    source: Option<Json<Source>>,
}

impl From<ModelRow> for ModelRecord {
    fn from(r: ModelRow) -> Self {
        ModelRecord {
            id: r.id,
            name: r.name,
            created_at: r.created_at,
            architecture: r.architecture.0,
            params: r.params,
            nonzero_params: r.nonzero_params,
            size_bytes: r.size_bytes,
            dtype: r.dtype,
            sha256: r.sha256,
            trained: r.trained,
            parent_id: r.parent_id,
            job_id: r.job_id,
            task: r.task,
            source: r.source.map(|s| s.0),
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct DatasetRow {
    pub(super) id: Uuid,
    name: String,
    created_at: i64,
    format: String,
    task: String,
    rows: i64,
    features: i64,
    classes: i64,
    label_column: Option<String>,
    sha256: String,
    size_bytes: i64,
    data_sha256: String,
    feature_names: Option<Json<Vec<String>>>,
    input_shape: Option<Json<Vec<usize>>>,
}

impl From<DatasetRow> for DatasetRecord {
    fn from(r: DatasetRow) -> Self {
        DatasetRecord {
            id: r.id,
            name: r.name,
            created_at: r.created_at,
            format: r.format,
            task: r.task,
            rows: r.rows,
            features: r.features,
            classes: r.classes,
            label_column: r.label_column,
            sha256: r.sha256,
            size_bytes: r.size_bytes,
            data_sha256: r.data_sha256,
            feature_names: r.feature_names.map(|f| f.0),
            input_shape: r.input_shape.map(|s| s.0),
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct ArtifactRow {
    pub(super) id: Uuid,
    job_id: Uuid,
    name: String,
    content_type: String,
    sha256: String,
    size_bytes: i64,
    created_at: i64,
}

impl From<ArtifactRow> for ArtifactRecord {
    fn from(r: ArtifactRow) -> Self {
        ArtifactRecord {
            id: r.id,
            job_id: r.job_id,
            name: r.name,
            content_type: r.content_type,
            sha256: r.sha256,
            size_bytes: r.size_bytes,
            created_at: r.created_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct MetricRow {
    job_id: Uuid,
    step: i64,
    name: String,
    value: f64,
    created_at: i64,
}

impl From<MetricRow> for MetricPoint {
    fn from(r: MetricRow) -> Self {
        MetricPoint {
            job_id: r.job_id,
            step: r.step,
            name: r.name,
            value: r.value,
            created_at: r.created_at,
        }
    }
}

/// Rows of any plain (infallible) kind as their records.
pub(super) fn all<R, T: From<R>>(rows: Vec<R>) -> Vec<T> {
    rows.into_iter().map(T::from).collect()
}
