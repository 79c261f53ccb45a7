//! Which bytes `GET /v1/models/{id}/download?format=…` answers with.
//!
//! A model is stored in one of two forms: a kiln safetensors file, or (after a
//! compress job, or an upload of one) kiln's compressed artifact. The stored
//! form downloads as it is; `format=safetensors` of a compressed model decodes
//! it and writes the dense safetensors file that Python's `safetensors` opens;
//! `format=onnx` writes any model as an ONNX graph (int8 ones as QDQ).

use super::{ServiceError, Services, blocking};
use crate::blobs::BlobBackend;
use crate::formats::{model_file, onnx};
use crate::store::ModelRecord;
use crate::validation::Invalid;

/// The download formats, by their `format` query value.
pub const FORMATS: [&str; 3] = ["safetensors", "kilnz", "onnx"];

/// What to send.
pub enum Download {
    /// The stored blob, served with ranges and ETag.
    Stored { filename: String },
    /// A file converted on the fly.
    Converted { filename: String, bytes: Vec<u8> },
}

impl Services {
    /// Resolves `format` (None: the stored form) for `record`.
    pub async fn model_download(
        &self,
        record: &ModelRecord,
        format: Option<&str>,
    ) -> Result<Download, ServiceError> {
        if let Some(f) = format.filter(|f| !FORMATS.contains(f)) {
            return Err(Invalid::one(
                "format",
                format!("`{f}` is not available; formats: {}", FORMATS.join(", ")),
            )
            .into());
        }
        // The magic bytes tell the stored form; the whole file is read only to convert it.
        let head = self.blobs.read_head(&record.sha256, 8).await?;
        let stored = crate::formats::model::extension(&head);
        let wanted = format.unwrap_or(stored);
        let filename = format!("{}.{wanted}", record.name);
        if wanted == stored {
            return Ok(Download::Stored { filename });
        }
        if wanted == "kilnz" {
            return Err(Invalid::one(
                "format",
                "this model is not compressed; a compress job makes a kilnz artifact of it",
            )
            .into());
        }
        let bytes = self.blobs.read(&record.sha256).await?;
        let to_onnx = wanted == "onnx";
        let bytes = blocking(move || {
            let file = crate::formats::model::read(&bytes)?;
            if to_onnx {
                onnx::export(&file).map_err(|e| ServiceError::Internal(e.into()))
            } else {
                model_file::encode(&file).map_err(|e| ServiceError::Internal(e.into()))
            }
        })
        .await?;
        Ok(Download::Converted { filename, bytes })
    }
}
