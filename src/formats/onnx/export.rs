//! kiln → ONNX (placeholder until the exporter lands).

use crate::formats::model_file::ModelFile;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("the exported graph failed kiln's structural check: {0}")]
    Check(String),
}

/// Writes `file` as an ONNX model.
pub fn export(_file: &ModelFile) -> Result<Vec<u8>, ExportError> {
    Err(ExportError::Check(
        "ONNX export is not available yet".into(),
    ))
}
