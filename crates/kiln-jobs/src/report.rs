//! Size and latency measurements every job reports, and turning an
//! [`Evaluation`] into the metric names of DESIGN §2.
//!
//! Latency is the median of single-row inference calls (at most 200 calls or
//! 50 ms, after 3 warm-up calls); throughput is rows per second of 1024-row
//! batches (at most 20 batches or 300 ms, after one warm-up), measured on one
//! thread (a served float model may split large batches over the cores). Both go through
//! [`InferenceModel::predict`], the path a deployed model runs: the model is
//! compiled once, each pruned layer timed dense against CSR on the job's own
//! rows, and the kernels chosen are reported with the speed. Compiling and
//! measuring together stay well under half a second for models that fit the
//! default limits.

use std::time::Duration;

use ndarray::ArrayView2;
use serde::Serialize;
use serde_json::{Map, Value};

use kiln_nn::kernels::parallel::serial;
use kiln_nn::kernels::sparse::{InferenceModel, LayerKernel, compile_on};
use kiln_nn::measure::evaluation::Evaluation;
use kiln_nn::measure::timing::{Calls, TimingBudget, time_predictor};
use kiln_nn::{Predictor, Sequential};

/// A job's timing budget: a report must not cost the job more than a fraction of a second.
const JOB_BUDGET: TimingBudget = TimingBudget {
    warmup_calls: 3,
    latency: Calls {
        min: 0,
        max: 200,
        until: Duration::from_millis(50),
    },
    cycle_rows: false,
    batch: 1024,
    batches: Calls {
        min: 1,
        max: 20,
        until: Duration::from_millis(300),
    },
};

#[derive(Debug, Clone, PartialEq)]
pub struct Speed {
    /// Median microseconds for one row.
    pub latency_us_b1: f64,
    /// Rows per second at batch 1024.
    pub throughput_b1024: f64,
    /// The kernel each dense layer ran, per batch regime.
    pub kernels: Vec<LayerKernel>,
}

/// Measures `model`, compiled for inference, on rows of `sample` (cycled to
/// fill a batch; zeros if empty or of the wrong width).
pub fn measure_speed(model: &Sequential, sample: ArrayView2<f32>) -> Speed {
    serial(|| {
        let compiled: InferenceModel = compile_on(model, sample);
        let (latency_us_b1, throughput_b1024) = measure_predictor(&compiled, sample);
        Speed {
            latency_us_b1,
            throughput_b1024,
            kernels: compiled.kernels(),
        }
    })
}

/// `(median µs for one row, rows per second at batch 1024)` of any predictor, on
/// this thread alone, so float, sparse and int8 models are compared per core.
pub fn measure_predictor(model: &dyn Predictor, sample: ArrayView2<f32>) -> (f64, f64) {
    serial(|| measure_predictor_serial(model, sample))
}

fn measure_predictor_serial(model: &dyn Predictor, sample: ArrayView2<f32>) -> (f64, f64) {
    let t = time_predictor(model, sample, &JOB_BUDGET);
    (t.latency_at(1, 2), t.throughput)
}

/// [`model_metrics`] for a model served by `served` (an int8 network), timed on `sample`.
pub fn served_metrics(
    model: &Sequential,
    size_bytes: usize,
    served: &dyn Predictor,
    sample: ArrayView2<f32>,
) -> Map<String, Value> {
    to_map(&ModelReport::served(model, size_bytes, served, sample))
}

/// `loss`, `accuracy`, `precision`, `recall`, `f1`, `auc`, `confusion_matrix`
/// (and `*_macro` for multiclass), or `mse`, `mae`, `r2`.
pub fn evaluation_metrics(eval: &Evaluation, multiclass: bool) -> Map<String, Value> {
    to_map(&EvaluationReport::of(eval, multiclass))
}

/// `params`, `nonzero_params`, `size_bytes`, and when `speed` is given `latency_us_b1`,
/// `throughput_b1024` and `kernels` (`[{layer, density, batch1, batched}]`).
pub fn model_metrics(
    model: &Sequential,
    size_bytes: usize,
    speed: Option<Speed>,
) -> Map<String, Value> {
    to_map(&ModelReport::of(model, size_bytes, speed))
}

/// A typed report as the JSON object the queue stores. Every report type is a
/// struct of numbers, strings and lists, so serializing cannot fail; an empty
/// map stands in should one ever not be an object.
pub fn to_map<T: Serialize>(report: &T) -> Map<String, Value> {
    match serde_json::to_value(report) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

/// DESIGN §2's metric names for an [`Evaluation`]. Non-finite numbers serialize as `null`.
#[derive(Debug, Clone, Serialize)]
pub struct EvaluationReport {
    pub loss: f64,
    pub rows: usize,
    #[serde(flatten)]
    pub classification: Option<ClassificationReport>,
    #[serde(flatten)]
    pub regression: Option<RegressionReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClassificationReport {
    pub accuracy: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Multiclass only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub precision_macro: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recall_macro: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub f1_macro: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auc: Option<f64>,
    pub confusion_matrix: Vec<Vec<u64>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RegressionReport {
    pub mse: f64,
    pub mae: f64,
    pub r2: f64,
}

impl EvaluationReport {
    pub fn of(eval: &Evaluation, multiclass: bool) -> Self {
        let macro_avg = |v: f64| multiclass.then_some(v);
        Self {
            loss: eval.loss,
            rows: eval.rows,
            classification: eval.classification.as_ref().map(|c| ClassificationReport {
                accuracy: c.accuracy,
                precision: c.precision,
                recall: c.recall,
                f1: c.f1,
                precision_macro: macro_avg(c.precision_macro),
                recall_macro: macro_avg(c.recall_macro),
                f1_macro: macro_avg(c.f1_macro),
                auc: c.auc,
                confusion_matrix: c.confusion_matrix.clone(),
            }),
            regression: eval.regression.as_ref().map(|r| RegressionReport {
                mse: r.mse,
                mae: r.mae,
                r2: r.r2,
            }),
        }
    }
}

/// Size of a model, and its speed when measured.
#[derive(Debug, Clone, Serialize)]
pub struct ModelReport {
    pub params: u64,
    pub nonzero_params: u64,
    pub size_bytes: usize,
    #[serde(flatten)]
    pub speed: Option<SpeedReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SpeedReport {
    pub latency_us_b1: f64,
    pub throughput_b1024: f64,
    /// The kernels a compiled float model chose; absent for an int8 network.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernels: Option<Vec<LayerKernel>>,
}

impl ModelReport {
    pub fn of(model: &Sequential, size_bytes: usize, speed: Option<Speed>) -> Self {
        Self {
            params: model.param_count(),
            nonzero_params: model.nonzero_params(),
            size_bytes,
            speed: speed.map(|s| SpeedReport {
                latency_us_b1: s.latency_us_b1,
                throughput_b1024: s.throughput_b1024,
                kernels: Some(s.kernels),
            }),
        }
    }

    /// Sizes of `model`, speed of `served` (its int8 network) on `sample`.
    pub fn served(
        model: &Sequential,
        size_bytes: usize,
        served: &dyn Predictor,
        sample: ArrayView2<f32>,
    ) -> Self {
        let (latency_us_b1, throughput_b1024) = measure_predictor(served, sample);
        Self {
            speed: Some(SpeedReport {
                latency_us_b1,
                throughput_b1024,
                kernels: None,
            }),
            ..Self::of(model, size_bytes, None)
        }
    }
}

#[cfg(test)]
mod tests {
    use ndarray::Array2;

    use super::*;

    #[test]
    fn speed_measurement_reports_positive_latency_and_throughput() {
        let arch = serde_json::from_str(
            r#"{"input_dim": 20, "layers": [{"type": "dense", "units": 16, "activation": "relu"},
                {"type": "dense", "units": 1, "activation": "sigmoid"}]}"#,
        )
        .expect("parses");
        let model = Sequential::new(&arch, 1);
        let s = measure_speed(&model, Array2::ones((3, 20)).view());
        assert!(s.latency_us_b1 > 0.0 && s.throughput_b1024 > 0.0, "{s:?}");
        // Unpruned layers are clearly dense: not measured, reported as dense.
        let layers: Vec<_> = s
            .kernels
            .iter()
            .map(|k| (k.layer, k.density, k.batched))
            .collect();
        assert_eq!(layers, [(0, 1.0, "dense"), (1, 1.0, "dense")]);
        // A sample of the wrong width falls back to zeros instead of failing.
        let s = measure_speed(&model, Array2::ones((3, 7)).view());
        assert!(s.throughput_b1024.is_finite());
    }

    #[test]
    fn the_kernels_of_a_pruned_model_are_reported_with_the_speed() {
        let arch = serde_json::from_str(
            r#"{"input_dim": 8, "layers": [{"type": "dense", "units": 10, "activation": "relu"},
                {"type": "dropout", "rate": 0.5}, {"type": "dense", "units": 3, "activation": "softmax"}]}"#,
        )
        .expect("parses");
        let mut model = Sequential::new(&arch, 2);
        // Keep 20 of layer 0's 80 weights.
        if let Some(d) = model.layers_mut()[0].as_dense_mut() {
            d.weight
                .matrix_mut()
                .iter_mut()
                .skip(20)
                .for_each(|w| *w = 0.0);
        }
        let speed = measure_speed(&model, Array2::ones((4, 8)).view());
        let m = model_metrics(&model, 100, Some(speed));
        let kernels = m["kernels"].as_array().expect("a list");
        assert_eq!(kernels.len(), 2);
        assert_eq!(kernels[0]["layer"], 0);
        assert_eq!(kernels[0]["density"], 0.25);
        assert!(["dense", "csr"].contains(&kernels[0]["batch1"].as_str().unwrap_or("")));
        assert_eq!(kernels[1]["layer"], 2);
        assert_eq!(kernels[1]["batched"], "dense");
        // Biases start at zero: only the kept weights count.
        assert_eq!(m["nonzero_params"], 20 + 30);
    }
}
