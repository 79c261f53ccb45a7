//! Job parameter types: raw params → `check()` → valid params.
//!
//! Raw parameters are read field by field with [`Fields`] rather than with one
//! `serde` derive, so that a wrong type deep inside (`params.optimizer.lr:
//! "fast"`) and an unknown field (`params.optimizer.lrr`) are both reported
//! with their full path — plain `serde_json` errors do not carry the path.
//! Every object rejects unknown fields (the `deny_unknown_fields` rule).
//! `null` means "use the default".
//!
//! Train defaults: `epochs` 10, `batch_size` 32, `optimizer` Adam with lr 0.001,
//! `lr_schedule` constant, `loss` from the task and output width,
//! `regularization` none, `validation_split` 0, no early stopping,
//! `seed` 42 (a fixed default so that a repeated job gives the same model).
//!
//! Layout: `fields.rs` reads objects and checks numbers; `optimizer.rs` and
//! `schedule.rs` parse the two nested train choices; `train.rs` and
//! `evaluate.rs` each check one job kind's params. This file holds the
//! defaults and re-exports, so every item keeps its `jobs::params::` path.

use serde::Serialize;
use serde_json::Value;

mod compact;
mod compress;
mod distill;
mod evaluate;
mod fields;
mod fine_tune;
mod optimizer;
mod prune;
mod quantize;
mod schedule;
mod train;

pub use compact::{RankTarget, ValidCompactParams, validate_compact};
pub use compress::{CentroidInit, CoderChoice, ValidCompressParams, validate_compress};
pub use distill::{
    StudentSpec, ValidDistillParams, resolved_student, student_model_ref, validate_distill,
};
pub use evaluate::{ValidEvaluateParams, validate_evaluate};
pub use fields::Fields;
pub use fine_tune::steps_per_epoch;
pub use optimizer::OptimizerParams;
pub use prune::{
    PruneMethod, PruneScheduleParams, PruneScope, UnitRanking, ValidPruneParams, validate_prune,
};
pub use quantize::{
    CalibrationChoice, QuantizeMode, ValidCalibration, ValidQuantizeParams, validate_quantize,
};
pub use train::{
    TrainParams, ValidEarlyStopping, ValidTrainParams, check_compatibility, default_loss,
    validate_train,
};

pub const DEFAULT_SEED: u64 = 42;
pub const DEFAULT_EPOCHS: u32 = 10;
pub const DEFAULT_BATCH_SIZE: usize = 32;
pub const DEFAULT_EVAL_BATCH_SIZE: usize = 1024;
pub const DEFAULT_PATIENCE: u32 = 5;

/// Serialises checked parameters as the normalised JSON stored with the job.
pub fn to_json<T: Serialize>(params: &T) -> Value {
    serde_json::to_value(params).unwrap_or(Value::Null)
}

/// Shapes and helpers the tests of every params file share.
#[cfg(test)]
mod test_support {
    use serde_json::Value;

    use crate::params::validate_train;
    use crate::{DatasetShape, JobLimits};
    use kiln_nn::data::Task;
    use kiln_nn::spec::Architecture;

    pub(super) fn seed_arch() -> Architecture {
        serde_json::from_str(
            r#"{"input_dim": 100, "layers": [
                {"type": "dense", "units": 64, "activation": "relu"},
                {"type": "dropout", "rate": 0.2},
                {"type": "dense", "units": 32, "activation": "relu"},
                {"type": "dense", "units": 1, "activation": "sigmoid"}]}"#,
        )
        .expect("parses")
    }

    pub(super) fn binary(features: usize) -> DatasetShape {
        DatasetShape {
            rows: 1000,
            features,
            classes: 2,
            task: Task::Binary,
            input_shape: None,
        }
    }

    pub(super) fn fields(params: Value) -> Vec<String> {
        let err = validate_train(
            &params,
            &seed_arch(),
            &binary(100),
            None,
            &JobLimits::default(),
        )
        .expect_err("must be rejected");
        err.0.into_iter().map(|e| e.field).collect()
    }
}
