//! Sparse inference: CSR kernels for pruned layers, chosen per layer by measurement.
//!
//! A pruned model keeps its weights dense with exact zeros, so training and
//! model files stay simple. Inference is where the zeros can pay: [`Csr`]
//! stores only the kept weights, and [`compile`] turns a [`super::Sequential`]
//! into an [`InferenceModel`] whose layers each run the faster of the dense and
//! the CSR kernel, timed on this machine for single rows and for batches.
//! Density alone does not decide it: a GEMM at batch 1024 beats a CSR product
//! at 30 % density, while a single row at 30 % is already faster sparse.

mod csr;
mod measure;
mod plan;

pub use csr::{Csr, Indices};
pub use plan::{Choice, InferenceModel, Kernel, LayerKernel, compile, compile_on, compile_with};

/// Why a weight matrix cannot be stored as [`Csr`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SparseError {
    #[error("a [{rows}, {cols}] weight with {nonzeros} non-zeros does not fit 32-bit CSR offsets")]
    TooLarge {
        rows: usize,
        cols: usize,
        nonzeros: usize,
    },
}

#[cfg(test)]
mod tests;
