//! Fine-tuning inside an optimization job: the train job's loop with a step hook,
//! progress mapped into a slice of the job's progress bar.

use super::params::ValidTrainParams;
use super::{JobContext, JobError};
use kiln_nn::Sequential;
use kiln_nn::data::{Dataset, Task};
use kiln_nn::train::trainer::{FitConfig, FitError, FitOutcome, Hooks, StepHook, fit_with};
use kiln_nn::validation::Invalid;

/// The trainer's configuration for checked train parameters.
pub fn fit_config(p: &ValidTrainParams, task: Task) -> FitConfig {
    FitConfig {
        epochs: p.epochs,
        batch_size: p.batch_size,
        optimizer: p.optimizer.to_config(),
        schedule: p.lr_schedule,
        loss: p.loss,
        regularization: p.regularization,
        validation_split: p.validation_split,
        early_stopping: p.early_stopping.as_ref().map(|e| e.to_config()),
        seed: p.seed,
        task,
    }
}

/// How a failed fit ends the job.
pub fn fit_error(e: FitError) -> JobError {
    match e {
        FitError::Cancelled => JobError::Cancelled,
        FitError::Diverged { .. } => JobError::Failed(e.to_string()),
        FitError::Invalid(msg) => JobError::Invalid(Invalid::one("dataset", msg)),
    }
}

/// Trains `model` on `data` with `hook`, recording per-epoch metrics and moving
/// progress from `progress.0` to `progress.1`.
pub fn fine_tune(
    model: &mut Sequential,
    data: &Dataset,
    p: &ValidTrainParams,
    hook: &mut dyn StepHook,
    ctx: &dyn JobContext,
    progress: (f64, f64),
) -> Result<FitOutcome, JobError> {
    let hooks = Hooks {
        step: Some(hook),
        objective: None,
    };
    train_with(model, data, p, hooks, ctx, Some(progress), "")
}

/// [`fine_tune`] with any [`Hooks`]; per-epoch metric names get `prefix`
/// (a job that trains two models records the second one's as `baseline_loss`, …),
/// and `progress: None` leaves the progress bar to the other one.
pub fn train_with(
    model: &mut Sequential,
    data: &Dataset,
    p: &ValidTrainParams,
    hooks: Hooks<'_>,
    ctx: &dyn JobContext,
    progress: Option<(f64, f64)>,
    prefix: &str,
) -> Result<FitOutcome, JobError> {
    let cfg = fit_config(p, data.task);
    let epochs = p.epochs.max(1) as f64;
    fit_with(
        model,
        data.x.view(),
        data.y.view(),
        &cfg,
        &mut |m| {
            if prefix.is_empty() {
                ctx.record_metrics(m.epoch, &m.values);
            } else {
                let named: Vec<(String, f64)> = m
                    .values
                    .iter()
                    .map(|(k, v)| (format!("{prefix}{k}"), *v))
                    .collect();
                let values: Vec<(&str, f64)> =
                    named.iter().map(|(k, v)| (k.as_str(), *v)).collect();
                ctx.record_metrics(m.epoch, &values);
            }
            if let Some((from, to)) = progress {
                ctx.set_progress(from + (to - from) * m.epoch as f64 / epochs);
            }
        },
        hooks,
        &|| ctx.is_cancelled(),
    )
    .map_err(fit_error)
}
