//! `kiln measure`: a model file's accuracy, size and speed on a dataset, in
//! process, single thread — the figures the benchmarks quote, without the
//! HTTP service or a job's time budget in the way.
//!
//! Latency is the median of `calls` single-row predictions (cycling through the
//! dataset's rows, after 100 warm-up calls); throughput is rows per second of
//! 1024-row batches, over at least 20 batches and one second.

use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::jobs::report::evaluation_metrics;
use crate::nn::data::{Dataset, Task};
use crate::nn::measure::evaluation::{Head, evaluate_predictor};
use crate::nn::measure::timing::{Calls, TimingBudget, time_predictor};

const BATCH: usize = 1024;

/// The benchmark budget: exactly `calls` single-row calls after 100 warm-up calls,
/// then batches for at least 20 batches and one second.
fn measure_budget(calls: usize) -> TimingBudget {
    let calls = calls.max(1);
    TimingBudget {
        warmup_calls: 100,
        latency: Calls {
            min: calls,
            max: calls,
            until: Duration::ZERO,
        },
        cycle_rows: true,
        batch: BATCH,
        batches: Calls {
            min: 20,
            max: usize::MAX,
            until: Duration::from_secs(1),
        },
    }
}

/// Metrics of the model file `bytes` on `data`, measured on the form it is served in,
/// on this thread alone ([`crate::nn::kernels::parallel::serial`]), so the figures are per core.
pub fn measure(bytes: &[u8], data: &Dataset, calls: usize) -> Result<Map<String, Value>, String> {
    crate::nn::kernels::parallel::serial(|| measure_serial(bytes, data, calls))
}

fn measure_serial(
    bytes: &[u8],
    data: &Dataset,
    calls: usize,
) -> Result<Map<String, Value>, String> {
    let file = crate::formats::model::read(bytes).map_err(|e| e.to_string())?;
    file.model.check_input(data.x.view())?;
    if data.rows() == 0 {
        return Err("the dataset has no rows".into());
    }
    let predictor = file
        .predictor(Some(data.x.view()))
        .map_err(|e| e.to_string())?;
    let head = Head::new(&file.model, data.task);
    let ev = evaluate_predictor(
        predictor.as_ref(),
        head,
        data.x.view(),
        data.y.view(),
        data.classes,
        head.default_loss(),
        BATCH,
    );
    let mut m = evaluation_metrics(&ev, data.task == Task::Multiclass);
    m.remove("confusion_matrix");

    let t = time_predictor(predictor.as_ref(), data.x.view(), &measure_budget(calls));
    m.insert("dtype".into(), json!(file.meta.dtype));
    m.insert("size_bytes".into(), json!(bytes.len()));
    m.insert("params".into(), json!(file.model.param_count()));
    m.insert("nonzero_params".into(), json!(file.model.nonzero_params()));
    m.insert("latency_us_b1".into(), json!(t.latency_at(1, 2)));
    m.insert("latency_us_b1_p90".into(), json!(t.latency_at(9, 10)));
    m.insert("latency_calls".into(), json!(t.latencies_us.len()));
    m.insert("throughput_b1024".into(), json!(t.throughput));
    if file.meta.quantization.is_some() {
        m.insert(
            "isa".into(),
            json!(crate::nn::optimize::quant::kernel::detected().name()),
        );
    }
    Ok(m)
}
