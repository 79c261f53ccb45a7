//! The `datasets` table.

use serde::Serialize;
use sqlx::types::Json;
use uuid::Uuid;

use super::{Store, StoreError, now_ms};

/// A dataset as stored: the shape of the upload and the two blobs behind it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct DatasetRecord {
    pub id: Uuid,
    pub name: String,
    /// Unix milliseconds.
    pub created_at: i64,
    /// `csv` or `npz`: the format of the uploaded file.
    pub format: String,
    /// `binary`, `multiclass` or `regression`.
    pub task: String,
    pub rows: i64,
    pub features: i64,
    pub classes: i64,
    pub label_column: Option<String>,
    /// sha256 of the uploaded file (a blob).
    pub sha256: String,
    /// Size of the uploaded file.
    pub size_bytes: i64,
    /// sha256 of the normalised NPZ blob the jobs read.
    pub data_sha256: String,
    pub feature_names: Option<Json<Vec<String>>>,
}

/// What `insert_dataset` writes; `created_at` is set by the store.
#[derive(Debug, Clone)]
pub struct NewDatasetRecord {
    pub id: Uuid,
    pub name: String,
    pub format: String,
    pub task: String,
    pub rows: i64,
    pub features: i64,
    pub classes: i64,
    pub label_column: Option<String>,
    pub sha256: String,
    pub size_bytes: i64,
    pub data_sha256: String,
    pub feature_names: Option<Vec<String>>,
}

impl Store {
    pub async fn insert_dataset(&self, new: NewDatasetRecord) -> Result<DatasetRecord, StoreError> {
        let record = sqlx::query_as(
            "INSERT INTO datasets (id, name, created_at, format, task, rows, features, classes,
                                   label_column, sha256, size_bytes, data_sha256, feature_names)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
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
        .fetch_one(self.pool())
        .await?;
        Ok(record)
    }

    pub async fn get_dataset(&self, id: Uuid) -> Result<Option<DatasetRecord>, StoreError> {
        Ok(sqlx::query_as("SELECT * FROM datasets WHERE id = ?")
            .bind(id)
            .fetch_optional(self.pool())
            .await?)
    }

    /// Newest first; `cursor` is the last id of the previous page.
    pub async fn list_datasets(
        &self,
        limit: u32,
        cursor: Option<Uuid>,
    ) -> Result<Vec<DatasetRecord>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT * FROM datasets WHERE (?1 IS NULL OR id < ?1) ORDER BY id DESC LIMIT ?2",
        )
        .bind(cursor)
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }

    /// Deletes the row; true when there was one. The caller checks
    /// [`Store::dataset_in_use`] first and removes unreferenced blobs after.
    pub async fn delete_dataset(&self, id: Uuid) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM datasets WHERE id = ?")
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// True while a queued or running job trains or evaluates on this dataset.
    pub async fn dataset_in_use(&self, id: Uuid) -> Result<bool, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM jobs WHERE status IN ('queued', 'running')
                                                AND (dataset_id = ?1 OR eval_dataset_id = ?1))",
        )
        .bind(id)
        .fetch_one(self.pool())
        .await?)
    }
}
