//! The queue's view of the store: claim a job, keep its lease, and finish it.
//!
//! Every write after the claim is fenced by the attempt number: once a lease
//! expired and the job was requeued or claimed again, a late write from the old
//! attempt changes nothing (and [`StoreError::LeaseLost`] says so). A backend
//! must make [`QueueStore::claim_next`] atomic — two workers never claim one job.

use std::future::Future;
use std::time::Duration;

use uuid::Uuid;

use super::{CompletedJob, Completion, HeartbeatOutcome, JobRecord, StoreError};

/// Futures are `Send` so the queue can run them on any tokio worker thread.
pub trait QueueStore: Send + Sync {
    /// Claims the oldest queued job for `lease`, counting an attempt.
    fn claim_next(
        &self,
        lease: Duration,
    ) -> impl Future<Output = Result<Option<JobRecord>, StoreError>> + Send;

    /// Renews the lease of `attempt` and reports whether a cancellation was asked for.
    fn heartbeat(
        &self,
        id: Uuid,
        attempt: i64,
        lease: Duration,
    ) -> impl Future<Output = Result<HeartbeatOutcome, StoreError>> + Send;

    /// Records progress (clamped to `0..=1`); false when the attempt lost its lease.
    fn set_progress(
        &self,
        id: Uuid,
        attempt: i64,
        progress: f64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Upserts one step's metric values, so a retried attempt overwrites what an
    /// earlier attempt wrote for the same step. Non-finite values are skipped.
    fn record_metrics(
        &self,
        job_id: Uuid,
        step: i64,
        values: &[(String, f64)],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Marks the job succeeded and registers what it produced, all at once and
    /// fenced by the attempt: if the lease was lost nothing is written.
    fn complete(
        &self,
        id: Uuid,
        attempt: i64,
        done: CompletedJob,
    ) -> impl Future<Output = Result<Completion, StoreError>> + Send;

    /// Marks the attempt failed with `message` (fenced).
    fn fail(
        &self,
        id: Uuid,
        attempt: i64,
        message: &str,
    ) -> impl Future<Output = Result<JobRecord, StoreError>> + Send;

    /// Marks the attempt cancelled (fenced).
    fn mark_cancelled(
        &self,
        id: Uuid,
        attempt: i64,
    ) -> impl Future<Output = Result<JobRecord, StoreError>> + Send;

    /// Gives a running job back to the queue without spending its attempt (the
    /// server is stopping); a job whose cancellation was asked for becomes `cancelled`.
    fn release(
        &self,
        id: Uuid,
        attempt: i64,
    ) -> impl Future<Output = Result<JobRecord, StoreError>> + Send;

    /// Running jobs whose lease ended before `now_ms` go back to `queued` (or
    /// `failed` with "worker lost N times" once their attempts are spent).
    /// Returns the jobs changed, as they are now.
    fn requeue_expired(
        &self,
        now_ms: i64,
    ) -> impl Future<Output = Result<Vec<JobRecord>, StoreError>> + Send;

    /// At start-up every `running` job belongs to a previous process (one kiln
    /// process per data directory), so requeue them all without waiting for leases.
    fn requeue_running_at_start(
        &self,
    ) -> impl Future<Output = Result<Vec<JobRecord>, StoreError>> + Send;
}
