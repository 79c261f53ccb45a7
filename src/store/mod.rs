//! All of kiln's SQL: datasets, models, jobs (the queue's table), their metric
//! history and the artifacts they produced, in one SQLite database.
//!
//! Queries are plain `sqlx::query`/`query_as` so the crate builds without a
//! database or a `.sqlx/` cache. Ids are UUID v7 stored as 16-byte blobs, so
//! `ORDER BY id` is creation order and a page cursor is simply "ids below the
//! last one seen". Timestamps are unix milliseconds (`i64`); the API formats them.
//!
//! SQLite has one writer at a time. Every write here is a single statement or a
//! short `BEGIN IMMEDIATE` transaction (which takes the write lock up front, so
//! it never fails half-way with "database is locked"); no transaction is ever
//! held open while a job computes.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::SqlitePool;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

mod artifacts;
mod datasets;
mod jobs;
mod metrics;
mod models;

#[cfg(test)]
mod tests;

pub use artifacts::{ArtifactRecord, NewArtifactRecord};
pub use datasets::{DatasetRecord, NewDatasetRecord};
pub use jobs::{
    CancelOutcome, CompletedJob, HeartbeatOutcome, InsertJobOutcome, JobRecord, JobStatus,
    NewJobRecord,
};
pub use metrics::MetricPoint;
pub use models::{ModelRecord, NewModelRecord};

/// The schema, embedded at build time from `migrations/`.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// File name of the database inside the data directory.
pub const DATABASE_FILE: &str = "kiln.db";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// `/readyz` answers 503 with this until `migrate()` ran.
    #[error("database schema not migrated: {applied} of {expected} migrations applied")]
    NotMigrated { applied: i64, expected: i64 },
    /// A fenced write found the job no longer `running` under this attempt: another
    /// worker owns it now (its lease expired), or it was released or finished.
    #[error("job {job_id} attempt {attempt}: lease lost")]
    LeaseLost { job_id: uuid::Uuid, attempt: i64 },
    /// A `job_models` row names a role this build does not know (a newer schema's).
    #[error("job {job_id} references a model in unknown role {role:?}")]
    UnknownRole { job_id: uuid::Uuid, role: String },
    #[error("no {what} with id {id}")]
    NotFound { what: &'static str, id: uuid::Uuid },
}

/// A handle on the database; cheap to clone (it holds the connection pool).
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
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

impl Store {
    /// Opens (creating if missing) `<data_dir>/kiln.db` in WAL mode with
    /// `synchronous=NORMAL`, a 5 s busy timeout and foreign keys on.
    pub async fn connect(data_dir: &Path) -> Result<Store, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(data_dir.join(DATABASE_FILE))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        Ok(Store { pool })
    }

    /// Applies the embedded migrations (idempotent).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    /// Readiness: the database answers and every migration is applied.
    /// Returns the number of queued jobs.
    pub async fn ping(&self) -> Result<i64, StoreError> {
        let expected = MIGRATOR
            .iter()
            .filter(|m| m.migration_type.is_up_migration())
            .count() as i64;
        let applied: Result<i64, sqlx::Error> =
            sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success = 1")
                .fetch_one(&self.pool)
                .await;
        let applied = match applied {
            Ok(n) => n,
            // No bookkeeping table yet: nothing was applied.
            Err(sqlx::Error::Database(e)) if e.message().contains("no such table") => 0,
            Err(e) => return Err(e.into()),
        };
        if applied < expected {
            return Err(StoreError::NotMigrated { applied, expected });
        }
        let queued = sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE status = 'queued'")
            .fetch_one(&self.pool)
            .await?;
        Ok(queued)
    }

    /// Whether any dataset, model or artifact row names this blob; a blob nobody
    /// names may be deleted.
    pub async fn blob_referenced(&self, sha256: &str) -> Result<bool, StoreError> {
        let used: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM datasets WHERE sha256 = ?1 OR data_sha256 = ?1)
                 OR EXISTS (SELECT 1 FROM models WHERE sha256 = ?1)
                 OR EXISTS (SELECT 1 FROM artifacts WHERE sha256 = ?1)",
        )
        .bind(sha256)
        .fetch_one(&self.pool)
        .await?;
        Ok(used)
    }

    /// Every blob digest a dataset, model or artifact row names.
    pub async fn referenced_blobs(&self) -> Result<std::collections::HashSet<String>, StoreError> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT sha256 FROM datasets UNION SELECT data_sha256 FROM datasets
             UNION SELECT sha256 FROM models UNION SELECT sha256 FROM artifacts",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().collect())
    }

    /// Closes the pool (waits for connections to be returned).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}
