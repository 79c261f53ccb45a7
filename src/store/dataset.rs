//! Stored datasets as the services see them.

use serde::Serialize;
use uuid::Uuid;

/// A dataset as stored: the shape of the upload and the two blobs behind it.
#[derive(Debug, Clone, Serialize)]
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
    pub feature_names: Option<Vec<String>>,
    /// `[C, H, W]` of one example for image datasets.
    pub input_shape: Option<Vec<usize>>,
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
    /// `[C, H, W]` of one example for image datasets.
    pub input_shape: Option<Vec<usize>>,
}
