//! Jobs as the queue and the services see them, whatever database holds them.

use std::fmt;

use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::{ArtifactRecord, ModelRecord, NewArtifactRecord, NewModelRecord};
use crate::jobs::references::ModelRole;

/// `queued → running → succeeded | failed | cancelled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub const ALL: &'static [JobStatus] = &[
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Succeeded,
        JobStatus::Failed,
        JobStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<JobStatus> {
        Self::ALL.iter().copied().find(|st| st.as_str() == s)
    }

    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobStatus::Succeeded | JobStatus::Failed | JobStatus::Cancelled
        )
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct JobRecord {
    pub id: Uuid,
    /// A [`crate::jobs::JobKind`] name; kept as text so a job of a kind this build
    /// does not know can still be listed and failed with a clear message.
    pub kind: String,
    pub status: JobStatus,
    pub model_id: Uuid,
    pub dataset_id: Uuid,
    pub eval_dataset_id: Option<Uuid>,
    /// The parameters as accepted, defaults filled in.
    pub params: Value,
    /// `0.0..=1.0`.
    pub progress: f64,
    /// Claims so far; the attempt number of the current (or last) run.
    pub attempts: i64,
    pub max_attempts: i64,
    /// Unix ms until which the running worker owns the job.
    pub lease_until: Option<i64>,
    pub heartbeat_at: Option<i64>,
    pub cancel_requested: bool,
    pub error: Option<String>,
    /// Once succeeded: `{model_id, metrics, before, artifacts}`.
    pub result: Option<Value>,
    pub idempotency_key: Option<String>,
    /// sha256 of the canonical request, to tell a replay from a different request under the same key.
    pub request_hash: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

/// A job to queue; the store sets status, timestamps and counters.
#[derive(Debug, Clone)]
pub struct NewJobRecord {
    pub id: Uuid,
    pub kind: String,
    pub model_id: Uuid,
    pub dataset_id: Uuid,
    pub eval_dataset_id: Option<Uuid>,
    pub params: Value,
    pub max_attempts: i64,
    pub idempotency_key: Option<String>,
    pub request_hash: Option<String>,
    /// The stored models the job references beyond `model_id` (which is always
    /// recorded as [`ModelRole::Input`]), from [`crate::jobs::references::referenced_models`].
    pub models: Vec<(ModelRole, Uuid)>,
}

#[derive(Debug, Clone)]
pub enum InsertJobOutcome {
    /// A new job was queued.
    Created(JobRecord),
    /// The idempotency key was used before for the same request: that job.
    Existing(JobRecord),
    /// The idempotency key was used before for a different request.
    KeyConflict,
}

#[derive(Debug, Clone)]
pub enum CancelOutcome {
    /// The job was queued and is now `cancelled`.
    Cancelled(JobRecord),
    /// The job is running; its worker stops at the next batch.
    Requested(JobRecord),
    /// The job had already finished (succeeded, failed or cancelled).
    AlreadyFinished(JobRecord),
    NotFound,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatOutcome {
    /// False when the job is no longer ours (lease expired and requeued, or finished).
    pub lease_kept: bool,
    pub cancel_requested: bool,
}

/// What a successful job leaves behind, written in one transaction.
#[derive(Debug, Clone)]
pub struct CompletedJob {
    pub result: Value,
    pub model: Option<NewModelRecord>,
    pub artifacts: Vec<NewArtifactRecord>,
}

/// What [`super::QueueStore::complete`] registered.
pub type Completion = (JobRecord, Option<ModelRecord>, Vec<ArtifactRecord>);
