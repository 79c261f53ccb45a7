//! Quantization: int8 weights and u8 activations, integer kernels, calibration.
//!
//! Layout: [`scheme`] (scales and zero points), [`calibrate`] (activation ranges
//! from data: min–max, percentile, entropy), [`kernel`] (u8 × i8 → i32 matrix
//! products with runtime CPU dispatch), [`qmodel`] (a network running in integer
//! arithmetic, with float fallback layers), [`qat`] (fake quantization for
//! quantization-aware fine-tuning).

pub mod budget;
pub mod calibrate;
pub mod compare;
pub mod kernel;
pub mod qat;
pub mod qmodel;
pub mod scheme;
