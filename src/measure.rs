//! `kiln measure`: a model file's accuracy, size and speed on a dataset, in
//! process, single thread — the figures the benchmarks quote, without the
//! HTTP service or a job's time budget in the way.
//!
//! Latency is the median of `calls` single-row predictions (cycling through the
//! dataset's rows, after 100 warm-up calls); throughput is rows per second of
//! 1024-row batches, over at least 20 batches and one second.

use std::time::{Duration, Instant};

use ndarray::{Array2, s};
use serde_json::{Map, Value, json};

use crate::formats::model_file;
use crate::jobs::report::evaluation_metrics;
use crate::nn::data::{Dataset, Task};
use crate::nn::evaluation::{Head, evaluate_predictor};

const BATCH: usize = 1024;
const MIN_BATCHES: usize = 20;
const MIN_TIME: Duration = Duration::from_secs(1);

/// Metrics of the model file `bytes` on `data`, measured on the form it is served in,
/// on this thread alone ([`crate::nn::parallel::serial`]), so the figures are per core.
pub fn measure(bytes: &[u8], data: &Dataset, calls: usize) -> Result<Map<String, Value>, String> {
    crate::nn::parallel::serial(|| measure_serial(bytes, data, calls))
}

fn measure_serial(
    bytes: &[u8],
    data: &Dataset,
    calls: usize,
) -> Result<Map<String, Value>, String> {
    let file = model_file::decode(bytes).map_err(|e| e.to_string())?;
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

    let rows = data.rows();
    for i in 0..100 {
        std::hint::black_box(predictor.predict(data.x.slice(s![i % rows..i % rows + 1, ..])));
    }
    let mut times = Vec::with_capacity(calls.max(1));
    for i in 0..calls.max(1) {
        let row = data.x.slice(s![i % rows..i % rows + 1, ..]);
        let t = Instant::now();
        std::hint::black_box(predictor.predict(row));
        times.push(t.elapsed().as_secs_f64() * 1e6);
    }
    times.sort_by(f64::total_cmp);
    let batch = Array2::from_shape_fn((BATCH, data.features()), |(i, j)| data.x[(i % rows, j)]);
    std::hint::black_box(predictor.predict(batch.view()));
    let start = Instant::now();
    let mut batches = 0usize;
    while batches < MIN_BATCHES || start.elapsed() < MIN_TIME {
        std::hint::black_box(predictor.predict(batch.view()));
        batches += 1;
    }
    let throughput = (batches * BATCH) as f64 / start.elapsed().as_secs_f64();

    m.insert("dtype".into(), json!(file.meta.dtype));
    m.insert("size_bytes".into(), json!(bytes.len()));
    m.insert("params".into(), json!(file.model.param_count()));
    m.insert("nonzero_params".into(), json!(file.model.nonzero_params()));
    m.insert("latency_us_b1".into(), json!(times[times.len() / 2]));
    m.insert(
        "latency_us_b1_p90".into(),
        json!(times[times.len() * 9 / 10]),
    );
    m.insert("latency_calls".into(), json!(times.len()));
    m.insert("throughput_b1024".into(), json!(throughput));
    if file.meta.quantization.is_some() {
        m.insert(
            "isa".into(),
            json!(crate::nn::quant::kernel::detected().name()),
        );
    }
    Ok(m)
}
