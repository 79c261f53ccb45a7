//! The `models` table.

use serde::Serialize;
use sqlx::types::Json;
use uuid::Uuid;

use super::{Store, StoreError, now_ms};
use crate::formats::source::Source;
use crate::nn::spec::Architecture;

/// A model as stored: its architecture, size, lineage and the blob of its file.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ModelRecord {
    pub id: Uuid,
    pub name: String,
    /// Unix milliseconds.
    pub created_at: i64,
    pub architecture: Json<Architecture>,
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
    pub source: Option<Json<Source>>,
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

pub(crate) async fn insert_model<'e, E>(
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
}

impl Store {
    pub async fn insert_model(&self, new: NewModelRecord) -> Result<ModelRecord, StoreError> {
        Ok(insert_model(self.pool(), new).await?)
    }

    pub async fn get_model(&self, id: Uuid) -> Result<Option<ModelRecord>, StoreError> {
        Ok(sqlx::query_as("SELECT * FROM models WHERE id = ?")
            .bind(id)
            .fetch_optional(self.pool())
            .await?)
    }

    /// Newest first; `cursor` is the last id of the previous page.
    pub async fn list_models(
        &self,
        limit: u32,
        cursor: Option<Uuid>,
    ) -> Result<Vec<ModelRecord>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT * FROM models WHERE (?1 IS NULL OR id < ?1) ORDER BY id DESC LIMIT ?2",
        )
        .bind(cursor)
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }

    /// Deletes the row; true when there was one. Models derived from it keep
    /// existing with `parent_id` set to NULL.
    pub async fn delete_model(&self, id: Uuid) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM models WHERE id = ?")
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// True while a queued or running job references this model in any role
    /// (its input, a distill job's student, …: see `job_models`).
    pub async fn model_in_use(&self, id: Uuid) -> Result<bool, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM job_models r JOIN jobs j ON j.id = r.job_id
                            WHERE r.model_id = ? AND j.status IN ('queued', 'running'))",
        )
        .bind(id)
        .fetch_one(self.pool())
        .await?)
    }
}
