//! The distill job: a small student learns from the job's model, the teacher
//! (Hinton, Vinyals & Dean 2015), and the report sets the two side by side.
//!
//! The teacher is frozen. Its soft targets are computed once for every training
//! row when they fit `teacher_cache_bytes`, else again for every batch; the
//! report says which path ran. With `baseline: true` the same student (same
//! initial weights, same train parameters) also trains on the labels alone, on
//! a second thread at the same time, so the gain of distillation is measured
//! in the same job rather than claimed — and a loss is reported as plainly.

use std::time::Instant;

use serde_json::{Map, Value, json};

use super::derived::{meta_for, output};
use super::params::{ValidDistillParams, validate_distill};
use super::references::ModelRole;
use super::snapshot::{evaluation_data, score_keeping_outputs, snapshot_scored};
use super::tuning::train_with;
use super::{JobContext, JobError, JobInputs, JobOutput};
use crate::formats::model_file::{self, ModelFile};
use crate::nn::Sequential;
use crate::nn::data::{Dataset, Task};
use crate::nn::distill::{DistillError, DistillLoss, Distiller, TeacherTargets, agreement};
use crate::nn::evaluation::Evaluation;
use crate::nn::trainer::{FitOutcome, Hooks};

/// The headline figures of one model, for the side-by-side table.
fn summary(m: &Map<String, Value>) -> Value {
    let keys = [
        "accuracy",
        "r2",
        "loss",
        "params",
        "size_bytes",
        "latency_us_b1",
        "throughput_b1024",
    ];
    Value::Object(
        keys.iter()
            .filter_map(|k| m.get(*k).map(|v| (k.to_string(), v.clone())))
            .collect(),
    )
}

/// The student the job starts from: the stored student's weights when it is
/// trained, else a fresh seeded initialisation of the student architecture.
fn initial_student(p: &ValidDistillParams, stored: Option<&ModelFile>) -> Sequential {
    match stored {
        Some(f) if f.meta.trained => f.model.clone(),
        _ => Sequential::new(&p.student.architecture, p.train.seed),
    }
}

/// Why the teacher may not be worth learning from, if it may not.
fn teacher_warning(inputs: &JobInputs, metric: f64, data: &Dataset) -> Option<String> {
    if inputs.model.meta.trained {
        return None;
    }
    let chance = match data.task {
        Task::Regression => "an R² near 0".to_string(),
        _ => format!(
            "{:.4} by always answering the most common class",
            majority_rate(data)
        ),
    };
    Some(format!(
        "the teacher is not trained (no lineage from a training job; random weights): its \
         main metric is {metric:.4}, where chance gives {chance}; the student learns whatever \
         the teacher knows, so train the teacher first"
    ))
}

fn majority_rate(data: &Dataset) -> f64 {
    let mut counts = std::collections::HashMap::<i64, usize>::new();
    for &y in &data.y {
        *counts.entry(y.round() as i64).or_default() += 1;
    }
    counts.values().copied().max().unwrap_or(0) as f64 / data.rows().max(1) as f64
}

/// A trained student's report: snapshot, agreement with the teacher, training time.
struct Trained {
    model: Sequential,
    outcome: FitOutcome,
    seconds: f64,
}

fn described(
    t: &Trained,
    bytes: usize,
    data: &Dataset,
    teacher_out: ndarray::ArrayView2<f32>,
) -> (Map<String, Value>, Evaluation) {
    let (ev, out) = score_keeping_outputs(&t.model, data);
    let mut m = snapshot_scored(&t.model, bytes, data, &ev);
    m.insert(
        "agreement_with_teacher".into(),
        json!(agreement(teacher_out, out.view(), data.task)),
    );
    m.insert("train_seconds".into(), json!(t.seconds));
    m.insert("epochs_run".into(), json!(t.outcome.epochs_run));
    m.insert("stopped_early".into(), json!(t.outcome.stopped_early));
    (m, ev)
}

/// What the measured numbers say about distillation on this setting, in words.
fn verdict(distilled: f64, teacher: f64, baseline: Option<f64>, task: Task) -> Value {
    let unit = if task == Task::Regression {
        "R²"
    } else {
        "points"
    };
    let scale = if task == Task::Regression { 1.0 } else { 100.0 };
    let vs_teacher = distilled - teacher;
    let mut v = json!({
        "student_minus_teacher": vs_teacher,
        "within_one_point_of_teacher": vs_teacher >= -0.01,
    });
    let text = match baseline {
        Some(b) => {
            let gain = distilled - b;
            // How far ahead of the student alone the teacher is: what there was to gain.
            let headroom = teacher - b;
            v["student_minus_baseline"] = json!(gain);
            v["teacher_minus_baseline"] = json!(headroom);
            v["helped"] = json!(gain >= 0.0);
            if gain >= 0.0 {
                format!(
                    "distillation helped: the distilled student scores {:+.2} {unit} against the \
                     same student trained without the teacher, {:+.2} against the teacher",
                    gain * scale,
                    vs_teacher * scale
                )
            } else {
                format!(
                    "distillation did not help on this setting: the distilled student scores \
                     {:+.2} {unit} against the same student trained without the teacher \
                     ({:+.2} against the teacher, which is itself {:+.2} against that student); \
                     try another temperature or alpha, or a stronger teacher",
                    gain * scale,
                    vs_teacher * scale,
                    headroom * scale
                )
            }
        }
        None => format!(
            "the distilled student scores {:+.2} {unit} against the teacher; ask for \
             baseline: true to measure what the teacher added",
            vs_teacher * scale
        ),
    };
    v["summary"] = json!(text);
    v
}

/// Trains `model` on the labels alone, as the baseline; its epochs are recorded as `baseline_…`.
fn train_baseline(
    mut model: Sequential,
    dataset: &Dataset,
    p: &ValidDistillParams,
    ctx: &dyn JobContext,
) -> Result<Trained, JobError> {
    let t0 = Instant::now();
    let outcome = train_with(
        &mut model,
        dataset,
        &p.train,
        Hooks::default(),
        ctx,
        None,
        "baseline_",
    )?;
    Ok(Trained {
        model,
        outcome,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// Trains `model` against the teacher's soft targets and the labels.
fn train_distilled(
    mut model: Sequential,
    targets: TeacherTargets<'_>,
    dataset: &Dataset,
    p: &ValidDistillParams,
    ctx: &dyn JobContext,
) -> Result<Trained, JobError> {
    let mut distiller = Distiller::new(targets);
    let t0 = Instant::now();
    let hooks = Hooks {
        step: None,
        objective: Some(&mut distiller),
    };
    let outcome = train_with(
        &mut model,
        dataset,
        &p.train,
        hooks,
        ctx,
        Some((0.2, 0.9)),
        "",
    )?;
    Ok(Trained {
        model,
        outcome,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

fn panicked(what: &str) -> JobError {
    JobError::Failed(format!("{what} panicked"))
}

pub fn run(inputs: JobInputs, ctx: &dyn JobContext) -> Result<JobOutput, JobError> {
    let p = inputs.validated(validate_distill)?;
    ctx.set_progress(0.0);
    let teacher = &inputs.model.model;
    let dataset = &inputs.dataset;
    let (data, evaluated_on) = evaluation_data(dataset, inputs.eval_dataset.as_ref());

    // The teacher's soft targets first: the one pass over the data that uses
    // every core (see `TeacherTargets`).
    let loss = DistillLoss {
        hard: p.train.loss,
        temperature: p.temperature as f32,
        alpha: p.alpha as f32,
    };
    let start = initial_student(&p, inputs.models.get(ModelRole::Student));
    let budget = usize::try_from(p.teacher_cache_bytes).unwrap_or(usize::MAX);
    let started = Instant::now();
    let cancelled = || ctx.is_cancelled();
    let targets = TeacherTargets::try_new(teacher, dataset.x.view(), loss, budget, &cancelled)
        .map_err(|e| match e {
            DistillError::Cancelled => JobError::Cancelled,
            e => JobError::Failed(format!("cannot distill: {e}")),
        })?;
    let teacher_seconds = started.elapsed().as_secs_f64();
    let (path, cache_bytes) = (targets.path(), targets.cache_bytes());
    ctx.set_progress(0.2);

    // Then two halves that share only read-only data (a student's products are
    // too small to be split further over the cores): the
    // distilled student here; the baseline (if asked) and the teacher's own
    // report and outputs on the evaluation rows on a second thread.
    let (main, side) = std::thread::scope(|s| {
        let side = s.spawn(|| {
            let baseline = p
                .baseline
                .then(|| train_baseline(start.clone(), dataset, &p, ctx))
                .transpose()?;
            let (ev, outputs) = score_keeping_outputs(teacher, data);
            let report = snapshot_scored(teacher, inputs.model_bytes, data, &ev);
            Ok::<_, JobError>((baseline, ev, outputs, report))
        });
        let main = train_distilled(start.clone(), targets, dataset, &p, ctx);
        let side = side
            .join()
            .unwrap_or_else(|_| Err(panicked("the baseline or the teacher's evaluation")));
        (main, side)
    });
    let (distilled, (baseline, teacher_ev, teacher_out, mut before)) = (main?, side?);
    let warning = teacher_warning(&inputs, teacher_ev.main_metric(), data);
    before.insert("trained".into(), json!(inputs.model.meta.trained));
    before.insert(
        "lineage".into(),
        json!({"parent_id": inputs.model.meta.parent_id, "job_id": inputs.model.meta.job_id}),
    );

    let meta = meta_for(&distilled.model, &inputs);
    let file = ModelFile {
        model: distilled.model,
        meta,
    };
    let bytes = model_file::encode(&file)
        .map_err(|e| JobError::Failed(format!("could not write the student: {e}")))?;
    let distilled = Trained {
        model: file.model.clone(),
        ..distilled
    };
    let (mut metrics, student_ev) = described(&distilled, bytes.len(), data, teacher_out.view());
    let baseline = baseline.map(|b| {
        // Same architecture and file layout as the distilled student: same bytes.
        described(&b, bytes.len(), data, teacher_out.view())
    });

    metrics.insert("evaluated_on".into(), json!(evaluated_on));
    metrics.insert(
        "architecture".into(),
        serde_json::to_value(file.model.architecture()).unwrap_or(Value::Null),
    );
    metrics.insert(
        "distillation".into(),
        json!({
            "temperature": p.temperature,
            "alpha": p.alpha,
            "teacher_outputs": path,
            "teacher_cache_bytes": cache_bytes,
            "teacher_cache_budget_bytes": p.teacher_cache_bytes,
            "teacher_seconds": teacher_seconds,
            "student": p.student,
        }),
    );
    let mut side_by_side = json!({"teacher": summary(&before), "student": summary(&metrics)});
    if let Some((b, _)) = &baseline {
        side_by_side["baseline"] = summary(b);
    }
    metrics.insert("comparison".into(), side_by_side);
    metrics.insert(
        "verdict".into(),
        verdict(
            student_ev.main_metric(),
            teacher_ev.main_metric(),
            baseline.as_ref().map(|(_, ev)| ev.main_metric()),
            data.task,
        ),
    );
    let mut sections = Map::new();
    if let Some((b, _)) = baseline {
        sections.insert("baseline".into(), Value::Object(b));
    }
    metrics.insert(
        "teacher".into(),
        json!({
            "trained": inputs.model.meta.trained,
            "lineage": before.get("lineage"),
        }),
    );
    metrics.insert(
        "warnings".into(),
        json!(warning.into_iter().collect::<Vec<_>>()),
    );
    ctx.set_progress(1.0);
    let mut out = output("distilled", &inputs, &file, bytes, "f32", metrics, before);
    out.sections = sections;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verdict_states_the_measured_differences_in_points() {
        let lost = verdict(0.8719, 0.8846, Some(0.8768), Task::Multiclass);
        assert_eq!(lost["helped"], json!(false));
        assert_eq!(lost["within_one_point_of_teacher"], json!(false));
        let gap = lost["teacher_minus_baseline"].as_f64().unwrap();
        assert!((gap - 0.0078).abs() < 1e-12, "{gap}");
        assert_eq!(
            lost["summary"],
            "distillation did not help on this setting: the distilled student scores -0.49 points \
             against the same student trained without the teacher (-1.27 against the teacher, \
             which is itself +0.78 against that student); try another temperature or alpha, or a \
             stronger teacher"
        );
        let won = verdict(0.8783, 0.8998, Some(0.8768), Task::Multiclass);
        assert_eq!(won["helped"], json!(true));
        assert!(won["summary"].as_str().unwrap().starts_with(
            "distillation helped: the distilled student scores +0.15 points against the same student"
        ));
        let alone = verdict(0.5, 0.6, None, Task::Regression);
        assert!(alone.get("helped").is_none());
        assert!(alone["summary"].as_str().unwrap().contains("-0.10 R²"));
        assert_eq!(alone["within_one_point_of_teacher"], json!(false));
    }
}
