//! Kiln's persistent state behind two traits, so a second database is one new
//! folder: [`QueueStore`] is the queue's view (claim, heartbeat, finish, requeue),
//! [`Catalog`] the services' view (datasets, models, jobs as requests, artifacts,
//! metrics). Both speak the domain records defined here; rows, SQL and the
//! database's idioms stay inside the backend folder ([`sqlite`] today).
//!
//! Ids are UUID v7, so id order is creation order and a page cursor is simply
//! "ids below the last one seen". Timestamps are unix milliseconds (`i64`); the
//! API formats them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

mod artifact;
mod catalog;
mod dataset;
mod job;
mod metric;
mod model;
mod queue_store;
pub mod sqlite;

pub use artifact::{ArtifactRecord, NewArtifactRecord};
pub use catalog::Catalog;
pub use dataset::{DatasetRecord, NewDatasetRecord};
pub use job::{
    CancelOutcome, CompletedJob, Completion, HeartbeatOutcome, InsertJobOutcome, JobRecord,
    JobStatus, NewJobRecord,
};
pub use metric::MetricPoint;
pub use model::{ModelRecord, NewModelRecord};
pub use queue_store::QueueStore;

/// The backend this build runs on. Code above `store/` names only this alias
/// and the traits, so switching backends is a change here and in start-up.
pub type Store = sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed (connection, query, constraint…); the text is the backend's.
    #[error("database: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("database migration: {0}")]
    Migrate(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// `/readyz` answers 503 with this until the migrations ran.
    #[error("database schema not migrated: {applied} of {expected} migrations applied")]
    NotMigrated { applied: i64, expected: i64 },
    /// A fenced write found the job no longer `running` under this attempt: another
    /// worker owns it now (its lease expired), or it was released or finished.
    #[error("job {job_id} attempt {attempt}: lease lost")]
    LeaseLost { job_id: uuid::Uuid, attempt: i64 },
    /// A `job_models` row names a role this build does not know (a newer schema's).
    #[error("job {job_id} references a model in unknown role {role:?}")]
    UnknownRole { job_id: uuid::Uuid, role: String },
    /// A job row holds a status this build does not know (a newer schema's).
    #[error("job {job_id} has unknown status {status:?}")]
    UnknownStatus { job_id: uuid::Uuid, status: String },
    #[error("no {what} with id {id}")]
    NotFound { what: &'static str, id: uuid::Uuid },
}

/// Unix time in milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

pub(crate) fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
