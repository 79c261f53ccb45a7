//! Jobs are pure functions: `(inputs, params, &dyn JobContext) -> Result<JobOutput, JobError>`.
//!
//! A job never touches the database, the blob store or the network: the queue
//! hands it decoded inputs and stores what it returns. That keeps every job
//! testable in-process and lets the queue own retries, leases and cancellation.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use kiln_nn::data::{Dataset, Task};
use kiln_nn::spec::{Architecture, ArchitectureLimits};
use kiln_nn::validation::{Checker, Invalid};
use shape::shape_of;

pub mod compact;
pub mod compress;
pub mod derived;
pub mod distill;
pub mod evaluate;
#[cfg(test)]
pub(crate) mod fixtures;
pub mod params;
pub mod prune;
pub mod quantize;
pub mod references;
pub mod report;
pub mod shape;
pub mod snapshot;
pub mod stage;
pub mod train;
pub mod tuning;

/// The kinds of job kiln runs. The JSON name is the `kind` field of `POST /v1/jobs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    Train,
    Evaluate,
    Prune,
    Compress,
    Compact,
    Quantize,
    Distill,
}

impl JobKind {
    /// Whether the job's algorithm knows the convolutional layer kinds. The
    /// others are refused at submission rather than failing once queued.
    pub fn runs_on_images(self) -> bool {
        matches!(
            self,
            JobKind::Train | JobKind::Evaluate | JobKind::Distill | JobKind::Prune
        )
    }

    pub const ALL: &'static [JobKind] = &[
        JobKind::Train,
        JobKind::Evaluate,
        JobKind::Prune,
        JobKind::Compress,
        JobKind::Compact,
        JobKind::Quantize,
        JobKind::Distill,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Train => "train",
            JobKind::Evaluate => "evaluate",
            JobKind::Prune => "prune",
            JobKind::Compress => "compress",
            JobKind::Compact => "compact",
            JobKind::Quantize => "quantize",
            JobKind::Distill => "distill",
        }
    }

    pub fn parse(s: &str) -> Option<JobKind> {
        Self::ALL.iter().copied().find(|k| k.as_str() == s)
    }

    /// Whether a successful run registers a new model (and so needs lineage).
    pub fn produces_model(self) -> bool {
        !matches!(self, JobKind::Evaluate)
    }
}

/// What a job may ask of the process running it. Implemented by the queue;
/// tests use a simple in-memory implementation.
pub trait JobContext: Send + Sync {
    /// Fraction of the work done, `0.0..=1.0`.
    fn set_progress(&self, fraction: f64);
    /// One row of the metrics history: `step` is the epoch (1-based) for training jobs.
    fn record_metrics(&self, step: u32, metrics: &[(&str, f64)]);
    /// True once the job was cancelled; a job checks this at least once per batch.
    fn is_cancelled(&self) -> bool;
}

/// The shape of a dataset as the store knows it, enough to check job parameters
/// against it before the job is queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetShape {
    pub rows: usize,
    pub features: usize,
    pub classes: usize,
    pub task: Task,
    /// `[C, H, W]` of one example for image datasets.
    pub input_shape: Option<Vec<usize>>,
}

/// Configured ceilings on job parameters.
#[derive(Debug, Clone, Copy)]
pub struct JobLimits {
    pub max_epochs: u32,
    pub max_batch_size: usize,
    /// For architectures given in params (the distill job's student).
    pub architecture: ArchitectureLimits,
    /// Memory a distill job may spend caching the teacher's soft targets.
    pub teacher_cache_bytes: u64,
}

impl Default for JobLimits {
    fn default() -> Self {
        Self {
            max_epochs: 10_000,
            max_batch_size: 65_536,
            architecture: ArchitectureLimits::default(),
            teacher_cache_bytes: 256 << 20,
        }
    }
}

/// Decoded inputs handed to a job by the queue.
pub struct JobInputs {
    /// The model named by the job, decoded from its stored file.
    pub model: kiln_formats::model_file::ModelFile,
    /// Bytes of the stored model file (what `size_bytes` reports for the input model).
    pub model_bytes: usize,
    pub dataset: Dataset,
    pub eval_dataset: Option<Dataset>,
    /// The job's parameters exactly as accepted by [`check_params`].
    pub params: Value,
    /// Id of the model the job starts from; becomes the parent of any model it produces.
    pub model_id: uuid::Uuid,
    /// Id of the job itself, recorded in the lineage of any model file it writes.
    pub job_id: uuid::Uuid,
    /// The further stored models the job references, by role (see [`references`]).
    pub models: references::InputModels,
}

impl JobInputs {
    /// The stored params as the job's checked type, deserialized once: [`check_params`]
    /// checked and normalised them when the job was accepted, so they are not checked
    /// again (limits may have changed since). Only their fit to the model and datasets
    /// the job runs on is confirmed, so a mismatch is an error rather than a panic.
    pub fn params<T: DeserializeOwned>(&self) -> Result<T, Invalid> {
        let mut c = Checker::new();
        let arch = self.model.model.architecture();
        params::check_compatibility(arch, &shape_of(&self.dataset), "dataset", &mut c);
        if let Some(e) = &self.eval_dataset {
            params::check_compatibility(arch, &shape_of(e), "eval_dataset", &mut c);
        }
        c.finish(())?;
        serde_json::from_value(self.params.clone()).map_err(|e| {
            Invalid::one(
                "params",
                format!("the stored params do not read back as checked params: {e}"),
            )
        })
    }
}

/// A model a job produced, encoded as a kiln model file.
pub struct ProducedModel {
    pub name: String,
    pub architecture: Architecture,
    /// The complete safetensors file.
    pub file: Vec<u8>,
    pub params: u64,
    pub nonzero_params: u64,
    pub dtype: String,
    /// The task the model was trained for.
    pub task: Option<Task>,
    /// Where the model's ancestor was imported from (kept for ONNX export).
    pub source: Option<kiln_formats::source::Source>,
}

/// A file a job produced that is not itself a model (reports, plots, …).
pub struct ProducedArtifact {
    pub name: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// Everything a successful job returns. `metrics` and `before` use the key
/// names of DESIGN §2 (`loss`, `accuracy`, …, `size_bytes`, `latency_us_b1`).
#[derive(Default)]
pub struct JobOutput {
    pub model: Option<ProducedModel>,
    pub metrics: Map<String, Value>,
    pub before: Option<Map<String, Value>>,
    pub artifacts: Vec<ProducedArtifact>,
    /// Further top-level sections of the job's `result`, beside `model_id`,
    /// `metrics`, `before` and `artifacts` (the distill job's `baseline`).
    pub sections: Map<String, Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Bad parameters or inputs: fatal, never retried.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// The job saw its cancellation flag and stopped.
    #[error("cancelled")]
    Cancelled,
    /// Anything else that makes the job fail (diverged loss, corrupt model file, …): fatal.
    #[error("{0}")]
    Failed(String),
}

/// A model with a layer kind the job's algorithm does not know: the input is
/// wrong for this job, so it fails at once and is never retried.
impl From<kiln_nn::layers::UnsupportedLayer> for JobError {
    fn from(e: kiln_nn::layers::UnsupportedLayer) -> Self {
        JobError::Invalid(Invalid::one("model", e.to_string()))
    }
}

/// Checks `params` for `kind` against the model's architecture and the datasets,
/// before the job is queued. Field paths in errors start with `params.`,
/// `model`, `dataset` or `eval_dataset`. Returns the parameters normalised
/// (defaults filled in) as they will be stored and later handed to the job.
pub fn check_params(
    kind: JobKind,
    params: &Value,
    architecture: &Architecture,
    dataset: &DatasetShape,
    eval_dataset: Option<&DatasetShape>,
    limits: &JobLimits,
) -> Result<Value, Invalid> {
    let (p, a, d, e, l) = (params, architecture, dataset, eval_dataset, limits);
    if !kind.runs_on_images() && a.has_spatial_layers() {
        return Err(Invalid::one(
            "model",
            format!(
                "{} does not run on convolutional networks yet (conv2d, pooling, batch_norm or flatten layers); train, evaluate, prune (magnitude) and distill do",
                kind.as_str()
            ),
        ));
    }
    match kind {
        JobKind::Train => json(params::validate_train(p, a, d, e, l)),
        JobKind::Evaluate => json(params::validate_evaluate(p, a, d, l)),
        JobKind::Prune => json(params::validate_prune(p, a, d, e, l)),
        JobKind::Compress => json(params::validate_compress(p, a, d, e, l)),
        JobKind::Compact => json(params::validate_compact(p, a, d, e, l)),
        JobKind::Quantize => json(params::validate_quantize(p, a, d, e, l)),
        JobKind::Distill => json(params::validate_distill(p, a, d, e, l)),
    }
}

/// Checked parameters as the normalised JSON stored with the job.
fn json<T: serde::Serialize>(checked: Result<T, Invalid>) -> Result<Value, Invalid> {
    checked.map(|p| params::to_json(&p))
}

/// Runs a job to completion. Must be called on a blocking thread: it computes for seconds to hours.
pub fn run(kind: JobKind, inputs: JobInputs, ctx: &dyn JobContext) -> Result<JobOutput, JobError> {
    match kind {
        JobKind::Train => train::run(inputs, ctx),
        JobKind::Evaluate => evaluate::run(inputs, ctx),
        JobKind::Prune => prune::run(inputs, ctx),
        JobKind::Compress => compress::run(inputs, ctx),
        JobKind::Compact => compact::run(inputs, ctx),
        JobKind::Quantize => quantize::run(inputs, ctx),
        JobKind::Distill => distill::run(inputs, ctx),
    }
}
