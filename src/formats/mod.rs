//! Bytes to datasets and models and back: CSV and NPZ uploads, kiln's safetensors model files.

pub mod compressed;
pub mod csv;
pub mod dataset_file;
pub mod huffman;
pub mod model_file;
pub mod npz;
pub mod quantized;
pub mod sparse_layout;
pub mod tensor;
