//! ONNX → kiln (placeholder until the importer lands).

use crate::formats::model_file::ModelFile;
use crate::nn::spec::ArchitectureLimits;
use crate::validation::Invalid;

/// Reads an ONNX `ModelProto` and matches its graph to kiln's layer list.
pub fn import(_bytes: &[u8], _limits: &ArchitectureLimits) -> Result<ModelFile, Invalid> {
    Err(Invalid::one("file", "ONNX import is not available yet"))
}
