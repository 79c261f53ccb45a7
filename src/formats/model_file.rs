//! kiln model files (safetensors). Placeholder until the tensor core lands.

/// A decoded model file.
pub struct ModelFile;
