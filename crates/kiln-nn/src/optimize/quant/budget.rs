//! An accuracy budget for an int8 model: the layer whose int8 output differs most
//! from its float output goes back to float, one at a time, until the main metric's
//! drop fits — or it is reported that only an all-float model would.

use ndarray::ArrayView2;

use super::qmodel::{QuantError, QuantizedModel};
use crate::Sequential;

/// An int8 model within the budget, and the layers left in float.
pub struct WithinBudget {
    pub model: QuantizedModel,
    pub float_layers: Vec<usize>,
    /// Its main metric.
    pub metric: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum BudgetError {
    #[error("cancelled")]
    Cancelled,
    #[error(transparent)]
    Quant(#[from] QuantError),
    /// Even with `float_layers` in float the drop exceeds the budget (or every layer would be).
    #[error(
        "the int8 model loses {drop:.4} of the main metric even with layers {float_layers:?} in float; \
         max_accuracy_drop is {limit}. Try another calibration method, per-channel weights or mode qat"
    )]
    Exceeded {
        drop: f64,
        float_layers: Vec<usize>,
        limit: f64,
    },
}

/// The main metric of the float model and how much of it int8 may lose.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AccuracyBudget {
    pub base: f64,
    pub limit: f64,
}

/// Sends layers of `first` (built with no float layers) back to float, most sensitive
/// first (output error on `x` against `float`), until `base - metric ≤ limit`.
/// `build` makes the int8 model with the given float layers, `metric` scores one.
pub fn fit_accuracy_budget(
    float: &Sequential,
    first: QuantizedModel,
    x: ArrayView2<f32>,
    budget: AccuracyBudget,
    build: &dyn Fn(&[usize]) -> Result<QuantizedModel, QuantError>,
    metric: &dyn Fn(&QuantizedModel) -> f64,
    cancelled: &dyn Fn() -> bool,
) -> Result<WithinBudget, BudgetError> {
    let AccuracyBudget { base, limit } = budget;
    let dense = float.dense_layers().count();
    let mut ranked = first.per_layer_error(float, x);
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut queue = ranked.into_iter().map(|(l, _)| l);
    let mut float_layers: Vec<usize> = Vec::new();
    let mut m = metric(&first);
    let mut q = first;
    while base - m > limit {
        if cancelled() {
            return Err(BudgetError::Cancelled);
        }
        let Some(layer) = queue.next() else { break };
        float_layers.push(layer);
        if float_layers.len() == dense {
            break;
        }
        q = build(&float_layers)?;
        m = metric(&q);
    }
    if float_layers.len() == dense || base - m > limit {
        return Err(BudgetError::Exceeded {
            drop: base - m,
            float_layers,
            limit,
        });
    }
    Ok(WithinBudget {
        model: q,
        float_layers,
        metric: m,
    })
}
