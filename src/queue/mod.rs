//! The worker pool: claims jobs from the `jobs` table, runs each on the
//! blocking pool, keeps its lease alive and writes the outcome.
//!
//! - A dispatcher waits on a [`Notify`] (the API calls [`QueueHandle::notify`]
//!   after queueing a job) with a fallback poll, and claims jobs while one of
//!   `workers` slots is free.
//! - Each claimed job computes inside `spawn_blocking` + `catch_unwind`: a
//!   panic fails the job and the worker lives on. Meanwhile an async loop
//!   renews the lease every `heartbeat` and raises the job's cancel flag when a
//!   cancellation was asked for, the wall time is spent, the lease was lost, or
//!   the server is stopping. Progress and metrics go through a channel to an
//!   async writer, so compute never waits on SQL; the writer is drained before
//!   the job completes, so the last metrics are never lost.
//! - A reaper (every `lease / 2`) requeues jobs whose lease expired.
//! - [`QueueHandle::shutdown`] stops claiming, stops the running jobs and puts
//!   them back to `queued` without spending an attempt, so a job interrupted by
//!   a server stop runs again, once, after the restart.
//!
//! Assumption: one kiln process uses a data directory at a time. At start every
//! job still `running` belongs to a dead process and is requeued at once.

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::{Notify, Semaphore, mpsc, watch};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::blobs::BlobStore;
use crate::config::Settings;
use crate::jobs::{JobContext, JobError, JobInputs, JobKind, JobOutput};
use crate::store::{
    CompletedJob, JobRecord, NewArtifactRecord, NewModelRecord, Store, StoreError, now_ms,
};

mod loader;

#[cfg(test)]
mod tests;

/// Timing and size of the worker pool.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// Jobs computing at the same time.
    pub workers: usize,
    /// How long a claim stays ours without a heartbeat.
    pub lease: Duration,
    /// How often a running job renews its lease and looks for cancellation.
    pub heartbeat: Duration,
    /// Fallback poll for queued jobs when no notification comes.
    pub poll: Duration,
    /// Attempts before a job whose worker keeps dying is failed (stored per job at insert).
    pub max_attempts: u32,
    /// A running job is stopped and failed after this long.
    pub job_wall_time: Duration,
    /// How long [`QueueHandle::shutdown`] waits for running jobs to stop.
    pub shutdown_grace: Duration,
}

impl QueueConfig {
    pub fn from_settings(settings: &Settings) -> Self {
        let q = &settings.queue;
        QueueConfig {
            workers: settings.worker_count(),
            lease: Duration::from_secs(q.lease_secs.max(1)),
            heartbeat: Duration::from_secs(q.heartbeat_secs.max(1)),
            poll: Duration::from_secs(q.poll_secs.max(1)),
            max_attempts: q.max_attempts,
            job_wall_time: Duration::from_secs(settings.limits.job_wall_time_secs.max(1)),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

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

/// Why a running job was asked to stop; the first reason wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum StopReason {
    None = 0,
    Cancelled = 1,
    WallTime = 2,
    LeaseLost = 3,
    Shutdown = 4,
}

impl StopReason {
    fn from_u8(v: u8) -> StopReason {
        match v {
            1 => StopReason::Cancelled,
            2 => StopReason::WallTime,
            3 => StopReason::LeaseLost,
            4 => StopReason::Shutdown,
            _ => StopReason::None,
        }
    }
}

/// The stop switch of one running job, shared by its compute, its heartbeat and shutdown.
#[derive(Debug, Default)]
struct Control {
    cancel: AtomicBool,
    reason: AtomicU8,
}

impl Control {
    fn stop(&self, reason: StopReason) {
        let _ = self.reason.compare_exchange(
            StopReason::None as u8,
            reason as u8,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        self.cancel.store(true, Ordering::Release);
    }

    fn reason(&self) -> StopReason {
        StopReason::from_u8(self.reason.load(Ordering::Acquire))
    }
}

enum Event {
    Progress(f64),
    Metrics(u32, Vec<(String, f64)>),
}

/// The [`JobContext`] a job sees: flags and a channel, never SQL.
struct QueueContext {
    control: Arc<Control>,
    events: mpsc::UnboundedSender<Event>,
}

impl JobContext for QueueContext {
    fn set_progress(&self, fraction: f64) {
        // The writer outlives the compute; a failed send only means the job is being torn down.
        let _ = self.events.send(Event::Progress(fraction));
    }

    fn record_metrics(&self, step: u32, metrics: &[(&str, f64)]) {
        let values = metrics
            .iter()
            .map(|(k, v)| ((*k).to_string(), *v))
            .collect();
        let _ = self.events.send(Event::Metrics(step, values));
    }

    fn is_cancelled(&self) -> bool {
        self.control.cancel.load(Ordering::Acquire)
    }
}

struct Running {
    attempt: i64,
    control: Arc<Control>,
}

struct Shared {
    store: Store,
    blobs: BlobStore,
    config: QueueConfig,
    notify: Notify,
    slots: Arc<Semaphore>,
    stop: watch::Sender<bool>,
    running: Mutex<HashMap<Uuid, Running>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// Handle on the running pool; cheap to clone.
#[derive(Clone)]
pub struct QueueHandle {
    shared: Arc<Shared>,
}

pub struct Queue;

impl Queue {
    /// Starts the production pool configured from `settings`.
    pub async fn start(
        store: Store,
        blobs: BlobStore,
        settings: &Settings,
    ) -> Result<QueueHandle, StoreError> {
        Self::start_with(
            store,
            blobs,
            QueueConfig::from_settings(settings),
            KilnExecutor,
        )
        .await
    }

    /// Starts a pool with an explicit configuration and executor: requeues jobs
    /// a previous process left `running`, then starts the dispatcher and the reaper.
    pub async fn start_with<E: JobExecutor>(
        store: Store,
        blobs: BlobStore,
        config: QueueConfig,
        executor: E,
    ) -> Result<QueueHandle, StoreError> {
        for job in store.requeue_running_at_start().await? {
            tracing::info!(job_id = %job.id, kind = %job.kind, attempt = job.attempts, status = %job.status,
                "job left running by a previous process");
        }
        let workers = config.workers.max(1);
        let (stop, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            store,
            blobs,
            config,
            notify: Notify::new(),
            slots: Arc::new(Semaphore::new(workers)),
            stop,
            running: Mutex::new(HashMap::new()),
            tasks: Mutex::new(Vec::new()),
        });
        let executor = Arc::new(executor);
        let dispatcher = tokio::spawn(dispatch(shared.clone(), executor));
        let reaper = tokio::spawn(reap(shared.clone()));
        lock(&shared.tasks).extend([dispatcher, reaper]);
        tracing::info!(workers, "job queue started");
        Ok(QueueHandle { shared })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock only means a panic elsewhere; the data (a map of flags) stays usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl QueueHandle {
    /// Wakes the dispatcher: a job was queued.
    pub fn notify(&self) {
        self.shared.notify.notify_one();
    }

    /// Workers computing right now.
    pub fn busy_workers(&self) -> usize {
        self.shared.config.workers.max(1) - self.shared.slots.available_permits()
    }

    /// Stops claiming, asks running jobs to stop and gives them back to the
    /// queue without spending an attempt. Waits up to the configured grace.
    pub async fn shutdown(&self) {
        let shared = &self.shared;
        if shared.stop.send_replace(true) {
            return; // already stopping
        }
        let running: Vec<(Uuid, i64, Arc<Control>)> = lock(&shared.running)
            .iter()
            .map(|(id, r)| (*id, r.attempt, r.control.clone()))
            .collect();
        for (id, attempt, control) in &running {
            tracing::info!(job_id = %id, attempt, "stopping job for shutdown");
            control.stop(StopReason::Shutdown);
        }
        let workers = u32::try_from(shared.config.workers.max(1)).unwrap_or(u32::MAX);
        match tokio::time::timeout(
            shared.config.shutdown_grace,
            shared.slots.acquire_many(workers),
        )
        .await
        {
            Ok(Ok(_all_idle)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "worker slots closed during shutdown"),
            Err(_) => {
                // Jobs that did not stop in time: give them back now; whatever they
                // write later is refused by the attempt fence.
                let left: Vec<(Uuid, i64)> = lock(&shared.running)
                    .iter()
                    .map(|(id, r)| (*id, r.attempt))
                    .collect();
                for (id, attempt) in left {
                    match shared.store.release(id, attempt).await {
                        Ok(job) => tracing::warn!(job_id = %id, attempt, status = %job.status,
                            "job did not stop within the shutdown grace; released"),
                        Err(e) => {
                            tracing::error!(job_id = %id, attempt, error = %e, "cannot release job at shutdown")
                        }
                    }
                }
            }
        }
        let tasks: Vec<JoinHandle<()>> = lock(&shared.tasks).drain(..).collect();
        for t in tasks {
            if let Err(e) = t.await {
                tracing::error!(error = %e, "queue task ended abnormally");
            }
        }
        tracing::info!("job queue stopped");
    }
}

/// Resolves once shutdown has begun.
async fn stopped(shared: &Shared) {
    let mut rx = shared.stop.subscribe();
    // An error means the sender is gone, which also means stop.
    let _ = rx.wait_for(|s| *s).await;
}

async fn dispatch<E: JobExecutor>(shared: Arc<Shared>, executor: Arc<E>) {
    loop {
        let permit = tokio::select! {
            p = shared.slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(error = %e, "worker slots closed; dispatcher stops");
                    return;
                }
            },
            () = stopped(&shared) => return,
        };
        if *shared.stop.borrow() {
            return;
        }
        match shared.store.claim_next(shared.config.lease).await {
            Ok(Some(job)) => {
                let control = Arc::new(Control::default());
                lock(&shared.running).insert(
                    job.id,
                    Running {
                        attempt: job.attempts,
                        control: control.clone(),
                    },
                );
                let shared = shared.clone();
                let executor = executor.clone();
                tokio::spawn(async move {
                    let id = job.id;
                    run_job(&shared, executor, job, control).await;
                    lock(&shared.running).remove(&id);
                    drop(permit);
                });
                continue;
            }
            Ok(None) => drop(permit),
            Err(e) => {
                drop(permit);
                tracing::error!(error = %e, "cannot claim a job; retrying after the poll interval");
            }
        }
        tokio::select! {
            () = shared.notify.notified() => {}
            () = tokio::time::sleep(shared.config.poll) => {}
            () = stopped(&shared) => return,
        }
    }
}

async fn reap(shared: Arc<Shared>) {
    let period = (shared.config.lease / 2).max(Duration::from_millis(100));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stopped(&shared) => return,
        }
        match shared.store.requeue_expired(now_ms()).await {
            Ok(jobs) => {
                for job in &jobs {
                    tracing::warn!(job_id = %job.id, kind = %job.kind, attempt = job.attempts, status = %job.status,
                        error = job.error.as_deref().unwrap_or(""), "lease expired");
                }
                if !jobs.is_empty() {
                    shared.notify.notify_one();
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot requeue expired jobs"),
        }
    }
}

/// Writes progress and metrics as they come; ends (having written everything)
/// once the job's context is dropped.
async fn write_events(
    store: Store,
    job_id: Uuid,
    attempt: i64,
    mut rx: mpsc::UnboundedReceiver<Event>,
) {
    while let Some(first) = rx.recv().await {
        // Coalesce a burst: only the last progress value matters, every metric row does.
        let mut batch = vec![first];
        while let Ok(e) = rx.try_recv() {
            batch.push(e);
        }
        let mut progress = None;
        for event in batch {
            match event {
                Event::Progress(p) => progress = Some(p),
                Event::Metrics(step, values) => {
                    if let Err(e) = store.record_metrics(job_id, i64::from(step), &values).await {
                        tracing::error!(%job_id, attempt, step, error = %e, "cannot record metrics");
                    }
                }
            }
        }
        if let Some(p) = progress
            && let Err(e) = store.set_progress(job_id, attempt, p).await
        {
            tracing::warn!(%job_id, attempt, error = %e, "cannot record progress");
        }
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

/// How the compute ended.
enum Ran {
    Returned(Result<JobOutput, JobError>),
    Panicked(String),
}

async fn run_job<E: JobExecutor>(
    shared: &Shared,
    executor: Arc<E>,
    job: JobRecord,
    control: Arc<Control>,
) {
    let id = job.id;
    let attempt = job.attempts;
    let kind_name = job.kind.clone();
    tracing::info!(job_id = %id, kind = %kind_name, attempt, status = "running", "job started");
    let store = &shared.store;

    let Some(kind) = JobKind::parse(&job.kind) else {
        finish_failed(store, &job, &format!("unknown job kind `{}`", job.kind)).await;
        return;
    };
    let inputs = match executor.load(store, &shared.blobs, &job).await {
        Ok(inputs) => inputs,
        Err(e) => {
            finish_error(store, &job, e, StopReason::None).await;
            return;
        }
    };

    let (tx, rx) = mpsc::unbounded_channel();
    let writer = tokio::spawn(write_events(store.clone(), id, attempt, rx));
    let ctx = QueueContext {
        control: control.clone(),
        events: tx,
    };
    let span = tracing::info_span!("job", job_id = %id, kind = %kind_name, attempt);
    let mut compute = tokio::task::spawn_blocking(move || {
        let _enter = span.enter();
        let result =
            std::panic::catch_unwind(AssertUnwindSafe(|| executor.run(kind, inputs, &ctx)));
        drop(ctx); // closes the event channel, so the writer finishes
        match result {
            Ok(r) => Ran::Returned(r),
            Err(payload) => Ran::Panicked(panic_message(payload.as_ref())),
        }
    });

    let started = Instant::now();
    let mut beat = tokio::time::interval(shared.config.heartbeat);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    beat.tick().await; // the first tick is immediate; the claim just set the lease
    let ran = loop {
        tokio::select! {
            r = &mut compute => break r,
            _ = beat.tick() => {
                // A job claimed just as shutdown began may have missed its snapshot.
                if *shared.stop.borrow() {
                    control.stop(StopReason::Shutdown);
                }
                if started.elapsed() > shared.config.job_wall_time {
                    control.stop(StopReason::WallTime);
                }
                match store.heartbeat(id, attempt, shared.config.lease).await {
                    Ok(h) if !h.lease_kept => {
                        tracing::warn!(job_id = %id, attempt, "lease lost; stopping this attempt");
                        control.stop(StopReason::LeaseLost);
                    }
                    Ok(h) if h.cancel_requested => control.stop(StopReason::Cancelled),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(job_id = %id, attempt, error = %e, "heartbeat failed"),
                }
            }
        }
    };
    // Every progress and metric row is written before the outcome.
    if let Err(e) = writer.await {
        tracing::error!(job_id = %id, error = %e, "metrics writer ended abnormally");
    }
    let reason = control.reason();
    let ran = match ran {
        Ok(ran) => ran,
        Err(e) => Ran::Panicked(format!("worker task failed: {e}")),
    };
    match ran {
        Ran::Panicked(msg) => {
            tracing::error!(job_id = %id, attempt, panic = %msg, "job panicked");
            finish_failed(store, &job, &format!("job panicked: {msg}")).await;
        }
        Ran::Returned(Ok(output)) => finish_ok(shared, &job, output).await,
        Ran::Returned(Err(e)) => finish_error(store, &job, e, reason).await,
    }
}

async fn finish_error(store: &Store, job: &JobRecord, error: JobError, reason: StopReason) {
    let (id, attempt) = (job.id, job.attempts);
    match (error, reason) {
        (_, StopReason::LeaseLost) => {
            tracing::warn!(job_id = %id, kind = %job.kind, attempt, "attempt abandoned after losing its lease");
        }
        (_, StopReason::Shutdown) => match store.release(id, attempt).await {
            Ok(j) => tracing::info!(job_id = %id, kind = %job.kind, attempt, status = %j.status,
                "job returned to the queue at shutdown"),
            Err(e) => {
                tracing::error!(job_id = %id, attempt, error = %e, "cannot release job at shutdown")
            }
        },
        (JobError::Cancelled, StopReason::WallTime) => {
            finish_failed(store, job, "exceeded job wall time").await;
        }
        (JobError::Cancelled, _) => match store.mark_cancelled(id, attempt).await {
            Ok(_) => {
                tracing::info!(job_id = %id, kind = %job.kind, attempt, status = "cancelled", "job cancelled")
            }
            Err(e) => log_write_error(job, "cancelled", &e),
        },
        (JobError::Invalid(e), _) => finish_failed(store, job, &e.to_string()).await,
        (JobError::Failed(msg), _) => finish_failed(store, job, &msg).await,
    }
}

async fn finish_failed(store: &Store, job: &JobRecord, message: &str) {
    match store.fail(job.id, job.attempts, message).await {
        Ok(_) => {
            tracing::info!(job_id = %job.id, kind = %job.kind, attempt = job.attempts, status = "failed",
            error = message, "job failed")
        }
        Err(e) => log_write_error(job, "failed", &e),
    }
}

fn log_write_error(job: &JobRecord, status: &str, e: &StoreError) {
    match e {
        StoreError::LeaseLost { .. } => {
            tracing::warn!(job_id = %job.id, attempt = job.attempts, status,
            "outcome not recorded: this attempt no longer owns the job")
        }
        e => {
            tracing::error!(job_id = %job.id, attempt = job.attempts, status, error = %e, "cannot record job outcome")
        }
    }
}

async fn finish_ok(shared: &Shared, job: &JobRecord, output: JobOutput) {
    match store_outputs(shared, job, output).await {
        Ok(model_id) => {
            tracing::info!(job_id = %job.id, kind = %job.kind, attempt = job.attempts, status = "succeeded",
            model_id = ?model_id, "job succeeded")
        }
        Err(StoreOutputsError::Store(e)) => log_write_error(job, "succeeded", &e),
        Err(StoreOutputsError::Blob(e)) => {
            tracing::error!(job_id = %job.id, error = %e, "cannot store job outputs");
            finish_failed(
                &shared.store,
                job,
                &format!("cannot store the job's outputs: {e}"),
            )
            .await;
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum StoreOutputsError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Blob(#[from] crate::blobs::BlobError),
}

/// Writes the produced files as blobs, then registers everything in one transaction.
async fn store_outputs(
    shared: &Shared,
    job: &JobRecord,
    output: JobOutput,
) -> Result<Option<Uuid>, StoreOutputsError> {
    let mut artifacts = Vec::new();
    let mut model_row = None;
    if let Some(model) = output.model {
        let blob = shared.blobs.put_bytes(&model.file).await?;
        let task = match shared.store.get_dataset(job.dataset_id).await? {
            Some(d) => Some(d.task),
            None => None,
        };
        let model_id = Uuid::now_v7();
        model_row = Some(NewModelRecord {
            id: model_id,
            name: model.name,
            architecture: model.architecture,
            params: i64::try_from(model.params).unwrap_or(i64::MAX),
            nonzero_params: i64::try_from(model.nonzero_params).unwrap_or(i64::MAX),
            size_bytes: blob.size_bytes as i64,
            dtype: model.dtype,
            sha256: blob.sha256.clone(),
            trained: true,
            parent_id: Some(job.model_id),
            job_id: Some(job.id),
            task,
        });
        artifacts.push(NewArtifactRecord {
            id: Uuid::now_v7(),
            name: "model.safetensors".into(),
            content_type: "application/octet-stream".into(),
            sha256: blob.sha256,
            size_bytes: blob.size_bytes as i64,
        });
    }
    for a in output.artifacts {
        let blob = shared.blobs.put_bytes(&a.bytes).await?;
        artifacts.push(NewArtifactRecord {
            id: Uuid::now_v7(),
            name: a.name,
            content_type: a.content_type,
            sha256: blob.sha256,
            size_bytes: blob.size_bytes as i64,
        });
    }
    let model_id = model_row.as_ref().map(|m| m.id);
    let result = json!({
        "model_id": model_id,
        "metrics": Value::Object(output.metrics),
        "before": output.before.map(Value::Object),
        "artifacts": artifacts.iter().map(|a| json!({
            "id": a.id, "name": a.name, "size_bytes": a.size_bytes, "sha256": a.sha256,
        })).collect::<Vec<_>>(),
    });
    shared
        .store
        .complete(
            job.id,
            job.attempts,
            CompletedJob {
                result,
                model: model_row,
                artifacts,
            },
        )
        .await?;
    Ok(model_id)
}
