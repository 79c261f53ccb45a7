//! Pruning: magnitude masks, structured unit removal and sparsity schedules.
//!
//! The seam with training is [`Param::mask`](crate::layers::param::Param): pruning
//! only decides masks ([`magnitude`]) or which units survive ([`neurons`]);
//! the optimizer re-applies masks after every step, so fine-tuning needs no
//! pruning-aware code. [`gradual`] holds [`StepHook`](crate::train::trainer::StepHook)s
//! that tighten masks along a [`schedule`] during `fit_with_hook`. Structured
//! pruning ends in [`crate::optimize::surgery`], which physically shrinks the network.
//!
//! Layer indices are indices into `architecture.layers` (dropout layers count),
//! as model files name tensors `layers.{i}.weight`.

pub mod gradual;
pub mod magnitude;
pub mod neurons;
pub mod schedule;

pub use gradual::{GradualMagnitude, GradualNeurons};
pub use magnitude::{
    LayerSparsity, MagnitudeConfig, Scope, clear_masks, layer_sparsity, magnitude_masks,
    prunable_layers, set_masks,
};
pub use neurons::{
    NeuronConfig, UnitCriterion, hidden_layers, remove_units, select_units, unit_scores,
};
pub use schedule::{PruneSchedule, is_pruning_step, polynomial_sparsity};

use crate::layers::UnsupportedLayer;
use crate::optimize::surgery::SurgeryError;

/// Why a pruning request cannot be carried out.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PruneError {
    #[error("pruning would remove every unit of layer {layer}")]
    EmptyLayer { layer: usize },
    #[error("the model has no hidden dense layer to prune")]
    NoPrunableLayer,
    #[error("layer {layer} is not a hidden dense layer, so its units cannot be removed")]
    NotHidden { layer: usize },
    #[error("sparsity {value} is not a fraction in [0, 1]")]
    Sparsity { value: f32 },
    #[error("the model expects {expected} features; the data has {got}")]
    InputWidth { expected: usize, got: usize },
    #[error("scoring units by activation needs at least one row of data")]
    NoData,
    #[error(transparent)]
    Surgery(#[from] SurgeryError),
    #[error(transparent)]
    Unsupported(#[from] UnsupportedLayer),
}

#[cfg(test)]
mod tests;
