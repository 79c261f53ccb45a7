//! The `datasets` table.

use sqlx::SqlitePool;
use sqlx::types::Json;
use uuid::Uuid;

use super::rows::{DatasetRow, all};
use crate::store::{DatasetRecord, NewDatasetRecord, StoreError, now_ms};

pub(super) async fn insert_dataset(
    pool: &SqlitePool,
    new: NewDatasetRecord,
) -> Result<DatasetRecord, StoreError> {
    let record: DatasetRow = sqlx::query_as(
        "INSERT INTO datasets (id, name, created_at, format, task, rows, features, classes,
                                   label_column, sha256, size_bytes, data_sha256, feature_names,
                                   input_shape)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             RETURNING *",
    )
    .bind(new.id)
    .bind(new.name)
    .bind(now_ms())
    .bind(new.format)
    .bind(new.task)
    .bind(new.rows)
    .bind(new.features)
    .bind(new.classes)
    .bind(new.label_column)
    .bind(new.sha256)
    .bind(new.size_bytes)
    .bind(new.data_sha256)
    .bind(new.feature_names.map(Json))
    .bind(new.input_shape.map(Json))
    .fetch_one(pool)
    .await?;
    Ok(record.into())
}

pub(super) async fn get_dataset(
    pool: &SqlitePool,
    id: Uuid,
) -> Result<Option<DatasetRecord>, StoreError> {
    let row: Option<DatasetRow> = sqlx::query_as("SELECT * FROM datasets WHERE id = ?")
        .bind(id)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(Into::into))
}

/// Newest first; `cursor` is the last id of the previous page.
pub(super) async fn list_datasets(
    pool: &SqlitePool,
    limit: u32,
    cursor: Option<Uuid>,
) -> Result<Vec<DatasetRecord>, StoreError> {
    let rows: Vec<DatasetRow> = sqlx::query_as(
        "SELECT * FROM datasets WHERE (?1 IS NULL OR id < ?1) ORDER BY id DESC LIMIT ?2",
    )
    .bind(cursor)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(all(rows))
}

/// Deletes the row; true when there was one. The caller checks
/// [`dataset_in_use`] first and removes unreferenced blobs after.
pub(super) async fn delete_dataset(pool: &SqlitePool, id: Uuid) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM datasets WHERE id = ?")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// True while a queued or running job trains or evaluates on this dataset.
pub(super) async fn dataset_in_use(pool: &SqlitePool, id: Uuid) -> Result<bool, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM jobs WHERE status IN ('queued', 'running')
                                                AND (dataset_id = ?1 OR eval_dataset_id = ?1))",
    )
    .bind(id)
    .fetch_one(pool)
    .await?)
}
