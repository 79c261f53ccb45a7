//! Fine-tuning inside an optimization job: the train job's loop with a step hook,
//! progress mapped into a slice of the job's progress bar.

use super::params::ValidTrainParams;
use super::{JobContext, JobError};
use crate::nn::Sequential;
use crate::nn::data::{Dataset, Task};
use crate::nn::trainer::{FitConfig, FitError, FitOutcome, StepHook, fit_with_hook};
use crate::validation::Invalid;

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
    let cfg = fit_config(p, data.task);
    let epochs = p.epochs.max(1) as f64;
    fit_with_hook(
        model,
        data.x.view(),
        data.y.view(),
        &cfg,
        &mut |m| {
            ctx.record_metrics(m.epoch, &m.values);
            ctx.set_progress(progress.0 + (progress.1 - progress.0) * m.epoch as f64 / epochs);
        },
        hook,
        &|| ctx.is_cancelled(),
    )
    .map_err(fit_error)
}
