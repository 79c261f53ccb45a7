//! Bytes to datasets and models and back: CSV and NPZ uploads, kiln's safetensors model files.

pub mod model_file;
