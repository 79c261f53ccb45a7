//! `params.fine_tune`: the train parameters an optimization job fine-tunes with.

use serde_json::Value;

use super::train::{ValidTrainParams, validate_train};
use crate::{DatasetShape, JobLimits};
use kiln_nn::spec::Architecture;
use kiln_nn::validation::{Checker, FieldError, Invalid};

/// Checks `raw` as train parameters; errors are reported under `params.fine_tune.…`.
/// `None` (absent or `null`) means no fine-tuning.
pub fn fine_tune(
    raw: Option<&Value>,
    architecture: &Architecture,
    dataset: &DatasetShape,
    eval: Option<&DatasetShape>,
    limits: &JobLimits,
    c: &mut Checker,
) -> Option<ValidTrainParams> {
    let raw = raw?;
    match validate_train(raw, architecture, dataset, eval, limits) {
        Ok(p) => Some(p),
        Err(Invalid(errors)) => {
            for e in errors {
                let field = match e.field.strip_prefix("params") {
                    Some(rest) => format!("params.fine_tune{rest}"),
                    None => e.field,
                };
                c.extend(FieldError::new(field, e.message).into());
            }
            None
        }
    }
}

/// Optimizer steps one epoch of fine-tuning takes on `rows` rows.
pub fn steps_per_epoch(p: &ValidTrainParams, rows: usize) -> u64 {
    let val = kiln_nn::train::batch::validation_rows(rows, p.validation_split);
    let train = rows.saturating_sub(val).max(1);
    train.div_ceil(p.batch_size.clamp(1, train)) as u64
}
