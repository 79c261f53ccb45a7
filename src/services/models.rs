//! Models: created untrained from an architecture, uploaded as kiln model
//! files, or registered by jobs (the queue does that).

use uuid::Uuid;

use super::datasets::check_name;
use super::page::PageRequest;
use super::{ServiceError, Services, Upload, blocking};
use crate::blobs::BlobBackend;
use crate::formats::detect::{ModelFormat, looks_like_protobuf};
use crate::formats::model_file::{self, ModelFile};
use crate::formats::source::Source;
use crate::formats::{keras, onnx};
use crate::nn::spec::Architecture;
use crate::nn::spec::ArchitectureLimits;
use crate::store::{Catalog, ModelRecord, NewModelRecord};
use crate::validation::Invalid;

/// What the model rows record about a model file.
struct Summary {
    params: u64,
    nonzero_params: u64,
    dtype: String,
}

impl Summary {
    fn of(file: &ModelFile) -> Self {
        Self {
            params: file.model.param_count(),
            nonzero_params: file.model.nonzero_params(),
            dtype: file.meta.dtype.clone(),
        }
    }
}

/// Seed of the weight initialisation when the client gives none.
pub const DEFAULT_INIT_SEED: u64 = 42;

impl Services {
    pub async fn create_model_from_architecture(
        &self,
        name: Option<String>,
        architecture: Architecture,
        seed: Option<u64>,
    ) -> Result<ModelRecord, ServiceError> {
        let name = check_name(name, "model")?;
        architecture
            .check(&self.settings.architecture_limits())
            .map_err(|e| e.prefixed("architecture"))?;
        let seed = seed.unwrap_or(DEFAULT_INIT_SEED);
        let arch = architecture.clone();
        let (file, summary) = blocking(move || {
            let model = ModelFile::untrained(&arch, seed);
            let summary = Summary::of(&model);
            let bytes = model_file::encode(&model).map_err(|e| ServiceError::Internal(e.into()))?;
            Ok((bytes, summary))
        })
        .await?;
        let blob = self.blobs.put_bytes(&file).await?;
        let record = self
            .store
            .insert_model(NewModelRecord {
                id: Uuid::now_v7(),
                name,
                architecture,
                params: summary.params as i64,
                nonzero_params: summary.nonzero_params as i64,
                size_bytes: blob.size_bytes as i64,
                dtype: summary.dtype,
                sha256: blob.sha256,
                trained: false,
                parent_id: None,
                job_id: None,
                task: None,
                source: None,
            })
            .await?;
        tracing::info!(model_id = %record.id, params = record.params, "untrained model created");
        Ok(record)
    }

    pub async fn create_model_from_upload(
        &self,
        upload: Upload,
        name: Option<String>,
    ) -> Result<ModelRecord, ServiceError> {
        let result = self.create_model_from_upload_inner(&upload, name).await;
        if result.is_err() {
            self.discard_upload(&upload).await;
        }
        result
    }

    async fn create_model_from_upload_inner(
        &self,
        upload: &Upload,
        name: Option<String>,
    ) -> Result<ModelRecord, ServiceError> {
        let default_name = upload
            .filename
            .as_deref()
            .map(strip_model_extension)
            .unwrap_or_else(|| "model".into());
        let name = check_name(name, &default_name)?;
        let bytes = self.blobs.read(&upload.blob.sha256).await?;
        let limits = self.settings.architecture_limits();
        let (file, imported) = blocking(move || read_model_upload(&bytes, &limits)).await?;
        let summary = Summary::of(&file);
        let meta = file.meta.clone();
        // An imported model is stored as a kiln file; the original bytes are not kept.
        let (sha256, size_bytes) = match imported {
            None => (upload.blob.sha256.clone(), upload.blob.size_bytes),
            Some(bytes) => {
                let blob = self.blobs.put_bytes(&bytes).await?;
                (blob.sha256, blob.size_bytes)
            }
        };
        let record = self
            .store
            .insert_model(NewModelRecord {
                id: Uuid::now_v7(),
                name,
                architecture: meta.architecture.clone(),
                params: summary.params as i64,
                nonzero_params: summary.nonzero_params as i64,
                size_bytes: size_bytes as i64,
                dtype: summary.dtype,
                sha256: sha256.clone(),
                trained: meta.trained,
                // Lineage in the file may name models of another kiln; this one knows only its own.
                parent_id: None,
                job_id: None,
                task: meta.task.map(|t| t.as_str().to_string()),
                source: Source::read(&meta),
            })
            .await?;
        if sha256 != upload.blob.sha256 {
            self.discard_upload(upload).await;
        }
        tracing::info!(
            model_id = %record.id,
            params = record.params,
            source = record.source.as_ref().map_or("kiln", |s| s.format.as_str()),
            "model uploaded"
        );
        Ok(record)
    }

    pub async fn list_models(&self, page: PageRequest) -> Result<Vec<ModelRecord>, ServiceError> {
        Ok(self.store.list_models(page.limit + 1, page.cursor).await?)
    }

    pub async fn get_model(&self, id: Uuid) -> Result<ModelRecord, ServiceError> {
        self.store
            .get_model(id)
            .await?
            .ok_or_else(|| ServiceError::not_found("model", "id", id))
    }

    pub async fn delete_model(&self, id: Uuid) -> Result<(), ServiceError> {
        let record = self.get_model(id).await?;
        if self.store.model_in_use(id).await? {
            return Err(ServiceError::Conflict {
                field: "id",
                detail: format!("model {id} is used by a queued or running job"),
            });
        }
        self.store.delete_model(id).await?;
        if !self.store.blob_referenced(&record.sha256).await? {
            self.blobs.delete(&record.sha256).await?;
        }
        Ok(())
    }
}

/// `name.onnx` → `name`, for the extensions of the files kiln reads.
fn strip_model_extension(filename: &str) -> String {
    [".safetensors", ".kilnz", ".onnx", ".keras"]
        .iter()
        .find_map(|ext| filename.strip_suffix(ext))
        .unwrap_or(filename)
        .to_string()
}

/// Reads an uploaded model file of any format kiln takes, told by its content. Returns the
/// model and, for ONNX and Keras files, the kiln safetensors file to store in their place.
fn read_model_upload(
    bytes: &[u8],
    limits: &ArchitectureLimits,
) -> Result<(ModelFile, Option<Vec<u8>>), ServiceError> {
    let file = match ModelFormat::detect(bytes) {
        ModelFormat::Safetensors | ModelFormat::Kilnz => {
            let file = crate::formats::model::read(bytes)?;
            file.meta
                .architecture
                .check(limits)
                .map_err(|e| e.prefixed("file.architecture"))?;
            return Ok((file, None));
        }
        ModelFormat::Keras => keras::import(bytes, limits)?,
        ModelFormat::Onnx => onnx::import(bytes, limits).map_err(|e| {
            if looks_like_protobuf(bytes) {
                e
            } else {
                Invalid::one(
                    "file",
                    "not a model file kiln reads: expected a kiln safetensors or kilnz file, \
                     an ONNX model or a Keras .keras file",
                )
            }
        })?,
    };
    let stored = model_file::encode(&file).map_err(|e| ServiceError::Internal(e.into()))?;
    Ok((file, Some(stored)))
}

/// Most rows one predict call takes; larger batches belong in an evaluate job.
pub const MAX_PREDICT_ROWS: usize = 10_000;

impl Services {
    /// Runs the model on `inputs` (one row per example) and returns its outputs
    /// (probabilities for sigmoid and softmax outputs).
    pub async fn predict(
        &self,
        id: Uuid,
        inputs: Vec<Vec<f32>>,
    ) -> Result<Vec<Vec<f32>>, ServiceError> {
        let record = self.get_model(id).await?;
        let width = record.architecture.input_dim;
        let mut c = crate::validation::Checker::new();
        c.require(
            !inputs.is_empty() && inputs.len() <= MAX_PREDICT_ROWS,
            "inputs",
            format!("must hold 1 to {MAX_PREDICT_ROWS} rows"),
        );
        if let Some((i, row)) = inputs.iter().enumerate().find(|(_, r)| r.len() != width) {
            c.push(
                format!("inputs[{i}]"),
                format!("has {} values; the model expects {width}", row.len()),
            );
        }
        if let Some(i) = inputs.iter().position(|r| r.iter().any(|v| !v.is_finite())) {
            c.push(format!("inputs[{i}]"), "values must be finite numbers");
        }
        c.finish(())?;
        let compiled = match self.compiled.get(&record.sha256) {
            Some(m) => m,
            None => {
                let bytes = self.blobs.read(&record.sha256).await?;
                let m: std::sync::Arc<dyn crate::nn::Predictor> = blocking(move || {
                    let file = crate::formats::model::read(&bytes)?;
                    Ok(std::sync::Arc::from(file.predictor(None)?))
                })
                .await?;
                self.compiled.insert(&record.sha256, m.clone());
                m
            }
        };
        blocking(move || {
            let rows = inputs.len();
            let flat: Vec<f32> = inputs.into_iter().flatten().collect();
            let x = ndarray::Array2::from_shape_vec((rows, width), flat)
                .map_err(|e| ServiceError::Internal(e.into()))?;
            let y = compiled.predict(x.view());
            Ok(y.rows().into_iter().map(|r| r.to_vec()).collect())
        })
        .await
    }
}
