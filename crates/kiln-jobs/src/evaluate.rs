//! The evaluate job: metrics of a model on a dataset, plus its size and speed. Produces no model.
//!
//! Metrics: `loss` (the task's default loss: binary or categorical
//! cross-entropy, or MSE), `accuracy`, `precision`, `recall`, `f1` (positive
//! class for binary; macro averages for multiclass, also given as
//! `precision_macro`, `recall_macro`, `f1_macro`), `auc` (binary),
//! `confusion_matrix` (rows true class, columns predicted), or `mse`, `mae`,
//! `r2` for regression; then `params`, `nonzero_params`, `size_bytes` (of the
//! model file), `latency_us_b1`, `throughput_b1024`.

use serde_json::json;

use super::params::{ValidEvaluateParams, default_loss};
use super::report;
use super::{JobContext, JobError, JobInputs, JobOutput};
use kiln_nn::data::Task;
use kiln_nn::evaluate;
use kiln_nn::measure::evaluation::{Head, evaluate_predictor};

pub fn run(inputs: JobInputs, ctx: &dyn JobContext) -> Result<JobOutput, JobError> {
    let file = &inputs.model;
    let model = &file.model;
    let data = &inputs.dataset;
    let p: ValidEvaluateParams = inputs.params()?;
    if ctx.is_cancelled() {
        return Err(JobError::Cancelled);
    }
    ctx.set_progress(0.0);
    let loss = default_loss(model.architecture(), data.task);
    // A quantized model is evaluated as it is served: through its int8 network.
    let int8 = file
        .int8()
        .transpose()
        .map_err(|e| JobError::Failed(format!("the int8 layers cannot be rebuilt: {e}")))?;
    let ev = match &int8 {
        Some(q) => evaluate_predictor(
            q,
            Head::new(model, data.task),
            data.x.view(),
            data.y.view(),
            data.classes,
            loss,
            p.batch_size,
        ),
        None => evaluate(
            model,
            data.x.view(),
            data.y.view(),
            data.task,
            data.classes,
            loss,
            p.batch_size,
        ),
    };
    ctx.set_progress(0.5);
    if ctx.is_cancelled() {
        return Err(JobError::Cancelled);
    }
    let size = inputs.model_bytes;
    let mut metrics = report::evaluation_metrics(&ev, data.task == Task::Multiclass);
    match &int8 {
        Some(q) => metrics.extend(report::served_metrics(model, size, q, data.x.view())),
        None => {
            let speed = report::measure_speed(model, data.x.view());
            metrics.extend(report::model_metrics(model, size, Some(speed)));
        }
    }
    metrics.insert("dtype".into(), json!(file.meta.dtype));
    metrics.insert("loss_function".into(), json!(loss.as_str()));
    ctx.set_progress(1.0);
    Ok(JobOutput {
        metrics,
        ..JobOutput::default()
    })
}

#[cfg(test)]
mod tests {
    use ndarray::{Array1, Array2};
    use serde_json::json;

    use super::*;
    use crate::JobKind;
    use crate::fixtures::{TestCtx, accepted, arch, blobs, small_binary_arch};
    use kiln_formats::model_file::ModelFile;
    use kiln_nn::data::Dataset;

    fn run_on(model: ModelFile, dataset: Dataset) -> serde_json::Map<String, serde_json::Value> {
        let model_bytes = kiln_formats::model_file::encode(&model)
            .expect("encodes")
            .len();
        let inputs = accepted(
            JobKind::Evaluate,
            JobInputs {
                model,
                model_bytes,
                dataset,
                eval_dataset: None,
                params: json!({}),
                model_id: uuid::Uuid::nil(),
                job_id: uuid::Uuid::nil(),
                models: Default::default(),
            },
        );
        let out = run(inputs, &TestCtx::default()).expect("evaluates");
        assert!(out.model.is_none());
        out.metrics
    }

    #[test]
    fn evaluating_a_binary_model_reports_classification_and_size_metrics() {
        let m = run_on(
            ModelFile::untrained(&small_binary_arch(), 3),
            blobs(64, 4, 2),
        );
        for key in [
            "loss",
            "accuracy",
            "precision",
            "recall",
            "f1",
            "auc",
            "confusion_matrix",
            "params",
            "nonzero_params",
            "size_bytes",
            "latency_us_b1",
            "throughput_b1024",
        ] {
            assert!(m.contains_key(key), "{key} missing from {m:?}");
        }
        let cm = m["confusion_matrix"].as_array().expect("array");
        let total: u64 = cm
            .iter()
            .flat_map(|r| r.as_array().into_iter().flatten())
            .filter_map(serde_json::Value::as_u64)
            .sum();
        assert_eq!(total, 64);
        assert_eq!(m["params"], 49);
    }

    #[test]
    fn evaluating_multiclass_and_regression_models_reports_their_metrics() {
        let multi = arch(
            r#"{"input_dim": 3, "layers": [{"type": "dense", "units": 4, "activation": "softmax"}]}"#,
        );
        let data = Dataset {
            x: Array2::from_shape_fn((20, 3), |(i, j)| (i + j) as f32 * 0.1),
            y: Array1::from_shape_fn(20, |i| (i % 4) as f32),
            task: Task::Multiclass,
            classes: 4,
            input_shape: None,
        };
        let m = run_on(ModelFile::untrained(&multi, 1), data);
        for key in [
            "f1_macro",
            "precision_macro",
            "recall_macro",
            "confusion_matrix",
        ] {
            assert!(m.contains_key(key), "{key} missing");
        }
        assert!(!m.contains_key("auc"));

        let reg = arch(r#"{"input_dim": 2, "layers": [{"type": "dense", "units": 1}]}"#);
        let data = Dataset {
            x: Array2::from_shape_fn((10, 2), |(i, j)| (i * 2 + j) as f32),
            y: Array1::from_shape_fn(10, |i| i as f32),
            task: Task::Regression,
            classes: 0,
            input_shape: None,
        };
        let m = run_on(ModelFile::untrained(&reg, 1), data);
        for key in ["mse", "mae", "r2", "loss"] {
            assert!(m.contains_key(key), "{key} missing");
        }
        assert_eq!(m["mse"], m["loss"]);
    }
}
