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

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::params::{StudentSpec, ValidDistillParams};
use super::references::ModelRole;
use super::report::to_map;
use super::snapshot::{Snapshot, score_keeping_outputs};
use super::stage::{
    self, After, Encoding, Lineage, OptimizationStage, Reported, StageContext, Transformed,
};
use super::tuning::train_with;
use super::{JobContext, JobError, JobInputs, JobOutput};
use kiln_formats::model_file::ModelFile;
use kiln_nn::Sequential;
use kiln_nn::data::{Dataset, Task};
use kiln_nn::optimize::distill::{
    DistillError, DistillLoss, Distiller, TeacherPath, TeacherTargets, agreement,
};
use kiln_nn::spec::Architecture;
use kiln_nn::train::trainer::{FitOutcome, Hooks};

/// The headline figures of one model, for the side-by-side table.
#[derive(Serialize)]
struct Summary {
    #[serde(skip_serializing_if = "Option::is_none")]
    accuracy: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    r2: Option<f64>,
    loss: f64,
    params: u64,
    size_bytes: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    latency_us_b1: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    throughput_b1024: Option<f64>,
}

impl Summary {
    fn of(s: &Snapshot) -> Self {
        let speed = s.model.speed.as_ref();
        Self {
            accuracy: s.evaluation.classification.as_ref().map(|c| c.accuracy),
            r2: s.evaluation.regression.as_ref().map(|r| r.r2),
            loss: s.evaluation.loss,
            params: s.model.params,
            size_bytes: s.model.size_bytes,
            latency_us_b1: speed.map(|s| s.latency_us_b1),
            throughput_b1024: speed.map(|s| s.throughput_b1024),
        }
    }
}

/// The stored model the distill job's `params.student` names, if any: the one
/// place the job reads it from its inputs.
fn stored_student(inputs: &JobInputs) -> Option<&ModelFile> {
    inputs.models.get(ModelRole::Student)
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

/// A trained student and how its training went.
pub struct Trained {
    model: Sequential,
    outcome: FitOutcome,
    seconds: f64,
}

/// How a student trained, beside its snapshot.
#[derive(Serialize)]
struct Training {
    agreement_with_teacher: f64,
    train_seconds: f64,
    epochs_run: u32,
    stopped_early: bool,
}

impl Training {
    fn of(t: &Trained, outputs: ndarray::ArrayView2<f32>, after: &After<'_>) -> Self {
        Self {
            agreement_with_teacher: agreement(after.before_outputs, outputs, after.data.task),
            train_seconds: t.seconds,
            epochs_run: t.outcome.epochs_run,
            stopped_early: t.outcome.stopped_early,
        }
    }
}

/// The baseline student's section of the result: its snapshot and training.
#[derive(Serialize)]
struct BaselineReport {
    #[serde(flatten)]
    snapshot: Snapshot,
    #[serde(flatten)]
    training: Training,
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
    range: (f64, f64),
) -> Result<Trained, JobError> {
    let mut distiller = Distiller::new(targets);
    let t0 = Instant::now();
    let hooks = Hooks {
        step: None,
        objective: Some(&mut distiller),
    };
    let outcome = train_with(&mut model, dataset, &p.train, hooks, ctx, Some(range), "")?;
    Ok(Trained {
        model,
        outcome,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

fn panicked(what: &str) -> JobError {
    JobError::Failed(format!("{what} panicked"))
}

/// The distill job as an [`OptimizationStage`]: the template's before snapshot is the
/// teacher's, its after snapshot the distilled student's.
pub struct DistillStage;

/// What training hands to the report.
pub struct DistillDone {
    distilled: Trained,
    baseline: Option<Trained>,
    teacher_outputs: TeacherPath,
    teacher_cache_bytes: usize,
    teacher_seconds: f64,
}

#[derive(Serialize)]
struct Distillation {
    temperature: f64,
    alpha: f64,
    teacher_outputs: TeacherPath,
    teacher_cache_bytes: usize,
    teacher_cache_budget_bytes: u64,
    teacher_seconds: f64,
    student: StudentSpec,
}

#[derive(Serialize)]
struct Comparison {
    teacher: Summary,
    student: Summary,
    #[serde(skip_serializing_if = "Option::is_none")]
    baseline: Option<Summary>,
}

#[derive(Serialize)]
struct TeacherFacts {
    trained: bool,
    lineage: Lineage,
}

/// The distill job's own report fields.
#[derive(Serialize)]
pub struct DistillReport {
    #[serde(flatten)]
    training: Training,
    architecture: Architecture,
    distillation: Distillation,
    comparison: Comparison,
    verdict: Value,
    teacher: TeacherFacts,
    warnings: Vec<String>,
}

impl OptimizationStage for DistillStage {
    type Params = ValidDistillParams;
    type Done = DistillDone;
    type Report = DistillReport;
    const PREFIX: &'static str = "distilled";
    const NOUN: &'static str = "distilled student";

    fn transform(
        &self,
        p: &ValidDistillParams,
        cx: &StageContext<'_>,
    ) -> Result<Transformed<DistillDone>, JobError> {
        let (inputs, ctx) = (cx.inputs, cx.ctx);
        let teacher = &inputs.model.model;
        let dataset = &inputs.dataset;
        // The teacher's soft targets first: the one pass over the data that uses
        // every core (see `TeacherTargets`).
        let loss = DistillLoss {
            hard: p.train.loss,
            temperature: p.temperature as f32,
            alpha: p.alpha as f32,
        };
        let start = initial_student(p, stored_student(inputs));
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
        cx.set_progress(0.125);

        // Then the distilled student here and the baseline (if asked) on a second
        // thread: they share only read-only data (a student's products are too
        // small to be split further over the cores).
        let range = cx.progress_range((0.125, 1.0));
        let (main, side) = std::thread::scope(|s| {
            let side = s.spawn(|| {
                p.baseline
                    .then(|| train_baseline(start.clone(), dataset, p, ctx))
                    .transpose()
            });
            let main = train_distilled(start.clone(), targets, dataset, p, ctx, range);
            let side = side
                .join()
                .unwrap_or_else(|_| Err(panicked("the baseline")));
            (main, side)
        });
        let (distilled, baseline) = (main?, side?);
        Ok(Transformed {
            model: distilled.model.clone(),
            encoding: Encoding::Float,
            done: DistillDone {
                distilled,
                baseline,
                teacher_outputs: path,
                teacher_cache_bytes: cache_bytes,
                teacher_seconds,
            },
        })
    }

    fn report(
        &self,
        p: &ValidDistillParams,
        done: DistillDone,
        after: &After<'_>,
    ) -> Result<Reported<DistillReport>, JobError> {
        let (inputs, data) = (after.inputs, after.data);
        let training = match after.outputs {
            Some(out) => Training::of(&done.distilled, out.view(), after),
            None => {
                return Err(JobError::Failed(
                    "the student is not a float network".into(),
                ));
            }
        };
        let baseline = done.baseline.as_ref().map(|b| {
            let (ev, out) = score_keeping_outputs(&b.model, data);
            // Same architecture and file layout as the distilled student: same bytes.
            let report = BaselineReport {
                snapshot: Snapshot::scored(&b.model, after.size_bytes, data, &ev),
                training: Training::of(b, out.view(), after),
            };
            (report, ev)
        });
        let teacher_metric = after.before_eval.main_metric();
        let report = DistillReport {
            training,
            architecture: after.file.model.architecture().clone(),
            distillation: Distillation {
                temperature: p.temperature,
                alpha: p.alpha,
                teacher_outputs: done.teacher_outputs,
                teacher_cache_bytes: done.teacher_cache_bytes,
                teacher_cache_budget_bytes: p.teacher_cache_bytes,
                teacher_seconds: done.teacher_seconds,
                student: p.student.clone(),
            },
            comparison: Comparison {
                teacher: Summary::of(after.before),
                student: Summary::of(after.snapshot),
                baseline: baseline.as_ref().map(|(b, _)| Summary::of(&b.snapshot)),
            },
            verdict: verdict(
                after.eval.main_metric(),
                teacher_metric,
                baseline.as_ref().map(|(_, ev)| ev.main_metric()),
                data.task,
            ),
            teacher: TeacherFacts {
                trained: inputs.model.meta.trained,
                lineage: Lineage::of(&inputs.model),
            },
            warnings: teacher_warning(inputs, teacher_metric, data)
                .into_iter()
                .collect(),
        };
        let mut sections = Map::new();
        if let Some((b, _)) = baseline {
            sections.insert("baseline".into(), Value::Object(to_map(&b)));
        }
        Ok(Reported {
            metrics: report,
            sections,
        })
    }
}

pub fn run(inputs: JobInputs, ctx: &dyn JobContext) -> Result<JobOutput, JobError> {
    stage::run(&DistillStage, inputs, ctx)
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
