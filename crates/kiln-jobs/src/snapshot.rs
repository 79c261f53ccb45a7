//! The before/after picture every optimization job reports (DESIGN §2):
//! the task's metrics on the evaluation data, parameter and non-zero counts,
//! per-layer sparsity, bytes of the model file, and measured latency.

use ndarray::Array2;
use serde::Serialize;

use super::report::{self, EvaluationReport, ModelReport};
use kiln_nn::Sequential;
use kiln_nn::data::{Dataset, Task};
use kiln_nn::measure::evaluation::{Evaluation, evaluate_keeping_outputs};
use kiln_nn::optimize::prune::layer_sparsity;

/// Rows an optimization job measures on: `eval_dataset` when given, else the
/// training data. The name goes into the report as `evaluated_on`.
pub fn evaluation_data<'a>(
    dataset: &'a Dataset,
    eval: Option<&'a Dataset>,
) -> (&'a Dataset, &'static str) {
    match eval {
        Some(e) => (e, "eval_dataset"),
        None => (dataset, "training_data"),
    }
}

/// Metrics of `model` on `data` with the task's default loss.
pub fn score(model: &Sequential, data: &Dataset) -> Evaluation {
    score_keeping_outputs(model, data).0
}

/// [`score`], also returning the model's outputs on `data`.
pub fn score_keeping_outputs(model: &Sequential, data: &Dataset) -> (Evaluation, Array2<f32>) {
    let loss = crate::params::default_loss(model.architecture(), data.task);
    evaluate_keeping_outputs(
        model,
        data.x.view(),
        data.y.view(),
        data.task,
        data.classes,
        loss,
        1024,
    )
}

/// One dense or conv2d layer's weights and how many are non-zero.
#[derive(Debug, Clone, Serialize)]
pub struct LayerSparsityReport {
    pub layer: usize,
    pub weights: u64,
    pub nonzero: u64,
    pub sparsity: f64,
}

/// The full picture of one model: metrics, sizes, speed and the kernels that ran,
/// per-layer and overall sparsity.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    #[serde(flatten)]
    pub evaluation: EvaluationReport,
    #[serde(flatten)]
    pub model: ModelReport,
    pub layers: Vec<LayerSparsityReport>,
    /// Zero parameters over all parameters (weights and biases).
    pub sparsity: f64,
}

impl Snapshot {
    /// The snapshot of `model`, already evaluated on `data` (timed on `data` too).
    pub fn scored(model: &Sequential, file_bytes: usize, data: &Dataset, ev: &Evaluation) -> Self {
        let speed = report::measure_speed(model, data.x.view());
        Self {
            model: ModelReport::of(model, file_bytes, Some(speed)),
            ..Self::scored_without_speed(model, file_bytes, data, ev)
        }
    }

    /// [`Snapshot::scored`] without measuring speed, for a model served in another
    /// form (its int8 network), whose speed the caller measures on that form.
    pub fn scored_without_speed(
        model: &Sequential,
        file_bytes: usize,
        data: &Dataset,
        ev: &Evaluation,
    ) -> Self {
        let params = model.param_count().max(1) as f64;
        Self {
            evaluation: EvaluationReport::of(ev, data.task == Task::Multiclass),
            model: ModelReport::of(model, file_bytes, None),
            layers: layer_sparsity(model)
                .into_iter()
                .map(|l| LayerSparsityReport {
                    layer: l.layer,
                    weights: l.weights,
                    nonzero: l.nonzero,
                    sparsity: l.sparsity,
                })
                .collect(),
            sparsity: 1.0 - model.nonzero_params() as f64 / params,
        }
    }
}
