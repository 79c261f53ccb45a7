//! The compress job (being written).
use serde_json::Value;

use super::{DatasetShape, JobContext, JobError, JobInputs, JobLimits, JobOutput};
use crate::nn::spec::Architecture;
use crate::validation::Invalid;

pub fn check(
    params: &Value,
    architecture: &Architecture,
    dataset: &DatasetShape,
    eval: Option<&DatasetShape>,
    limits: &JobLimits,
) -> Result<Value, Invalid> {
    super::params::validate_compress(params, architecture, dataset, eval, limits)
        .map(|p| super::params::to_json(&p))
}

pub fn run(_inputs: JobInputs, _ctx: &dyn JobContext) -> Result<JobOutput, JobError> {
    Err(JobError::Failed("compress is not built yet".into()))
}
