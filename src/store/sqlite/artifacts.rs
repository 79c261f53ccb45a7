//! The `artifacts` table: files a job produced (model files, reports, …).

use sqlx::SqlitePool;
use uuid::Uuid;

use super::rows::{ArtifactRow, all};
use crate::store::{ArtifactRecord, NewArtifactRecord, StoreError, now_ms};

pub(super) async fn insert_artifact<'e, E>(
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
    .map(|row: ArtifactRow| row.into())
}

/// A job's artifacts in the order they were registered.
pub(super) async fn artifacts_for_job(
    pool: &SqlitePool,
    job_id: Uuid,
) -> Result<Vec<ArtifactRecord>, StoreError> {
    let rows: Vec<ArtifactRow> =
        sqlx::query_as("SELECT * FROM artifacts WHERE job_id = ? ORDER BY id")
            .bind(job_id)
            .fetch_all(pool)
            .await?;
    Ok(all(rows))
}

pub(super) async fn get_artifact(
    pool: &SqlitePool,
    id: Uuid,
) -> Result<Option<ArtifactRecord>, StoreError> {
    let row: Option<ArtifactRow> = sqlx::query_as("SELECT * FROM artifacts WHERE id = ?")
        .bind(id)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(Into::into))
}
