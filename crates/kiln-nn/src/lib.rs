//! The tensor core: layers, losses, optimizers and metrics over `ndarray`.
//! It imports nothing of tokio, sqlx or axum, and does no file IO.
//!
//! What the rest of kiln calls:
//! * [`Sequential::new`]`(&architecture, seed)` builds a freshly initialised network;
//!   [`Sequential::from_weights`] rebuilds one from stored tensors.
//! * [`Sequential::predict`] runs inference (`[rows, in] → [rows, out]`,
//!   probabilities for sigmoid/softmax heads); [`Sequential::forward`] also
//!   returns the last pre-activation.
//! * [`train::trainer::fit`] trains with a [`train::trainer::FitConfig`].
//! * [`measure::evaluation::evaluate`] computes a task's metrics on data.
//!
//! Parameters live in [`layers::param::Param`] (`value`, `grad`, optional pruning
//! `mask`); optimizers walk the flat list from [`Sequential::params_mut`].

//!
//! The tree, by concept:
//! * [`spec`]: the architecture a client sends and the one shape walk;
//! * [`layers`]: each layer kind, its activation, parameters and initialisation;
//! * [`model`]: `Sequential`, a stack of layers, and its workspace;
//! * [`kernels`]: the products and windows layers run on (gemm, conv, pooling,
//!   sparse), the CPU-feature probe and the thread budget;
//! * [`train`]: losses, optimizers, schedules, regularization, batching, the fit loop;
//! * [`measure`]: metrics, evaluation on data, the timing probe;
//! * [`optimize`]: what makes a model smaller or faster — pruning, quantization,
//!   weight sharing, compaction, distillation, batch-norm folding, surgery.
pub mod data;
pub mod datagen;
pub mod kernels;
pub mod layers;
pub mod measure;
pub mod model;
pub mod optimize;
pub mod predictor;
pub mod spec;
pub mod train;
pub mod validation;

pub use layers::param::Param;
pub use measure::evaluation::{Evaluation, Head, evaluate};
pub use model::{Forward, Sequential, Workspace};
pub use predictor::Predictor;
pub use train::loss::Loss;
pub use train::optim::OptimizerConfig;
pub use train::regularization::Regularization;
pub use train::schedule::Schedule;
pub use train::trainer::{
    EarlyStopping, EpochMetrics, FitConfig, FitError, FitOutcome, Hooks, NoHook, Objective,
    StepHook, fit, fit_with, fit_with_hook,
};

#[cfg(test)]
mod cnn_tests;
#[cfg(test)]
mod tests;
