//! Keras 3 `.keras` files → kiln (placeholder until the importer lands).

use crate::formats::model_file::ModelFile;
use crate::nn::spec::ArchitectureLimits;
use crate::validation::Invalid;

/// Reads a `.keras` zip (`config.json`, `metadata.json`, `model.weights.h5`).
pub fn import(_bytes: &[u8], _limits: &ArchitectureLimits) -> Result<ModelFile, Invalid> {
    Err(Invalid::one("file", "Keras import is not available yet"))
}
