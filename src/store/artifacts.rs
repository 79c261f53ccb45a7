//! The `artifacts` table: files a job produced (model files, reports, …).

use serde::Serialize;
use uuid::Uuid;

use super::{Store, StoreError, now_ms};

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ArtifactRecord {
    pub id: Uuid,
    pub job_id: Uuid,
    pub name: String,
    pub content_type: String,
    /// The blob holding the bytes; also the download's ETag.
    pub sha256: String,
    pub size_bytes: i64,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// An artifact row written when its job completes; `job_id` and `created_at` come from the completion.
#[derive(Debug, Clone)]
pub struct NewArtifactRecord {
    pub id: Uuid,
    pub name: String,
    pub content_type: String,
    pub sha256: String,
    pub size_bytes: i64,
}

pub(crate) async fn insert_artifact<'e, E>(
    executor: E,
    job_id: Uuid,
    new: NewArtifactRecord,
) -> Result<ArtifactRecord, sqlx::Error>
where
    E: sqlx::SqliteExecutor<'e>,
{
    sqlx::query_as(
        "INSERT INTO artifacts (id, job_id, name, content_type, sha256, size_bytes, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?)
         RETURNING *",
    )
    .bind(new.id)
    .bind(job_id)
    .bind(new.name)
    .bind(new.content_type)
    .bind(new.sha256)
    .bind(new.size_bytes)
    .bind(now_ms())
    .fetch_one(executor)
    .await
}

impl Store {
    /// A job's artifacts in the order they were registered.
    pub async fn artifacts_for_job(&self, job_id: Uuid) -> Result<Vec<ArtifactRecord>, StoreError> {
        Ok(
            sqlx::query_as("SELECT * FROM artifacts WHERE job_id = ? ORDER BY id")
                .bind(job_id)
                .fetch_all(self.pool())
                .await?,
        )
    }

    pub async fn get_artifact(&self, id: Uuid) -> Result<Option<ArtifactRecord>, StoreError> {
        Ok(sqlx::query_as("SELECT * FROM artifacts WHERE id = ?")
            .bind(id)
            .fetch_optional(self.pool())
            .await?)
    }
}
