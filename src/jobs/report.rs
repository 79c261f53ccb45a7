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

use std::time::{Duration, Instant};

use ndarray::{Array2, ArrayView2};
use serde_json::{Map, Value, json};

use crate::nn::evaluation::Evaluation;
use crate::nn::parallel::serial;
use crate::nn::sparse::{InferenceModel, LayerKernel, compile_on};
use crate::nn::{Predictor, Sequential};

const LATENCY_CALLS: usize = 200;
const LATENCY_BUDGET: Duration = Duration::from_millis(50);
const THROUGHPUT_BATCH: usize = 1024;
const THROUGHPUT_RUNS: usize = 20;
const THROUGHPUT_BUDGET: Duration = Duration::from_millis(300);

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
    let width = model.input_dim();
    let usable = sample.ncols() == width && sample.nrows() > 0;
    let batch = Array2::from_shape_fn((THROUGHPUT_BATCH, width), |(i, j)| {
        if usable {
            sample[(i % sample.nrows(), j)]
        } else {
            0.0
        }
    });
    let one = batch.slice(ndarray::s![..1, ..]);

    for _ in 0..3 {
        std::hint::black_box(model.predict(one));
    }
    let mut times = Vec::with_capacity(LATENCY_CALLS);
    let start = Instant::now();
    while times.len() < LATENCY_CALLS && start.elapsed() < LATENCY_BUDGET {
        let t = Instant::now();
        std::hint::black_box(model.predict(one));
        times.push(t.elapsed().as_secs_f64() * 1e6);
    }
    times.sort_by(f64::total_cmp);
    let latency_us_b1 = times.get(times.len() / 2).copied().unwrap_or(0.0);

    std::hint::black_box(model.predict(batch.view()));
    let start = Instant::now();
    let mut runs = 0usize;
    while runs < THROUGHPUT_RUNS && (runs == 0 || start.elapsed() < THROUGHPUT_BUDGET) {
        std::hint::black_box(model.predict(batch.view()));
        runs += 1;
    }
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    (latency_us_b1, (runs * THROUGHPUT_BATCH) as f64 / secs)
}

/// [`model_metrics`] for a model served by `served` (an int8 network), timed on `sample`.
pub fn served_metrics(
    model: &Sequential,
    size_bytes: usize,
    served: &dyn Predictor,
    sample: ArrayView2<f32>,
) -> Map<String, Value> {
    let (latency, throughput) = measure_predictor(served, sample);
    let mut m = model_metrics(model, size_bytes, None);
    m.insert("latency_us_b1".into(), num(latency));
    m.insert("throughput_b1024".into(), num(throughput));
    m
}

fn num(v: f64) -> Value {
    serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
}

/// `loss`, `accuracy`, `precision`, `recall`, `f1`, `auc`, `confusion_matrix`
/// (and `*_macro` for multiclass), or `mse`, `mae`, `r2`.
pub fn evaluation_metrics(eval: &Evaluation, multiclass: bool) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("loss".into(), num(eval.loss));
    m.insert("rows".into(), json!(eval.rows));
    if let Some(c) = &eval.classification {
        m.insert("accuracy".into(), num(c.accuracy));
        m.insert("precision".into(), num(c.precision));
        m.insert("recall".into(), num(c.recall));
        m.insert("f1".into(), num(c.f1));
        if multiclass {
            m.insert("precision_macro".into(), num(c.precision_macro));
            m.insert("recall_macro".into(), num(c.recall_macro));
            m.insert("f1_macro".into(), num(c.f1_macro));
        }
        if let Some(auc) = c.auc {
            m.insert("auc".into(), num(auc));
        }
        m.insert("confusion_matrix".into(), json!(c.confusion_matrix));
    }
    if let Some(r) = &eval.regression {
        m.insert("mse".into(), num(r.mse));
        m.insert("mae".into(), num(r.mae));
        m.insert("r2".into(), num(r.r2));
    }
    m
}

/// `params`, `nonzero_params`, `size_bytes`, and when `speed` is given `latency_us_b1`,
/// `throughput_b1024` and `kernels` (`[{layer, density, batch1, batched}]`).
pub fn model_metrics(
    model: &Sequential,
    size_bytes: usize,
    speed: Option<Speed>,
) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("params".into(), json!(model.param_count()));
    m.insert("nonzero_params".into(), json!(model.nonzero_params()));
    m.insert("size_bytes".into(), json!(size_bytes));
    if let Some(s) = speed {
        m.insert("latency_us_b1".into(), num(s.latency_us_b1));
        m.insert("throughput_b1024".into(), num(s.throughput_b1024));
        m.insert("kernels".into(), json!(s.kernels));
    }
    m
}

#[cfg(test)]
mod tests {
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
            d.weight.value.iter_mut().skip(20).for_each(|w| *w = 0.0);
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
