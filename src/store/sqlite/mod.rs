//! The SQLite backend: all of kiln's SQL, in one database file.
//!
//! Queries are plain `sqlx::query`/`query_as` so the crate builds without a
//! database or a `.sqlx/` cache. Ids are stored as 16-byte blobs. Rows are read
//! into the private types of [`rows`] and leave this folder as domain records.
//!
//! SQLite has one writer at a time. Every write here is a single statement or a
//! short `BEGIN IMMEDIATE` transaction (which takes the write lock up front, so
//! it never fails half-way with "database is locked"); no transaction is ever
//! held open while a job computes.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::StoreError;

mod artifacts;
mod datasets;
mod jobs;
mod metrics;
mod models;
mod rows;
mod views;

#[cfg(test)]
mod tests;

/// The schema, embedded at build time from `migrations/`.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// File name of the database inside the data directory.
pub const DATABASE_FILE: &str = "kiln.db";

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Backend(Box::new(e))
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::Migrate(Box::new(e))
    }
}

/// A handle on the database; cheap to clone (it holds the connection pool).
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) `<data_dir>/kiln.db` in WAL mode with
    /// `synchronous=NORMAL`, a 5 s busy timeout and foreign keys on.
    pub async fn connect(data_dir: &Path) -> Result<SqliteStore, StoreError> {
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
        Ok(SqliteStore { pool })
    }

    /// Applies the embedded migrations (idempotent).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Readiness: the database answers and every migration is applied.
    /// Returns the number of queued jobs.
    async fn ping_schema(&self) -> Result<i64, StoreError> {
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

    /// Whether any dataset, model or artifact row names this blob.
    async fn blob_rows_referencing(&self, sha256: &str) -> Result<bool, StoreError> {
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
    async fn blob_rows_all(&self) -> Result<HashSet<String>, StoreError> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT sha256 FROM datasets UNION SELECT data_sha256 FROM datasets
             UNION SELECT sha256 FROM models UNION SELECT sha256 FROM artifacts",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().collect())
    }
}
