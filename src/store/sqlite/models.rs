//! The `models` table.

use sqlx::SqlitePool;
use sqlx::types::Json;
use uuid::Uuid;

use super::rows::{ModelRow, all};
use crate::store::{ModelRecord, NewModelRecord, StoreError, now_ms};

pub(super) async fn insert_model_in<'e, E>(
    executor: E,
    new: NewModelRecord,
) -> Result<ModelRecord, sqlx::Error>
where
    E: sqlx::SqliteExecutor<'e>,
{
    sqlx::query_as(
        "INSERT INTO models (id, name, created_at, architecture, params, nonzero_params, size_bytes,
                             dtype, sha256, trained, parent_id, job_id, task, source)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         RETURNING *",
    )
    .bind(new.id)
    .bind(new.name)
    .bind(now_ms())
    .bind(Json(new.architecture))
    .bind(new.params)
    .bind(new.nonzero_params)
    .bind(new.size_bytes)
    .bind(new.dtype)
    .bind(new.sha256)
    .bind(new.trained)
    .bind(new.parent_id)
    .bind(new.job_id)
    .bind(new.task)
    .bind(new.source.map(Json))
    .fetch_one(executor)
    .await
    .map(|row: ModelRow| row.into())
}

pub(super) async fn insert_model(
    pool: &SqlitePool,
    new: NewModelRecord,
) -> Result<ModelRecord, StoreError> {
    Ok(insert_model_in(pool, new).await?)
}

pub(super) async fn get_model(
    pool: &SqlitePool,
    id: Uuid,
) -> Result<Option<ModelRecord>, StoreError> {
    let row: Option<ModelRow> = sqlx::query_as("SELECT * FROM models WHERE id = ?")
        .bind(id)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(Into::into))
}

/// Newest first; `cursor` is the last id of the previous page.
pub(super) async fn list_models(
    pool: &SqlitePool,
    limit: u32,
    cursor: Option<Uuid>,
) -> Result<Vec<ModelRecord>, StoreError> {
    let rows: Vec<ModelRow> = sqlx::query_as(
        "SELECT * FROM models WHERE (?1 IS NULL OR id < ?1) ORDER BY id DESC LIMIT ?2",
    )
    .bind(cursor)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(all(rows))
}

/// Deletes the row; true when there was one. Models derived from it keep
/// existing with `parent_id` set to NULL.
pub(super) async fn delete_model(pool: &SqlitePool, id: Uuid) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM models WHERE id = ?")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// True while a queued or running job references this model in any role
/// (its input, a distill job's student, …: see `job_models`).
pub(super) async fn model_in_use(pool: &SqlitePool, id: Uuid) -> Result<bool, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM job_models r JOIN jobs j ON j.id = r.job_id
                            WHERE r.model_id = ? AND j.status IN ('queued', 'running'))",
    )
    .bind(id)
    .fetch_one(pool)
    .await?)
}
