//! Fixtures the job tests share: an in-memory [`JobContext`], small datasets and
//! architectures.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use ndarray::{Array1, Array2};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::shape::shape_of;
use super::{JobContext, JobInputs, JobKind, JobLimits, check_params};
use kiln_nn::data::{Dataset, Task};

/// One `record_metrics` call: the epoch and its named values.
pub(crate) type MetricsRow = (u32, Vec<(String, f64)>);

/// An in-memory [`JobContext`] that records what a job reports.
#[derive(Default)]
pub(crate) struct TestCtx {
    pub progress: Mutex<Vec<f64>>,
    pub metrics: Mutex<Vec<MetricsRow>>,
    pub cancel: AtomicBool,
}

impl JobContext for TestCtx {
    fn set_progress(&self, fraction: f64) {
        if let Ok(mut p) = self.progress.lock() {
            p.push(fraction);
        }
    }
    fn record_metrics(&self, step: u32, metrics: &[(&str, f64)]) {
        if let Ok(mut m) = self.metrics.lock() {
            m.push((
                step,
                metrics.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            ));
        }
    }
    fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }
}

/// Two Gaussian blobs in `features` dimensions, separable along the first feature.
pub(crate) fn blobs(rows: usize, features: usize, seed: u64) -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let y = Array1::from_shape_fn(rows, |_| f32::from(rng.random_range(0..2u8)));
    let x = Array2::from_shape_fn((rows, features), |(i, j)| {
        let shift = if j == 0 { 2.0 * y[i] - 1.0 } else { 0.0 };
        shift + rng.random_range(-0.8f32..0.8)
    });
    Dataset {
        x,
        y,
        task: Task::Binary,
        classes: 2,
        input_shape: None,
    }
}

pub(crate) fn arch(json: &str) -> kiln_nn::spec::Architecture {
    serde_json::from_str(json).expect("architecture parses")
}

pub(crate) fn small_binary_arch() -> kiln_nn::spec::Architecture {
    arch(
        r#"{"input_dim": 4, "layers": [{"type": "dense", "units": 8, "activation": "relu"},
            {"type": "dense", "units": 1, "activation": "sigmoid"}]}"#,
    )
}

/// `inputs` with their params as the queue hands them to a job: checked and
/// normalised by [`check_params`] when the job was accepted.
pub(crate) fn accepted(kind: JobKind, mut inputs: JobInputs) -> JobInputs {
    let eval = inputs.eval_dataset.as_ref().map(shape_of);
    inputs.params = check_params(
        kind,
        &inputs.params,
        inputs.model.model.architecture(),
        &shape_of(&inputs.dataset),
        eval.as_ref(),
        &JobLimits::default(),
    )
    .expect("the test's params are valid");
    inputs
}
