//! [`JobExecutor`], the seam between the pool and the work, and [`KilnExecutor`], the production one; separate so tests can inject their own.

use std::future::Future;

use super::loader;
use crate::blobs::BlobStore;
use crate::jobs::{JobContext, JobError, JobInputs, JobKind, JobOutput};
use crate::store::{JobRecord, Store};

/// How the queue turns a claimed job into work: load its inputs (async, may
/// read the store and blobs), then compute (blocking). Production uses
/// [`KilnExecutor`]; tests inject their own.
pub trait JobExecutor: Send + Sync + 'static {
    type Inputs: Send + 'static;

    fn load(
        &self,
        store: &Store,
        blobs: &BlobStore,
        job: &JobRecord,
    ) -> impl Future<Output = Result<Self::Inputs, JobError>> + Send;

    /// Runs on a blocking thread.
    fn run(
        &self,
        kind: JobKind,
        inputs: Self::Inputs,
        ctx: &dyn JobContext,
    ) -> Result<JobOutput, JobError>;
}

/// Decodes the model file and the normalised datasets and calls [`crate::jobs::run`].
pub struct KilnExecutor;

impl JobExecutor for KilnExecutor {
    type Inputs = JobInputs;

    fn load(
        &self,
        store: &Store,
        blobs: &BlobStore,
        job: &JobRecord,
    ) -> impl Future<Output = Result<JobInputs, JobError>> + Send {
        loader::load_inputs(store.clone(), blobs.clone(), job.clone())
    }

    fn run(
        &self,
        kind: JobKind,
        inputs: JobInputs,
        ctx: &dyn JobContext,
    ) -> Result<JobOutput, JobError> {
        crate::jobs::run(kind, inputs, ctx)
    }
}
