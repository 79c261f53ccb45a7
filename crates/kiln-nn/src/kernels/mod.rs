//! The products and windows the layers run on: f32 gemm, im2col convolution,
//! pooling windows, sparse (CSR) products, the one CPU-feature probe and how many
//! threads one operation may use. The int8 kernels live with quantization
//! ([`crate::optimize::quant`]), the only thing that uses them.

pub mod conv;
pub mod cpu;
pub mod gemm;
pub mod parallel;
pub mod pool;
pub mod sparse;
