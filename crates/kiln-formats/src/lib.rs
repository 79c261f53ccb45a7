//! Bytes to datasets and models and back: CSV and NPZ uploads, kiln's safetensors model
//! files, and the formats of other tools (ONNX in and out, Keras in).

pub mod compressed;
pub mod csv;
pub mod dataset_file;
pub mod detect;
pub mod huffman;
pub mod keras;
pub mod layout;
pub mod model;
pub mod model_file;
pub mod model_meta;
pub mod npz;
pub mod onnx;
pub mod quantized;
pub mod source;
pub mod sparse_layout;
pub mod tensor;
