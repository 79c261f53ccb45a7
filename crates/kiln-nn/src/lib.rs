//! The tensor core: layers, losses, optimizers and metrics over `ndarray`.
//! It imports nothing of tokio, sqlx or axum, and does no file IO.
//!
//! What the rest of kiln calls:
//! * [`Sequential::new`]`(&architecture, seed)` builds a freshly initialised network;
//!   [`Sequential::from_weights`] rebuilds one from stored tensors.
//! * [`Sequential::predict`] runs inference (`[rows, in] → [rows, out]`,
//!   probabilities for sigmoid/softmax heads); [`Sequential::forward`] also
//!   returns the last pre-activation.
//! * [`trainer::fit`] trains with a [`trainer::FitConfig`].
//! * [`evaluation::evaluate`] computes a task's metrics on data.
//!
//! Parameters live in [`param::Param`] (`value`, `grad`, optional pruning
//! `mask`); optimizers walk the flat list from [`Sequential::params_mut`].

pub mod activation;
pub mod batch;
pub mod batch_norm;
pub mod compact;
pub mod conv;
pub mod conv2d;
pub mod cpu;
pub mod data;
pub mod datagen;
pub mod dense;
pub mod distill;
pub mod dropout;
pub mod evaluation;
pub mod flatten;
pub mod fold;
pub mod gemm;
pub mod init;
pub mod layer;
pub mod loss;
pub mod metrics;
pub mod model;
pub mod optim;
pub mod parallel;
pub mod param;
pub mod pool;
pub mod pooling;
pub mod predictor;
pub mod prune;
pub mod quant;
pub mod regularization;
pub mod schedule;
pub mod shape;
pub mod share;
pub mod sparse;
pub mod spec;
pub mod surgery;
pub mod timing;
pub mod trainer;
pub mod validation;

pub use evaluation::{Evaluation, Head, evaluate};
pub use loss::Loss;
pub use model::{Forward, Sequential, Workspace};
pub use optim::OptimizerConfig;
pub use param::Param;
pub use predictor::Predictor;
pub use regularization::Regularization;
pub use schedule::Schedule;
pub use trainer::{
    EarlyStopping, EpochMetrics, FitConfig, FitError, FitOutcome, Hooks, NoHook, Objective,
    StepHook, fit, fit_with, fit_with_hook,
};

#[cfg(test)]
mod cnn_tests;
#[cfg(test)]
mod tests;
