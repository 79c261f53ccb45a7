//! The domain operations behind the HTTP routes. Services check input, call the
//! store (SQL) and the blob store (files), and wake the queue; they know nothing of HTTP.

use std::sync::Arc;

use crate::blobs::{BlobBackend, BlobInfo, BlobStore};
use crate::config::Settings;
use crate::queue::QueueHandle;
use crate::store::{Catalog, Store};

pub mod artifacts;
pub mod blob_download;
pub mod blob_gc;
pub mod datasets;
mod error;
pub mod jobs;
pub mod model_cache;
pub mod model_download;
pub mod models;
pub mod page;

pub use error::ServiceError;

/// Everything a request needs, cheap to clone into every handler.
#[derive(Clone)]
pub struct Services {
    pub store: Store,
    pub blobs: BlobStore,
    pub queue: QueueHandle,
    pub settings: Arc<Settings>,
    /// Compiled models of recent predict calls.
    pub compiled: Arc<model_cache::ModelCache>,
}

/// An uploaded file, already streamed into the blob store.
#[derive(Debug, Clone)]
pub struct Upload {
    pub blob: BlobInfo,
    pub filename: Option<String>,
}

impl Services {
    /// Streams an uploaded file into the blob store, hashing as it goes, within the upload limit.
    pub async fn store_upload<S>(
        &self,
        stream: S,
        filename: Option<String>,
    ) -> Result<Upload, ServiceError>
    where
        S: futures::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + Unpin,
    {
        let limit = self.settings.limits.max_upload_bytes;
        let blob = self
            .blobs
            .put_stream(stream, limit)
            .await
            .map_err(|e| match e {
                crate::blobs::BlobError::TooLarge { .. } => ServiceError::TooLarge {
                    field: "file",
                    limit,
                },
                other => other.into(),
            })?;
        Ok(Upload { blob, filename })
    }

    /// Removes an upload that did not become a dataset or model, unless something else uses the same bytes.
    pub(crate) async fn discard_upload(&self, upload: &Upload) {
        match self.store.blob_referenced(&upload.blob.sha256).await {
            Ok(false) => {
                if let Err(e) = self.blobs.delete(&upload.blob.sha256).await {
                    tracing::warn!(sha256 = %upload.blob.sha256, error = %e, "cannot remove a rejected upload");
                }
            }
            Ok(true) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot check whether a rejected upload is in use")
            }
        }
    }

    /// For `/readyz`: the database answers and is migrated. Returns the number of queued jobs.
    pub async fn readiness(&self) -> Result<i64, ServiceError> {
        self.store
            .ping()
            .await
            .map_err(|e| ServiceError::Unavailable(format!("database not ready: {e}")))
    }
}

/// Runs CPU work (parsing, encoding, model building) off the async runtime.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T, ServiceError>
where
    F: FnOnce() -> Result<T, ServiceError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ServiceError::Internal(anyhow::anyhow!("blocking task failed: {e}")))?
}
