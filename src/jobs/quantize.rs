//! The quantize job: int8 weights and activations, run by integer kernels.
//!
//! Modes: `dynamic` (activations quantized per batch), `static` (activation
//! ranges calibrated on `calibration.samples` rows with min–max, a percentile
//! or entropy), `qat` (fine-tuning with fake-quantized weights, then static
//! conversion). With `max_accuracy_drop`, the layer whose int8 output differs
//! most from its float output goes back to float, one at a time, until the
//! drop fits — the job fails when only an all-float model would. With
//! `calibration.compare`, every calibration method at several sample counts is
//! evaluated and reported, since calibration is the usual cause of a bad int8 model.

use ndarray::{Array2, ArrayView2};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Value, json};

use super::derived::{meta_for, output};
use super::params::{
    CalibrationChoice, QuantizeMode, ValidCalibration, ValidQuantizeParams, validate_quantize,
};
use super::report;
use super::snapshot::{self, evaluation_data, snapshot_scored, sparsity_by_layer};
use super::tuning::fine_tune;
use super::{JobContext, JobError, JobInputs, JobOutput};
use crate::formats::model_file::{self, ModelFile};
use crate::formats::quantized::Quantization;
use crate::nn::data::{Dataset, Task};
use crate::nn::evaluation::{Evaluation, Head, evaluate_predictor};
use crate::nn::quant::calibrate::CalibrationMethod;
use crate::nn::quant::kernel;
use crate::nn::quant::qat::FakeQuantWeights;
use crate::nn::quant::qmodel::{QuantConfig, QuantMode, QuantizedModel};
use crate::nn::{Predictor, Sequential};

fn method(c: &ValidCalibration) -> CalibrationMethod {
    match c.method {
        CalibrationChoice::Minmax => CalibrationMethod::MinMax,
        CalibrationChoice::Percentile => CalibrationMethod::Percentile {
            percentile: c.percentile,
        },
        CalibrationChoice::Entropy => CalibrationMethod::Entropy,
    }
}

/// `n` rows of `x` drawn without replacement by a fixed seed, so a class-sorted
/// file still calibrates on every class.
fn calibration_rows(x: ArrayView2<f32>, n: usize) -> Array2<f32> {
    let mut idx: Vec<usize> = (0..x.nrows()).collect();
    crate::nn::batch::shuffle(&mut idx, &mut ChaCha8Rng::seed_from_u64(42));
    idx.truncate(n.clamp(1, x.nrows().max(1)));
    idx.sort_unstable();
    x.select(ndarray::Axis(0), &idx)
}

fn score(p: &dyn Predictor, head: Head, data: &Dataset) -> Evaluation {
    let loss = head.default_loss();
    evaluate_predictor(
        p,
        head,
        data.x.view(),
        data.y.view(),
        data.classes,
        loss,
        1024,
    )
}

fn failed(e: impl std::fmt::Display) -> JobError {
    JobError::Failed(format!("quantization failed: {e}"))
}

pub fn run(inputs: JobInputs, ctx: &dyn JobContext) -> Result<JobOutput, JobError> {
    let p: ValidQuantizeParams = inputs.validated(validate_quantize)?;
    ctx.set_progress(0.0);
    let (data, evaluated_on) = evaluation_data(&inputs.dataset, inputs.eval_dataset.as_ref());
    let head = Head::new(&inputs.model.model, data.task);
    let before_eval = snapshot::score(&inputs.model.model, data);
    let mut before = snapshot_scored(&inputs.model.model, inputs.model_bytes, data, &before_eval);
    before.insert("dtype".into(), json!(inputs.model.meta.dtype));
    ctx.set_progress(0.1);

    let mut model = inputs.model.model.clone();
    if let (QuantizeMode::Qat, Some(ft)) = (p.mode, &p.fine_tune) {
        let layers: Vec<usize> = model.dense_layers().map(|(i, _)| i).collect();
        let mut hook = FakeQuantWeights::attach(&mut model, layers, p.scheme, p.granularity);
        let d = &inputs.dataset;
        fine_tune(&mut model, d, ft, &mut hook, ctx, (0.1, 0.6))?;
        hook.finish(&mut model);
    }
    let cfg = QuantConfig {
        mode: match p.mode {
            QuantizeMode::Dynamic => QuantMode::Dynamic,
            QuantizeMode::Static | QuantizeMode::Qat => QuantMode::Static,
        },
        scheme: p.scheme,
        granularity: p.granularity,
    };
    let calib = p.calibration.as_ref().map(|c| {
        (
            calibration_rows(inputs.dataset.x.view(), c.samples),
            method(c),
        )
    });
    let build = |float_layers: &[usize]| {
        QuantizedModel::build(
            &model,
            &cfg,
            float_layers,
            calib.as_ref().map(|(x, m)| (x.view(), *m)),
        )
        .map_err(failed)
    };

    // Accuracy budget: send the most sensitive layer back to float until it fits.
    let base = before_eval.main_metric();
    let mut float_layers: Vec<usize> = Vec::new();
    let mut q = build(&float_layers)?;
    let mut ev = score(&q, head, data);
    if let Some(limit) = p.max_accuracy_drop {
        let dense: Vec<usize> = model.dense_layers().map(|(i, _)| i).collect();
        let errors = q.per_layer_error(&model, data.x.view());
        let mut ranked: Vec<(usize, f64)> = errors;
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        let mut queue = ranked.into_iter().map(|(l, _)| l);
        while base - ev.main_metric() > limit {
            if ctx.is_cancelled() {
                return Err(JobError::Cancelled);
            }
            let Some(layer) = queue.next() else { break };
            float_layers.push(layer);
            if float_layers.len() == dense.len() {
                break;
            }
            q = build(&float_layers)?;
            ev = score(&q, head, data);
        }
        if float_layers.len() == dense.len() || base - ev.main_metric() > limit {
            return Err(JobError::Failed(format!(
                "the int8 model loses {:.4} of the main metric even with layers {float_layers:?} in float; \
                 max_accuracy_drop is {limit}. Try another calibration method, per-channel weights or mode qat",
                base - ev.main_metric()
            )));
        }
    }
    ctx.set_progress(0.7);

    let comparison = match &p.calibration {
        Some(c) if c.compare && p.mode != QuantizeMode::Dynamic => Some(compare_calibrations(
            &model,
            &cfg,
            &float_layers,
            &inputs.dataset,
            data,
            head,
            ctx,
        )?),
        _ => None,
    };

    // The file: the float model with int8-grid weights plus the int8 parts.
    let quantization = Quantization {
        config: cfg.clone(),
        layers: q.layers().to_vec(),
    };
    let mut meta = meta_for(&model, &inputs);
    meta.dtype = "int8".into();
    meta.quantization = Some(quantization);
    let file = ModelFile {
        model: q.dequantized(),
        meta,
    };
    let bytes = model_file::encode(&file)
        .map_err(|e| JobError::Failed(format!("could not write the quantized model: {e}")))?;
    // What is stored is what is reported: read it back and rebuild the int8 network.
    let back = model_file::decode(&bytes)
        .map_err(|e| JobError::Failed(format!("the quantized model does not read back: {e}")))?;
    let served = back
        .int8()
        .ok_or_else(|| JobError::Failed("the quantized model lost its int8 layers".into()))?
        .map_err(failed)?;
    let sample = data.x.slice(ndarray::s![..data.x.nrows().min(256), ..]);
    let max_diff = q
        .predict(sample)
        .iter()
        .zip(served.predict(sample).iter())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    if max_diff > 0.0 {
        return Err(JobError::Failed(format!(
            "the stored int8 model predicts differently from the one built (max difference {max_diff})"
        )));
    }

    let mut metrics = report::evaluation_metrics(&ev, data.task == Task::Multiclass);
    metrics.extend(report::served_metrics(
        &file.model,
        bytes.len(),
        &served,
        data.x.view(),
    ));
    metrics.insert("dtype".into(), json!("int8"));
    metrics.insert("evaluated_on".into(), json!(evaluated_on));
    metrics.insert("mode".into(), json!(p.mode));
    metrics.insert("isa".into(), json!(kernel::detected().name()));
    metrics.insert("float_layers".into(), json!(float_layers));
    metrics.insert("main_metric_drop".into(), json!(base - ev.main_metric()));
    metrics.insert(
        "compression_ratio".into(),
        json!(inputs.model_bytes as f64 / bytes.len().max(1) as f64),
    );
    // `layers` is per-layer sparsity in every job's report; the int8 details go beside it.
    metrics.insert("layers".into(), sparsity_by_layer(&file.model));
    metrics.insert(
        "quantized_layers".into(),
        layer_report(&q, &model, data.x.view()),
    );
    if let Some(c) = comparison {
        metrics.insert("calibration_comparison".into(), Value::Array(c));
    }
    ctx.set_progress(1.0);
    Ok(output(
        "int8", &inputs, &file, bytes, "int8", metrics, before,
    ))
}

/// Per int8 layer: its weight and input scales and its output error against float.
fn layer_report(q: &QuantizedModel, float: &Sequential, x: ArrayView2<f32>) -> Value {
    let errors = q.per_layer_error(float, x.slice(ndarray::s![..x.nrows().min(1024), ..]));
    Value::Array(
        q.layers()
            .iter()
            .map(|l| {
                let scales: Vec<f32> = l.weight.params.iter().map(|p| p.scale).collect();
                let (lo, hi) = scales.iter().fold((f32::INFINITY, 0.0f32), |(lo, hi), &s| {
                    (lo.min(s), hi.max(s))
                });
                let mut m = Map::new();
                m.insert("layer".into(), json!(l.layer));
                m.insert("weight_scale_min".into(), json!(lo));
                m.insert("weight_scale_max".into(), json!(hi));
                if let Some(i) = l.input {
                    m.insert("input_scale".into(), json!(i.scale));
                    m.insert("input_zero_point".into(), json!(i.zero_point));
                }
                if let Some((_, e)) = errors.iter().find(|(layer, _)| *layer == l.layer) {
                    m.insert("output_mse".into(), json!(e));
                }
                Value::Object(m)
            })
            .collect(),
    )
}

/// Accuracy of the static int8 model under every calibration method and several sample counts.
fn compare_calibrations(
    model: &Sequential,
    cfg: &QuantConfig,
    float_layers: &[usize],
    train: &Dataset,
    data: &Dataset,
    head: Head,
    ctx: &dyn JobContext,
) -> Result<Vec<Value>, JobError> {
    let methods = [
        ("minmax", CalibrationMethod::MinMax),
        (
            "percentile_99.9",
            CalibrationMethod::Percentile { percentile: 99.9 },
        ),
        (
            "percentile_99.99",
            CalibrationMethod::Percentile { percentile: 99.99 },
        ),
        ("entropy", CalibrationMethod::Entropy),
    ];
    let mut out = Vec::new();
    for samples in [100usize, 1000, 5000] {
        if samples > train.rows() && samples != 100 {
            continue;
        }
        let rows = calibration_rows(train.x.view(), samples);
        for (name, m) in methods {
            if ctx.is_cancelled() {
                return Err(JobError::Cancelled);
            }
            let q = QuantizedModel::build(model, cfg, float_layers, Some((rows.view(), m)))
                .map_err(failed)?;
            let ev = score(&q, head, data);
            out.push(json!({"method": name, "samples": rows.nrows(), "main_metric": ev.main_metric(), "loss": ev.loss}));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::jobs::train::tests::{TestCtx, arch, blobs};
    use crate::nn::trainer::{FitConfig, fit};

    /// A trained 4 → 16 → 8 → 1 network whose second layer carries one huge weight
    /// on a dead unit: harmless in float, ruinous for that layer's per-tensor int8 scale.
    fn outlier_inputs(params: Value) -> JobInputs {
        let a = arch(
            r#"{"input_dim": 4, "layers": [{"type": "dense", "units": 16, "activation": "relu"},
                {"type": "dense", "units": 8, "activation": "relu"},
                {"type": "dense", "units": 1, "activation": "sigmoid"}]}"#,
        );
        let data = blobs(400, 4, 6);
        let mut model = Sequential::new(&a, 2);
        let cfg = FitConfig {
            epochs: 30,
            batch_size: 32,
            optimizer: crate::nn::OptimizerConfig::Adam(crate::nn::optim::Adam {
                lr: 0.01,
                ..Default::default()
            }),
            schedule: crate::nn::Schedule::Constant,
            loss: crate::nn::Loss::BinaryCrossentropy,
            regularization: Default::default(),
            validation_split: 0.0,
            early_stopping: None,
            seed: 1,
            task: data.task,
        };
        fit(
            &mut model,
            data.x.view(),
            data.y.view(),
            &cfg,
            &mut |_| {},
            &|| false,
        )
        .expect("fits");
        if let Some(d) = model.layers_mut()[0].as_dense_mut() {
            d.weight.value.column_mut(15).fill(0.0);
            if let Some(b) = &mut d.bias {
                b.value[(0, 15)] = -100.0;
            }
        }
        if let Some(d) = model.layers_mut()[1].as_dense_mut() {
            d.weight.value[(15, 0)] = 1.0e4;
        }
        let mut file = ModelFile::untrained(&a, 0);
        file.model = model;
        file.meta.trained = true;
        let model_bytes = model_file::encode(&file).expect("encodes").len();
        JobInputs {
            model: file,
            model_bytes,
            dataset: data,
            eval_dataset: Some(blobs(200, 4, 7)),
            params,
            model_id: uuid::Uuid::nil(),
            job_id: uuid::Uuid::nil(),
            models: Default::default(),
        }
    }

    #[test]
    fn an_accuracy_budget_sends_the_layer_with_the_largest_error_back_to_float() {
        let params = json!({"granularity": "per_tensor", "calibration": {"samples": 200}});
        // Without a budget the outlier layer wrecks the int8 model…
        let plain = run(outlier_inputs(params.clone()), &TestCtx::default()).expect("quantizes");
        let drop = plain.metrics["main_metric_drop"].as_f64().expect("drop");
        assert!(drop > 0.1, "the outlier must hurt int8: drop {drop}");
        // …with one, exactly that layer (index 1) goes back to float and the drop fits.
        let mut with_budget = params;
        with_budget["max_accuracy_drop"] = json!(0.02);
        let out = run(outlier_inputs(with_budget), &TestCtx::default()).expect("quantizes");
        assert_eq!(out.metrics["float_layers"], json!([1]));
        let drop = out.metrics["main_metric_drop"].as_f64().expect("drop");
        assert!(drop <= 0.02, "drop {drop}");
        let layers: Vec<u64> = out.metrics["quantized_layers"]
            .as_array()
            .expect("layers")
            .iter()
            .filter_map(|l| l["layer"].as_u64())
            .collect();
        assert_eq!(layers, vec![0, 2], "the other layers stay int8");
        let produced = out.model.expect("a model");
        let back = model_file::decode(&produced.file).expect("decodes");
        assert_eq!(back.meta.dtype, "int8");
    }
}
