//! Datasets: an upload is parsed and checked once, then kept in a normalised
//! form (NPZ of f32) that jobs read without parsing CSV again.

use uuid::Uuid;

use super::page::PageRequest;
use super::{ServiceError, Services, Upload, blocking};
use crate::blobs::BlobBackend;
use crate::formats::dataset_file::{self, ParseOptions};
use crate::formats::layout::{Layout, parse_input_shape};
use crate::nn::data::Task;
use crate::store::{Catalog, DatasetRecord, NewDatasetRecord};
use crate::validation::{Checker, Invalid};

/// Longest accepted dataset or model name.
pub const MAX_NAME: usize = 200;

/// The optional form fields of a dataset upload.
#[derive(Debug, Default)]
pub struct NewDataset {
    pub name: Option<String>,
    pub label_column: Option<String>,
    pub task: Option<String>,
    /// `nchw` (the default) or `nhwc`: how image values are ordered.
    pub layout: Option<String>,
    /// `[C, H, W]` of one example, for CSV or 2-D NPZ rows that are images.
    pub input_shape: Option<String>,
}

/// Checks a resource name, falling back to `default`.
pub(crate) fn check_name(name: Option<String>, default: &str) -> Result<String, Invalid> {
    let name = name.map(|n| n.trim().to_string()).unwrap_or_default();
    let name = if name.is_empty() {
        default.to_string()
    } else {
        name
    };
    let mut c = Checker::new();
    c.require(
        name.chars().count() <= MAX_NAME && !name.chars().any(char::is_control),
        "name",
        format!("must be at most {MAX_NAME} printable characters"),
    );
    c.finish(name)
}

impl Services {
    pub async fn create_dataset(
        &self,
        upload: Upload,
        req: NewDataset,
    ) -> Result<DatasetRecord, ServiceError> {
        let result = self.create_dataset_inner(&upload, req).await;
        if result.is_err() {
            self.discard_upload(&upload).await;
        }
        result
    }

    async fn create_dataset_inner(
        &self,
        upload: &Upload,
        req: NewDataset,
    ) -> Result<DatasetRecord, ServiceError> {
        let mut c = Checker::new();
        let task = match req.task.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            None => None,
            Some(t) => {
                let task = Task::parse(t);
                c.require(
                    task.is_some(),
                    "task",
                    "must be binary, multiclass or regression",
                );
                task
            }
        };
        let given = |f: Option<String>| f.filter(|v| !v.trim().is_empty());
        let layout = given(req.layout).and_then(|l| {
            let layout = Layout::parse(&l);
            c.require(
                layout.is_some(),
                "layout",
                "must be nchw (channels_first) or nhwc (channels_last)",
            );
            layout
        });
        let input_shape = match given(req.input_shape).map(|s| parse_input_shape(&s)) {
            Some(Ok(shape)) => Some(shape),
            Some(Err(e)) => {
                c.extend(e);
                None
            }
            None => None,
        };
        let default_name = upload.filename.clone().unwrap_or_else(|| "dataset".into());
        let name = match check_name(req.name, &default_name) {
            Ok(n) => n,
            Err(e) => {
                c.extend(e);
                String::new()
            }
        };
        c.finish(())?;

        let options = ParseOptions {
            filename: upload.filename.clone(),
            label_column: req.label_column.filter(|l| !l.trim().is_empty()),
            task,
            max_rows: self.settings.limits.max_rows,
            max_features: self.settings.limits.max_features,
            layout,
            input_shape,
        };
        let content = self.blobs.read(&upload.blob.sha256).await?;
        let parsed = blocking(move || {
            let parsed = dataset_file::parse_bytes(&content, &options)?;
            let npz = dataset_file::write_npz(&parsed.dataset)
                .map_err(|e| ServiceError::Internal(e.into()))?;
            Ok((parsed, npz))
        })
        .await?;
        let (parsed, npz) = parsed;
        let data = self.blobs.put_bytes(&npz).await?;
        let ds = &parsed.dataset;
        let record = self
            .store
            .insert_dataset(NewDatasetRecord {
                id: Uuid::now_v7(),
                name,
                format: parsed.format.to_string(),
                task: ds.task.as_str().to_string(),
                rows: ds.rows() as i64,
                features: ds.features() as i64,
                classes: ds.classes as i64,
                label_column: parsed.label_column,
                sha256: upload.blob.sha256.clone(),
                size_bytes: upload.blob.size_bytes as i64,
                data_sha256: data.sha256,
                feature_names: parsed.feature_names,
                input_shape: ds.input_shape.clone(),
            })
            .await?;
        tracing::info!(dataset_id = %record.id, rows = record.rows, features = record.features, task = %record.task, "dataset created");
        Ok(record)
    }

    pub async fn list_datasets(
        &self,
        page: PageRequest,
    ) -> Result<Vec<DatasetRecord>, ServiceError> {
        Ok(self
            .store
            .list_datasets(page.limit + 1, page.cursor)
            .await?)
    }

    pub async fn get_dataset(&self, id: Uuid) -> Result<DatasetRecord, ServiceError> {
        self.store
            .get_dataset(id)
            .await?
            .ok_or_else(|| ServiceError::not_found("dataset", "id", id))
    }

    pub async fn delete_dataset(&self, id: Uuid) -> Result<(), ServiceError> {
        let record = self.get_dataset(id).await?;
        if self.store.dataset_in_use(id).await? {
            return Err(ServiceError::Conflict {
                field: "id",
                detail: format!("dataset {id} is used by a queued or running job"),
            });
        }
        self.store.delete_dataset(id).await?;
        for sha in [&record.sha256, &record.data_sha256] {
            if !self.store.blob_referenced(sha).await? {
                self.blobs.delete(sha).await?;
            }
        }
        Ok(())
    }
}
