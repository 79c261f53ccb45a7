//! Network compaction: remove dead units, merge duplicates, fold linear layers, low-rank factorization.
//!
//! Every transformation takes a model and returns a new [`Sequential`] plus the
//! [`Action`]s it took; the original is left untouched, and measuring what the
//! change costs in accuracy is the caller's business. Unit removal goes through
//! [`crate::optimize::surgery`], so the architecture and the next layer's fan-in stay
//! consistent in one place.
//!
//! Layer indices are indices into `architecture.layers` (dropout layers count),
//! the numbering of `layers.{i}.weight` in model files. Transformations that
//! add or drop layers ([`factorize`], [`fold_linear_layers`]) shift the indices
//! of the layers after them; each [`Action`] names its layer in the model it
//! was applied to, so a list of actions reads as a sequence of steps.

mod dead;
mod fold;
mod lowrank;
mod merge;
mod rank_search;
pub mod svd;

#[cfg(test)]
mod tests;

pub use dead::remove_dead_units;
pub use fold::fold_linear_layers;
pub use lowrank::{factorize, max_useful_rank, rank_for_energy, singular_values};
pub use merge::merge_duplicate_units;
pub use rank_search::smallest_passing_rank;

use crate::layers::UnsupportedLayer;
use crate::layers::activation::Activation;
use crate::layers::dense::Dense;
use crate::model::Sequential;
use crate::optimize::surgery::SurgeryError;

/// One step of a compaction: what changed and how many parameters it saved.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Action {
    pub kind: ActionKind,
    /// Index into `architecture.layers` of the model the step was applied to.
    pub layer: usize,
    /// Units removed or merged away, by their index in that layer (empty when none).
    pub units: Vec<usize>,
    /// Human-readable account: counts, tolerances, kept energy.
    pub detail: String,
    pub params_before: u64,
    pub params_after: u64,
    /// Outputs unchanged up to float rounding by construction (on the given data
    /// for [`remove_dead_units`]).
    pub exact: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    DeadUnits,
    MergedUnits,
    FoldedLayers,
    LowRank,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CompactError {
    #[error("layer {layer} does not exist (the model has {layers} layers)")]
    LayerOutOfRange { layer: usize, layers: usize },
    #[error("layer {0} is not a dense layer")]
    NotDense(usize),
    #[error("the rank must be at least 1")]
    ZeroRank,
    #[error("the tolerance must be a finite non-negative number, not {0}")]
    Tolerance(f32),
    #[error("no data rows to measure activations on")]
    NoRows,
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    Surgery(#[from] SurgeryError),
    #[error(transparent)]
    Unsupported(#[from] UnsupportedLayer),
}

/// Dense layer `layer` of `model`, or why there is none.
fn dense_at(model: &Sequential, layer: usize) -> Result<&Dense, CompactError> {
    match model.layers().get(layer) {
        None => Err(CompactError::LayerOutOfRange {
            layer,
            layers: model.layers().len(),
        }),
        Some(l) => l.as_dense().ok_or(CompactError::NotDense(layer)),
    }
}

/// Dense layers whose units can be removed or merged one by one: not the
/// output layer (its units are the outputs) and not softmax layers (each unit's
/// output depends on all the others).
/// A layer with parameters that is not dense is refused, not passed over.
fn hidden_layers(model: &Sequential) -> Result<Vec<usize>, CompactError> {
    let dense = model.dense_only("compaction")?;
    Ok(dense
        .iter()
        .take(dense.len().saturating_sub(1))
        .filter(|(_, d)| d.activation != Activation::Softmax)
        .map(|&(i, _)| i)
        .collect())
}

fn check_tolerance(tolerance: f32) -> Result<(), CompactError> {
    if tolerance.is_finite() && tolerance >= 0.0 {
        Ok(())
    } else {
        Err(CompactError::Tolerance(tolerance))
    }
}
