//! The train job: fit a model to a dataset and report how good, big and fast it is.
//!
//! An untrained model (`meta.trained == false`) starts from a fresh seeded
//! initialisation (`params.seed`); a trained one is fine-tuned from its weights.
//! Metrics are computed on `eval_dataset` if given, else on the validation
//! split, else on the training data; `evaluated_on` says which.

use std::time::Instant;

use serde_json::{Value, json};

use super::params::ValidTrainParams;
use super::report;
use super::tuning;
use super::{JobContext, JobError, JobInputs, JobOutput, ProducedModel};
use kiln_formats::model_file::{self, ModelFile, ModelMeta};
use kiln_formats::source::Source;
use kiln_nn::data::{Dataset, Task};
use kiln_nn::measure::evaluation::{self, gather_rows};
use kiln_nn::train::trainer::NoHook;
use kiln_nn::{Sequential, evaluate};

pub fn run(inputs: JobInputs, ctx: &dyn JobContext) -> Result<JobOutput, JobError> {
    let p: ValidTrainParams = inputs.params()?;
    let JobInputs {
        model: file,
        model_bytes: _,
        dataset,
        eval_dataset,
        params: _,
        model_id,
        job_id,
        models: _,
    } = inputs;
    let architecture = file.model.architecture().clone();
    let task = dataset.task;
    let fine_tuning = file.meta.trained;
    let mut model = if fine_tuning {
        file.model
    } else {
        Sequential::new(&architecture, p.seed)
    };

    let before = fine_tuning.then(|| {
        let data = EvaluationData::choose(&dataset, eval_dataset.as_ref(), &[]);
        let ev = evaluate(
            &model,
            data.x(),
            data.y(),
            task,
            dataset.classes,
            p.loss,
            1024,
        );
        let mut m = report::evaluation_metrics(&ev, task == Task::Multiclass);
        m.extend(report::model_metrics(&model, 0, None));
        m.remove("size_bytes");
        m
    });

    let started = Instant::now();
    ctx.set_progress(0.0);
    // Training is ~95% of the job; measurement takes the rest.
    let outcome = tuning::fine_tune(&mut model, &dataset, &p, &mut NoHook, ctx, (0.0, 0.95))?;
    let train_seconds = started.elapsed().as_secs_f64();

    let data = EvaluationData::choose(&dataset, eval_dataset.as_ref(), &outcome.validation_rows);
    let evaluated_on = data.name();
    let classes = eval_dataset.as_ref().map_or(dataset.classes, |e| e.classes);
    let ev = evaluation::evaluate(&model, data.x(), data.y(), task, classes, p.loss, 1024);
    if !ev.loss.is_finite() {
        return Err(JobError::Failed(format!(
            "the trained model's loss on the {evaluated_on} data is {}; training diverged",
            ev.loss
        )));
    }

    let source = Source::read(&file.meta);
    let mut meta = ModelMeta::new(architecture.clone());
    if let Some(s) = &source {
        s.write(&mut meta);
    }
    meta.trained = true;
    meta.task = Some(task);
    meta.parent_id = Some(model_id.to_string());
    meta.job_id = Some(job_id.to_string());
    let produced = ModelFile { model, meta };
    let bytes = model_file::encode(&produced)
        .map_err(|e| JobError::Failed(format!("could not write the trained model: {e}")))?;
    let speed = report::measure_speed(&produced.model, data.x());

    let mut metrics = report::evaluation_metrics(&ev, task == Task::Multiclass);
    metrics.extend(report::model_metrics(
        &produced.model,
        bytes.len(),
        Some(speed),
    ));
    metrics.insert("evaluated_on".into(), json!(evaluated_on));
    metrics.insert("epochs_run".into(), json!(outcome.epochs_run));
    metrics.insert("stopped_early".into(), json!(outcome.stopped_early));
    if let Some(best) = outcome.best_epoch {
        metrics.insert("best_epoch".into(), json!(best));
    }
    metrics.insert("train_seconds".into(), json!(train_seconds));
    metrics.insert("fine_tuned".into(), json!(fine_tuning));
    if let Some(last) = outcome.history.last() {
        for (k, v) in &last.values {
            if let Some(n) = serde_json::Number::from_f64(*v) {
                metrics.insert(format!("final_{k}"), Value::Number(n));
            }
        }
    }
    ctx.set_progress(1.0);

    let params_count = produced.model.param_count();
    let nonzero = produced.model.nonzero_params();
    Ok(JobOutput {
        model: Some(ProducedModel {
            name: format!("trained-{}", &model_id.simple().to_string()[..8]),
            architecture,
            file: bytes,
            params: params_count,
            nonzero_params: nonzero,
            dtype: "f32".into(),
            task: Some(task),
            source,
        }),
        metrics,
        before,
        ..JobOutput::default()
    })
}

/// The rows metrics are computed on: borrowed from a dataset, or gathered validation rows.
enum EvaluationData<'a> {
    Borrowed(&'a Dataset, &'static str),
    Gathered(ndarray::Array2<f32>, ndarray::Array1<f32>),
}

impl<'a> EvaluationData<'a> {
    /// `eval_dataset` if given, else the validation rows if any, else the training data.
    fn choose(dataset: &'a Dataset, eval: Option<&'a Dataset>, validation_rows: &[usize]) -> Self {
        if let Some(e) = eval {
            Self::Borrowed(e, "eval_dataset")
        } else if !validation_rows.is_empty() {
            let (x, y) = gather_rows(dataset.x.view(), dataset.y.view(), validation_rows);
            Self::Gathered(x, y)
        } else {
            Self::Borrowed(dataset, "training_data")
        }
    }

    fn x(&self) -> ndarray::ArrayView2<'_, f32> {
        match self {
            Self::Borrowed(d, _) => d.x.view(),
            Self::Gathered(x, _) => x.view(),
        }
    }

    fn y(&self) -> ndarray::ArrayView1<'_, f32> {
        match self {
            Self::Borrowed(d, _) => d.y.view(),
            Self::Gathered(_, y) => y.view(),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Self::Borrowed(_, name) => name,
            Self::Gathered(..) => "validation_split",
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use serde_json::json;

    use super::*;
    use crate::JobKind;
    use crate::fixtures::{TestCtx, accepted, arch, blobs, small_binary_arch};

    /// `JobOutput` is not `Debug`, so `expect_err` is not available.
    fn job_error(r: Result<JobOutput, JobError>, what: &str) -> JobError {
        match r {
            Ok(_) => panic!("expected an error: {what}"),
            Err(e) => e,
        }
    }

    fn inputs(params: Value, eval: Option<Dataset>) -> JobInputs {
        accepted(
            JobKind::Train,
            JobInputs {
                model: ModelFile::untrained(&small_binary_arch(), 0),
                model_bytes: 0,
                dataset: blobs(300, 4, 1),
                eval_dataset: eval,
                params,
                model_id: uuid::Uuid::nil(),
                job_id: uuid::Uuid::nil(),
                models: Default::default(),
            },
        )
    }

    #[test]
    fn training_produces_a_trained_model_with_lineage_and_the_design_metrics() {
        let ctx = TestCtx::default();
        let out = run(inputs(json!({"epochs": 15, "validation_split": 0.2, "optimizer": {"name": "adam", "lr": 0.02}}), None), &ctx)
            .expect("trains");
        let m = &out.metrics;
        for key in [
            "loss",
            "accuracy",
            "precision",
            "recall",
            "f1",
            "auc",
            "params",
            "nonzero_params",
            "size_bytes",
            "latency_us_b1",
            "throughput_b1024",
            "epochs_run",
            "train_seconds",
        ] {
            assert!(m.contains_key(key), "{key} missing from {m:?}");
        }
        assert_eq!(m["evaluated_on"], "validation_split");
        assert_eq!(m["epochs_run"], 15);
        assert!(m["accuracy"].as_f64().unwrap_or(0.0) > 0.9, "{m:?}");
        let produced = out.model.expect("a model");
        assert_eq!(m["size_bytes"], json!(produced.file.len()));
        let file = kiln_formats::model::read(&produced.file).expect("decodes");
        assert!(file.meta.trained);
        assert_eq!(
            file.meta.parent_id.as_deref(),
            Some(uuid::Uuid::nil().to_string().as_str())
        );
        assert_eq!(file.meta.task, Some(Task::Binary));

        let history = ctx.metrics.lock().expect("lock");
        assert_eq!(history.len(), 15);
        assert_eq!(history[0].0, 1);
        let keys: Vec<&str> = history[0].1.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["loss", "accuracy", "val_loss", "val_accuracy"]);
        let progress = ctx.progress.lock().expect("lock");
        assert_eq!(progress.last().copied(), Some(1.0));
    }

    #[test]
    fn the_same_params_train_the_same_model_twice() {
        let a = run(inputs(json!({"epochs": 2}), None), &TestCtx::default()).expect("trains");
        let b = run(inputs(json!({"epochs": 2}), None), &TestCtx::default()).expect("trains");
        assert_eq!(a.model.expect("model").file, b.model.expect("model").file);
    }

    #[test]
    fn metrics_use_the_eval_dataset_when_given_and_fine_tuning_reports_before() {
        let mut inp = inputs(json!({"epochs": 2}), Some(blobs(50, 4, 9)));
        inp.model.meta.trained = true;
        let out = run(inp, &TestCtx::default()).expect("trains");
        assert_eq!(out.metrics["evaluated_on"], "eval_dataset");
        assert_eq!(out.metrics["rows"], 50);
        assert!(
            out.before
                .expect("before for fine-tuning")
                .contains_key("accuracy")
        );
    }

    #[test]
    fn a_cancelled_job_stops_with_cancelled() {
        let ctx = TestCtx::default();
        ctx.cancel.store(true, Ordering::Relaxed);
        let err = job_error(run(inputs(json!({"epochs": 5}), None), &ctx), "cancelled");
        assert!(matches!(err, JobError::Cancelled), "{err:?}");
    }

    #[test]
    fn a_diverging_loss_fails_the_job_with_a_clear_message() {
        let mut inp = inputs(
            json!({"epochs": 50, "optimizer": {"name": "sgd", "lr": 10.0}}),
            None,
        );
        inp.model = ModelFile::untrained(
            &arch(
                r#"{"input_dim": 4, "layers": [{"type": "dense", "units": 8, "activation": "relu"},
                    {"type": "dense", "units": 1}]}"#,
            ),
            0,
        );
        inp.dataset.task = Task::Regression;
        inp.dataset.classes = 0;
        inp.dataset.y.mapv_inplace(|v| v * 1e6);
        let err = job_error(run(inp, &TestCtx::default()), "diverges");
        match err {
            JobError::Failed(msg) => assert!(msg.contains("diverged"), "{msg}"),
            other => panic!("expected Failed, got {other:?}"),
        }
    }

    #[test]
    fn stored_params_that_no_longer_fit_the_data_are_invalid_not_a_panic() {
        let mut inp = inputs(json!({}), None);
        inp.dataset = blobs(30, 7, 1);
        let err = job_error(run(inp, &TestCtx::default()), "width mismatch");
        assert!(matches!(err, JobError::Invalid(_)), "{err:?}");
    }
}
