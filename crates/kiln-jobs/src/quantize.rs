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

use ndarray::ArrayView2;
use serde::Serialize;

use super::params::{CalibrationChoice, QuantizeMode, ValidCalibration, ValidQuantizeParams};
use super::stage::{self, After, Encoding, OptimizationStage, Reported, StageContext, Transformed};
use super::tuning::fine_tune;
use super::{JobContext, JobError, JobInputs, JobOutput};
use kiln_nn::data::Dataset;
use kiln_nn::measure::evaluation::{Evaluation, Head, evaluate_predictor};
use kiln_nn::optimize::quant::budget::{AccuracyBudget, BudgetError, fit_accuracy_budget};
use kiln_nn::optimize::quant::calibrate::CalibrationMethod;
use kiln_nn::optimize::quant::compare::{
    CalibrationResult, CompareError, calibration_rows, compare_calibrations,
};
use kiln_nn::optimize::quant::qat::FakeQuantWeights;
use kiln_nn::optimize::quant::qmodel::{QuantConfig, QuantMode, QuantizedModel};
use kiln_nn::{Predictor, Sequential};

fn method(c: &ValidCalibration) -> CalibrationMethod {
    match c.method {
        CalibrationChoice::Minmax => CalibrationMethod::MinMax,
        CalibrationChoice::Percentile => CalibrationMethod::Percentile {
            percentile: c.percentile,
        },
        CalibrationChoice::Entropy => CalibrationMethod::Entropy,
    }
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

/// The quantize job as an [`OptimizationStage`]; the template writes the int8 file
/// ([`Encoding::Int8`]) and checks the rebuilt int8 network predicts exactly the same.
pub struct QuantizeStage;

/// The quantize job's own report fields (`isa` and `dtype` come from the template).
#[derive(Serialize)]
pub struct QuantizeReport {
    mode: QuantizeMode,
    float_layers: Vec<usize>,
    main_metric_drop: f64,
    quantized_layers: Vec<LayerQuantReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    calibration_comparison: Option<Vec<CalibrationResult>>,
}

/// Per int8 layer: its weight and input scales and its output error against float.
#[derive(Serialize)]
struct LayerQuantReport {
    layer: usize,
    weight_scale_min: f32,
    weight_scale_max: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    input_scale: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    input_zero_point: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_mse: Option<f64>,
}

impl OptimizationStage for QuantizeStage {
    type Params = ValidQuantizeParams;
    type Done = QuantizeReport;
    type Report = QuantizeReport;
    const PREFIX: &'static str = "int8";
    const NOUN: &'static str = "quantized";

    fn transform(
        &self,
        p: &ValidQuantizeParams,
        cx: &StageContext<'_>,
    ) -> Result<Transformed<QuantizeReport>, JobError> {
        let (inputs, data) = (cx.inputs, cx.data);
        let head = Head::new(&inputs.model.model, data.task);
        let mut model = inputs.model.model.clone();
        if let (QuantizeMode::Qat, Some(ft)) = (p.mode, &p.fine_tune) {
            let layers: Vec<usize> = model.dense_layers().map(|(i, _)| i).collect();
            let mut hook = FakeQuantWeights::attach(&mut model, layers, p.scheme, p.granularity);
            let range = cx.progress_range((0.0, 0.65));
            fine_tune(&mut model, &inputs.dataset, ft, &mut hook, cx.ctx, range)?;
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
        };
        let metric = |q: &QuantizedModel| score(q, head, data).main_metric();
        let cancelled = || cx.ctx.is_cancelled();

        let base = cx.before.main_metric();
        let first = build(&[]).map_err(failed)?;
        let (q, float_layers, main_metric) = match p.max_accuracy_drop {
            Some(limit) => {
                let budget = AccuracyBudget { base, limit };
                let fit = fit_accuracy_budget(
                    &model,
                    first,
                    data.x.view(),
                    budget,
                    &build,
                    &metric,
                    &cancelled,
                )
                .map_err(|e| match e {
                    BudgetError::Cancelled => JobError::Cancelled,
                    BudgetError::Quant(e) => failed(e),
                    e @ BudgetError::Exceeded { .. } => JobError::Failed(e.to_string()),
                })?;
                (fit.model, fit.float_layers, fit.metric)
            }
            None => {
                let m = metric(&first);
                (first, Vec::new(), m)
            }
        };
        cx.set_progress(0.75);

        let calibration_comparison = match &p.calibration {
            Some(c) if c.compare && p.mode != QuantizeMode::Dynamic => Some(
                compare_calibrations(
                    &model,
                    &cfg,
                    &float_layers,
                    inputs.dataset.x.view(),
                    &|q| score(q, head, data),
                    &cancelled,
                )
                .map_err(|e| match e {
                    CompareError::Cancelled => JobError::Cancelled,
                    CompareError::Quant(e) => failed(e),
                })?,
            ),
            _ => None,
        };
        let report = QuantizeReport {
            mode: p.mode,
            float_layers,
            main_metric_drop: base - main_metric,
            quantized_layers: layer_report(&q, &model, data.x.view()),
            calibration_comparison,
        };
        Ok(Transformed {
            // The file: the float model with int8-grid weights plus the int8 parts.
            model: q.dequantized(),
            encoding: Encoding::Int8(Box::new(q)),
            done: report,
        })
    }

    fn report(
        &self,
        _p: &ValidQuantizeParams,
        done: QuantizeReport,
        _after: &After<'_>,
    ) -> Result<Reported<QuantizeReport>, JobError> {
        Ok(done.into())
    }
}

pub fn run(inputs: JobInputs, ctx: &dyn JobContext) -> Result<JobOutput, JobError> {
    stage::run(&QuantizeStage, inputs, ctx)
}

/// Per int8 layer: its weight and input scales and its output error against float.
fn layer_report(
    q: &QuantizedModel,
    float: &Sequential,
    x: ArrayView2<f32>,
) -> Vec<LayerQuantReport> {
    let errors = q.per_layer_error(float, x.slice(ndarray::s![..x.nrows().min(1024), ..]));
    q.layers()
        .iter()
        .map(|l| {
            let (lo, hi) = l
                .weight
                .params
                .iter()
                .fold((f32::INFINITY, 0.0f32), |(lo, hi), p| {
                    (lo.min(p.scale), hi.max(p.scale))
                });
            LayerQuantReport {
                layer: l.layer,
                weight_scale_min: lo,
                weight_scale_max: hi,
                input_scale: l.input.map(|i| i.scale),
                input_zero_point: l.input.map(|i| i.zero_point),
                output_mse: errors
                    .iter()
                    .find(|(layer, _)| *layer == l.layer)
                    .map(|(_, e)| *e),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use kiln_formats::model_file::{self, ModelFile};

    use super::*;
    use crate::JobKind;
    use crate::fixtures::{TestCtx, accepted, arch, blobs};
    use kiln_nn::train::trainer::{FitConfig, fit};

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
            optimizer: kiln_nn::OptimizerConfig::Adam(kiln_nn::train::optim::Adam {
                lr: 0.01,
                ..Default::default()
            }),
            schedule: kiln_nn::Schedule::Constant,
            loss: kiln_nn::Loss::BinaryCrossentropy,
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
            d.weight.matrix_mut().column_mut(15).fill(0.0);
            if let Some(b) = &mut d.bias {
                b.matrix_mut()[(0, 15)] = -100.0;
            }
        }
        if let Some(d) = model.layers_mut()[1].as_dense_mut() {
            d.weight.matrix_mut()[(15, 0)] = 1.0e4;
        }
        let mut file = ModelFile::untrained(&a, 0);
        file.model = model;
        file.meta.trained = true;
        let model_bytes = model_file::encode(&file).expect("encodes").len();
        accepted(
            JobKind::Quantize,
            JobInputs {
                model: file,
                model_bytes,
                dataset: data,
                eval_dataset: Some(blobs(200, 4, 7)),
                params,
                model_id: uuid::Uuid::nil(),
                job_id: uuid::Uuid::nil(),
                models: Default::default(),
            },
        )
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
        let back = kiln_formats::model::read(&produced.file).expect("decodes");
        assert_eq!(back.meta.dtype, "int8");
    }
}
