//! Reading a model's outputs for a task, and the metrics of a model on data.
//!
//! How outputs become classes and scores (the [`Head`]):
//! * binary, one output: sigmoid → probability ≥ 0.5; linear → logit ≥ 0; anything else → value ≥ 0.5;
//! * binary with two outputs, and multiclass: the arg-max output;
//! * the ROC AUC score is the output (one output) or `out[1] − out[0]` (two
//!   outputs) — any monotone map of the probability gives the same AUC.

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis, s};

use crate::data::Task;
use crate::layers::activation::Activation;
use crate::measure::metrics;
use crate::model::Sequential;
use crate::predictor::Predictor;
use crate::train::loss::{Loss, class_index};

/// How to turn one row of network output into a class or a score.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub task: Task,
    pub activation: Activation,
    pub outputs: usize,
}

impl Head {
    pub fn new(model: &Sequential, task: Task) -> Self {
        Self {
            task,
            activation: model.output_activation(),
            outputs: model.output_dim(),
        }
    }

    /// The loss a task trains with by default.
    pub fn default_loss(&self) -> Loss {
        match self.task {
            Task::Regression => Loss::Mse,
            Task::Binary if self.outputs == 1 => Loss::BinaryCrossentropy,
            Task::Binary | Task::Multiclass => Loss::CategoricalCrossentropy,
        }
    }

    pub fn predicted_class(&self, row: ArrayView1<f32>) -> usize {
        if row.len() == 1 {
            let threshold = if self.activation == Activation::Linear {
                0.0
            } else {
                0.5
            };
            return usize::from(row[0] >= threshold);
        }
        let mut best = 0;
        for (i, &v) in row.iter().enumerate() {
            if v > row[best] {
                best = i;
            }
        }
        best
    }

    /// A score that ranks rows by their probability of being positive (binary).
    pub fn positive_score(&self, row: ArrayView1<f32>) -> f32 {
        match row.len() {
            0 => 0.0,
            1 => row[0],
            _ => row[1] - row[0],
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClassificationMetrics {
    pub accuracy: f64,
    /// Positive class for binary tasks; macro average for multiclass.
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub precision_macro: f64,
    pub recall_macro: f64,
    pub f1_macro: f64,
    /// Binary only, and only when both classes occur.
    pub auc: Option<f64>,
    /// `[true][predicted]`.
    pub confusion_matrix: Vec<Vec<u64>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RegressionMetrics {
    pub mse: f64,
    pub mae: f64,
    pub r2: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Mean loss (without regularisation penalties).
    pub loss: f64,
    pub rows: usize,
    pub classification: Option<ClassificationMetrics>,
    pub regression: Option<RegressionMetrics>,
}

impl Evaluation {
    /// The task's headline metric: accuracy, or R² for regression.
    pub fn main_metric(&self) -> f64 {
        match (&self.classification, &self.regression) {
            (Some(c), _) => c.accuracy,
            (_, Some(r)) => r.r2,
            _ => f64::NAN,
        }
    }
}

/// Metrics of `model` on `(x, y)` for `task`, running inference `batch` rows at a time.
/// `classes` is the dataset's class count (ignored for regression).
///
/// # Panics
/// If `x` does not have the model's input width.
pub fn evaluate(
    model: &Sequential,
    x: ArrayView2<f32>,
    y: ArrayView1<f32>,
    task: Task,
    classes: usize,
    loss: Loss,
    batch: usize,
) -> Evaluation {
    evaluate_keeping_outputs(model, x, y, task, classes, loss, batch).0
}

/// [`evaluate`], also returning the model's outputs on `x` (for callers that
/// compare two models' predictions without running either again).
pub fn evaluate_keeping_outputs(
    model: &Sequential,
    x: ArrayView2<f32>,
    y: ArrayView1<f32>,
    task: Task,
    classes: usize,
    loss: Loss,
    batch: usize,
) -> (Evaluation, Array2<f32>) {
    let head = Head::new(model, task);
    let rows = x.nrows();
    let batch = batch.max(1);
    let uses_logits = loss.uses_logits(head.activation);
    let mut outputs = Array2::zeros((rows, model.output_dim()));
    let mut loss_sum = 0.0f64;
    let mut start = 0;
    while start < rows {
        let stop = (start + batch).min(rows);
        let f = model.forward(x.slice(s![start..stop, ..]));
        let yb = y.slice(s![start..stop]);
        let input = if uses_logits { &f.logits } else { &f.output };
        loss_sum += loss.value(input.view(), yb) * (stop - start) as f64;
        outputs.slice_mut(s![start..stop, ..]).assign(&f.output);
        start = stop;
    }
    let loss_value = if rows == 0 {
        0.0
    } else {
        loss_sum / rows as f64
    };
    let eval = scored(&head, outputs.view(), y, task, classes, loss_value);
    (eval, outputs)
}

/// Metrics of any [`Predictor`] (a compiled plan, an int8 network) on `(x, y)`.
/// It only gives outputs, so losses defined on logits read them back from the
/// probabilities (clamped to `[1e-7, 1 − 1e-7]`), as Keras does.
///
/// # Panics
/// If `x` does not have the predictor's input width.
#[allow(clippy::too_many_arguments)]
pub fn evaluate_predictor(
    predictor: &dyn Predictor,
    head: Head,
    x: ArrayView2<f32>,
    y: ArrayView1<f32>,
    classes: usize,
    loss: Loss,
    batch: usize,
) -> Evaluation {
    let rows = x.nrows();
    let batch = batch.max(1);
    let uses_logits = loss.uses_logits(head.activation);
    let mut outputs = Array2::zeros((rows, predictor.output_dim()));
    let mut loss_sum = 0.0f64;
    let mut start = 0;
    while start < rows {
        let stop = (start + batch).min(rows);
        let out = predictor.predict(x.slice(s![start..stop, ..]));
        let yb = y.slice(s![start..stop]);
        let value = if uses_logits {
            loss.value(logits_of(head.activation, out.view()).view(), yb)
        } else {
            loss.value(out.view(), yb)
        };
        loss_sum += value * (stop - start) as f64;
        outputs.slice_mut(s![start..stop, ..]).assign(&out);
        start = stop;
    }
    let loss_value = if rows == 0 {
        0.0
    } else {
        loss_sum / rows as f64
    };
    scored(&head, outputs.view(), y, head.task, classes, loss_value)
}

/// Logits that give back `outputs` under a sigmoid or softmax head.
fn logits_of(activation: Activation, outputs: ArrayView2<f32>) -> Array2<f32> {
    const EPS: f32 = 1e-7;
    match activation {
        Activation::Sigmoid => outputs.mapv(|p| {
            let p = p.clamp(EPS, 1.0 - EPS);
            (p / (1.0 - p)).ln()
        }),
        Activation::Softmax => outputs.mapv(|p| p.clamp(EPS, 1.0).ln()),
        _ => outputs.to_owned(),
    }
}

/// The task's metrics from network outputs and an already computed loss.
fn scored(
    head: &Head,
    outputs: ArrayView2<f32>,
    y: ArrayView1<f32>,
    task: Task,
    classes: usize,
    loss_value: f64,
) -> Evaluation {
    let rows = outputs.nrows();
    let mut eval = Evaluation {
        loss: loss_value,
        rows,
        classification: None,
        regression: None,
    };
    match task {
        Task::Regression => {
            let pred: Vec<f32> = outputs.column(0).to_vec();
            let truth: Vec<f32> = y.to_vec();
            eval.regression = Some(RegressionMetrics {
                mse: metrics::mse(&truth, &pred),
                mae: metrics::mae(&truth, &pred),
                r2: metrics::r2(&truth, &pred),
            });
        }
        Task::Binary | Task::Multiclass => {
            let k = if task == Task::Binary {
                2
            } else {
                classes.max(head.outputs).max(1)
            };
            let truth: Vec<usize> = y.iter().map(|&t| class_index(t, k)).collect();
            let pred: Vec<usize> = outputs
                .axis_iter(Axis(0))
                .map(|r| head.predicted_class(r))
                .collect();
            let m = metrics::confusion_matrix(&truth, &pred, k);
            let (pm, rm, fm) = metrics::macro_scores(&m);
            let (p, r, f, auc) = if task == Task::Binary {
                let (p, r, f) = metrics::class_scores(&m, 1);
                let scores: Vec<f32> = outputs
                    .axis_iter(Axis(0))
                    .map(|r| head.positive_score(r))
                    .collect();
                let positive: Vec<bool> = truth.iter().map(|t| *t == 1).collect();
                (p, r, f, metrics::roc_auc(&scores, &positive))
            } else {
                (pm, rm, fm, None)
            };
            eval.classification = Some(ClassificationMetrics {
                accuracy: metrics::accuracy(&truth, &pred),
                precision: p,
                recall: r,
                f1: f,
                precision_macro: pm,
                recall_macro: rm,
                f1_macro: fm,
                auc,
                confusion_matrix: m,
            });
        }
    }
    eval
}

/// Copies rows `idx` of `(x, y)` into new arrays.
pub fn gather_rows(
    x: ArrayView2<f32>,
    y: ArrayView1<f32>,
    idx: &[usize],
) -> (Array2<f32>, Array1<f32>) {
    let xs = x.select(Axis(0), idx);
    let ys = y.select(Axis(0), idx);
    (xs, ys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Architecture;

    fn model(head: &str, outputs: usize) -> Sequential {
        let arch: Architecture = serde_json::from_value(serde_json::json!({
            "input_dim": 3,
            "layers": [{"type": "dense", "units": 5, "activation": "tanh"},
                       {"type": "dense", "units": outputs, "activation": head}]}))
        .expect("architecture");
        Sequential::new(&arch, 11)
    }

    /// The kept outputs are the model's predictions (to rounding: the matrix
    /// product blocks 5-row chunks differently from the whole batch).
    #[test]
    fn the_kept_outputs_are_the_predictions() {
        let x = Array2::from_shape_fn((23, 3), |(i, j)| ((i * 3 + j) as f32 * 0.41).cos());
        let y = Array1::from_shape_fn(23, |i| (i % 4) as f32);
        let m = model("softmax", 4);
        let loss = Loss::CategoricalCrossentropy;
        let (ev, out) =
            evaluate_keeping_outputs(&m, x.view(), y.view(), Task::Multiclass, 4, loss, 5);
        let diff = (&out - &m.predict(x.view()))
            .mapv(f32::abs)
            .fold(0.0f32, |a, &b| a.max(b));
        assert!(diff < 1e-6, "{diff}");
        assert_eq!(
            ev,
            evaluate(&m, x.view(), y.view(), Task::Multiclass, 4, loss, 5)
        );
    }

    /// Through outputs only, the same metrics and (up to the probability clamp) the same loss.
    #[test]
    fn evaluating_a_predictor_matches_evaluating_the_network() {
        let x = Array2::from_shape_fn((40, 3), |(i, j)| ((i * 3 + j) as f32 * 0.37).sin() * 2.0);
        for (head, outputs, task, classes) in [
            ("sigmoid", 1, Task::Binary, 2),
            ("softmax", 4, Task::Multiclass, 4),
            ("linear", 1, Task::Regression, 0),
        ] {
            let m = model(head, outputs);
            let y = Array1::from_shape_fn(40, |i| match task {
                Task::Regression => i as f32 * 0.1,
                _ => (i % classes.max(1)) as f32,
            });
            let h = Head::new(&m, task);
            let loss = h.default_loss();
            let a = evaluate(&m, x.view(), y.view(), task, classes, loss, 7);
            let b = evaluate_predictor(&m, h, x.view(), y.view(), classes, loss, 9);
            assert!(
                (a.loss - b.loss).abs() < 1e-5,
                "{head}: {} vs {}",
                a.loss,
                b.loss
            );
            assert_eq!(a.classification, b.classification, "{head}");
            if let (Some(ra), Some(rb)) = (&a.regression, &b.regression) {
                assert!(
                    (ra.r2 - rb.r2).abs() < 1e-6 && (ra.mse - rb.mse).abs() < 1e-6,
                    "{head}"
                );
            }
            assert_eq!(a.regression.is_some(), b.regression.is_some());
        }
    }
}
