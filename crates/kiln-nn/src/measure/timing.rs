//! The timing probe behind every latency and throughput figure kiln reports: a job's
//! report (a few hundred milliseconds at most) and `kiln measure` (the benchmark figures,
//! a second or more) run this one loop with their own [`TimingBudget`].
//!
//! Latency is timed on single rows, throughput on batches of [`TimingBudget::batch`] rows
//! cycled from the sample (zeros when the sample is empty or of the wrong width, so a
//! probe never fails). The caller decides the threads ([`crate::kernels::parallel::serial`]).

use std::time::{Duration, Instant};

use ndarray::{Array2, ArrayView2, s};

use crate::Predictor;

/// How many calls a loop makes: at least `min`, at most `max`, and between the two
/// only while less than `until` has passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Calls {
    pub min: usize,
    pub max: usize,
    pub until: Duration,
}

impl Calls {
    fn more(&self, done: usize, started: Instant) -> bool {
        done < self.max && (done < self.min || started.elapsed() < self.until)
    }
}

/// What one probe spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimingBudget {
    /// Untimed single-row calls first.
    pub warmup_calls: usize,
    /// Single-row calls timed.
    pub latency: Calls,
    /// `true`: the single-row calls walk through the sample's rows; `false`: all use row 0.
    pub cycle_rows: bool,
    /// Rows per throughput batch.
    pub batch: usize,
    /// Batches timed (after one untimed).
    pub batches: Calls,
}

/// What a probe measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Timing {
    /// Microseconds of each single-row call, ascending.
    pub latencies_us: Vec<f64>,
    /// Rows per second over the timed batches.
    pub throughput: f64,
}

impl Timing {
    /// The single-row latency at `num / den` of the sorted calls (`1, 2`: the median,
    /// `9, 10`: p90), `times[len · num / den]` in integers; 0 if no call was timed.
    pub fn latency_at(&self, num: usize, den: usize) -> f64 {
        let i = self.latencies_us.len() * num / den.max(1);
        self.latencies_us.get(i).copied().unwrap_or(0.0)
    }
}

/// Times `model` on rows of `sample` within `budget`.
pub fn time_predictor(
    model: &dyn Predictor,
    sample: ArrayView2<f32>,
    budget: &TimingBudget,
) -> Timing {
    let width = model.input_dim();
    let usable = sample.ncols() == width && sample.nrows() > 0;
    let zeros = Array2::zeros((1, width));
    let row = |i: usize| {
        if usable {
            let r = if budget.cycle_rows {
                i % sample.nrows()
            } else {
                0
            };
            sample.slice(s![r..r + 1, ..])
        } else {
            zeros.view()
        }
    };

    for i in 0..budget.warmup_calls {
        std::hint::black_box(model.predict(row(i)));
    }
    let mut latencies_us = Vec::with_capacity(budget.latency.max.min(1 << 20));
    let start = Instant::now();
    while budget.latency.more(latencies_us.len(), start) {
        let one = row(latencies_us.len());
        let t = Instant::now();
        std::hint::black_box(model.predict(one));
        latencies_us.push(t.elapsed().as_secs_f64() * 1e6);
    }
    latencies_us.sort_by(f64::total_cmp);

    let batch = Array2::from_shape_fn((budget.batch, width), |(i, j)| {
        if usable {
            sample[(i % sample.nrows(), j)]
        } else {
            0.0
        }
    });
    std::hint::black_box(model.predict(batch.view()));
    let start = Instant::now();
    let mut runs = 0usize;
    while budget.batches.more(runs, start) {
        std::hint::black_box(model.predict(batch.view()));
        runs += 1;
    }
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    Timing {
        latencies_us,
        throughput: (runs * budget.batch) as f64 / secs,
    }
}
