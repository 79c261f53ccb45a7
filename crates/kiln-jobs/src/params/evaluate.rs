//! Evaluate parameters: [`validate_evaluate`] → [`ValidEvaluateParams`]; evaluation takes only a batch size.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::DEFAULT_EVAL_BATCH_SIZE;
use super::fields::Fields;
use super::train::check_compatibility;
use crate::{DatasetShape, JobLimits};
use kiln_nn::spec::Architecture;
use kiln_nn::validation::{Checker, Invalid};

/// Checked evaluate parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidEvaluateParams {
    /// Rows per inference batch (memory bound only; metrics do not depend on it).
    /// Defaults when read back too: an evaluate job queued with `{}` still runs.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
}

fn default_batch_size() -> usize {
    DEFAULT_EVAL_BATCH_SIZE
}

pub fn validate_evaluate(
    params: &Value,
    architecture: &Architecture,
    dataset: &DatasetShape,
    limits: &JobLimits,
) -> Result<ValidEvaluateParams, Invalid> {
    let mut c = Checker::new();
    let mut f = Fields::new(params, "params", &mut c);
    let batch_size: usize = f
        .get("batch_size", &mut c)
        .unwrap_or(DEFAULT_EVAL_BATCH_SIZE.min(limits.max_batch_size));
    f.finish(&mut c);
    c.require(
        (1..=limits.max_batch_size).contains(&batch_size),
        "params.batch_size",
        format!("must be between 1 and {}", limits.max_batch_size),
    );
    check_compatibility(architecture, dataset, "dataset", &mut c);
    c.finish(ValidEvaluateParams { batch_size })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::test_support::{binary, seed_arch};
    use super::*;

    #[test]
    fn evaluate_params_accept_an_empty_object_and_reject_unknown_fields() {
        let ok = validate_evaluate(
            &json!({}),
            &seed_arch(),
            &binary(100),
            &JobLimits::default(),
        )
        .expect("valid");
        assert_eq!(ok.batch_size, DEFAULT_EVAL_BATCH_SIZE);
        let err = validate_evaluate(
            &json!({"bacth_size": 3}),
            &seed_arch(),
            &binary(100),
            &JobLimits::default(),
        )
        .expect_err("typo");
        assert_eq!(err.0[0].field, "params.bacth_size");
    }
}
