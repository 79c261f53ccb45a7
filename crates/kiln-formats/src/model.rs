//! One entry point for reading a stored model, whichever of kiln's encodings
//! it is in, so callers never choose a decoder and the two decoders never
//! import each other.

use super::model_meta::ModelFile;
use super::{compressed, model_file};
use kiln_nn::validation::Invalid;

/// The file extension, and `format` download name, of a stored model file:
/// `kilnz` for kiln's compressed artifact, `safetensors` otherwise.
pub fn extension(bytes: &[u8]) -> &'static str {
    if compressed::is_compressed(bytes) {
        "kilnz"
    } else {
        "safetensors"
    }
}

/// Reads and checks a kiln model file — safetensors, or kiln's compressed
/// artifact (whose `dtype` reads `shared{bits}`). Every problem is reported with field `file`.
pub fn read(bytes: &[u8]) -> Result<ModelFile, Invalid> {
    if compressed::is_compressed(bytes) {
        let (mut file, info) = compressed::decode(bytes)?;
        file.meta.dtype = format!("shared{}", info.bits);
        return Ok(file);
    }
    model_file::decode(bytes)
}
