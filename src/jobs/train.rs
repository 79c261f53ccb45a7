//! Placeholder until the tensor core lands.

use serde_json::Value;

use super::{JobContext, JobError, JobInputs, JobOutput};

pub fn run(_inputs: JobInputs, _ctx: &dyn JobContext) -> Result<JobOutput, JobError> {
    Err(JobError::Failed("not implemented yet".into()))
}

pub fn check_placeholder(params: &Value) -> Value {
    params.clone()
}

pub fn check(
    params: &Value,
    _architecture: &crate::nn::spec::Architecture,
    _dataset: &super::DatasetShape,
    _eval: Option<&super::DatasetShape>,
    _limits: &super::JobLimits,
) -> Result<Value, crate::validation::Invalid> {
    Ok(check_placeholder(params))
}
