//! The before/after picture every optimization job reports (DESIGN §2):
//! the task's metrics on the evaluation data, parameter and non-zero counts,
//! per-layer sparsity, bytes of the model file, and measured latency.

use ndarray::Array2;
use serde_json::{Map, Value, json};

use super::report;
use crate::nn::Sequential;
use crate::nn::data::{Dataset, Task};
use crate::nn::evaluation::{Evaluation, evaluate_keeping_outputs};
use crate::nn::prune::layer_sparsity;

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
    let loss = crate::jobs::params::default_loss(model.architecture(), data.task);
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

/// `{"layer", "weights", "nonzero", "sparsity"}` per dense layer.
pub fn sparsity_by_layer(model: &Sequential) -> Value {
    Value::Array(
        layer_sparsity(model)
            .into_iter()
            .map(|l| {
                json!({"layer": l.layer, "weights": l.weights, "nonzero": l.nonzero, "sparsity": l.sparsity})
            })
            .collect(),
    )
}

/// The full picture of one model: metrics, sizes, sparsity, speed and the kernels that ran.
pub fn snapshot(model: &Sequential, file_bytes: usize, data: &Dataset) -> Map<String, Value> {
    snapshot_scored(model, file_bytes, data, &score(model, data))
}

/// [`snapshot`] for a model already evaluated on `data`.
pub fn snapshot_scored(
    model: &Sequential,
    file_bytes: usize,
    data: &Dataset,
    ev: &Evaluation,
) -> Map<String, Value> {
    let mut m = report::evaluation_metrics(ev, data.task == Task::Multiclass);
    let speed = report::measure_speed(model, data.x.view());
    m.extend(report::model_metrics(model, file_bytes, Some(speed)));
    m.insert("layers".into(), sparsity_by_layer(model));
    let params = model.param_count().max(1) as f64;
    m.insert(
        "sparsity".into(),
        json!(1.0 - model.nonzero_params() as f64 / params),
    );
    m
}
