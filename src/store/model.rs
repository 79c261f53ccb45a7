//! Stored models as the services see them.

use serde::Serialize;
use uuid::Uuid;

use crate::formats::source::Source;
use crate::nn::spec::Architecture;

/// A model as stored: its architecture, size, lineage and the blob of its file.
#[derive(Debug, Clone, Serialize)]
pub struct ModelRecord {
    pub id: Uuid,
    pub name: String,
    /// Unix milliseconds.
    pub created_at: i64,
    pub architecture: Architecture,
    pub params: i64,
    pub nonzero_params: i64,
    /// Bytes of the model file.
    pub size_bytes: i64,
    pub dtype: String,
    /// sha256 of the safetensors file (a blob).
    pub sha256: String,
    pub trained: bool,
    /// The model this one was derived from.
    pub parent_id: Option<Uuid>,
    /// The job that produced it.
    pub job_id: Option<Uuid>,
    pub task: Option<String>,
    /// Where an imported model came from (and, for derived models, their ancestor).
    pub source: Option<Source>,
}

/// What `insert_model` (and a job's completion) writes; `created_at` is set by the store.
#[derive(Debug, Clone)]
pub struct NewModelRecord {
    pub id: Uuid,
    pub name: String,
    pub architecture: Architecture,
    pub params: i64,
    pub nonzero_params: i64,
    pub size_bytes: i64,
    pub dtype: String,
    pub sha256: String,
    pub trained: bool,
    pub parent_id: Option<Uuid>,
    pub job_id: Option<Uuid>,
    pub task: Option<String>,
    pub source: Option<Source>,
}
