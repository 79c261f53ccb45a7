//! The worker pool: claims jobs from the `jobs` table, runs each on the
//! blocking pool, keeps its lease alive and writes the outcome.
//!
//! The flow of one job, and the file that holds each step:
//!
//! 1. **notify** — the API queues a job and calls [`QueueHandle::notify`],
//!    which wakes the dispatcher through a [`Notify`]; a fallback poll covers
//!    a missed wake-up.
//! 2. **claim** (`dispatcher.rs`) — while one of `workers` slots is free, the
//!    dispatcher claims the next queued job, taking a lease on it.
//! 3. **run** (`worker.rs`) — the job's inputs are loaded by the
//!    [`JobExecutor`] (`executor.rs`), then it computes inside
//!    `spawn_blocking` + `catch_unwind`: a panic fails the job and the worker
//!    lives on. The job sees only a `QueueContext` (`context.rs`): a cancel
//!    flag and a channel. Progress and metrics go through that channel to an
//!    async writer, so compute never waits on SQL; the writer is drained
//!    before the job completes, so the last metrics are never lost.
//! 4. **heartbeat / lease** (`worker.rs`) — meanwhile an async loop renews the
//!    lease every `heartbeat` and raises the job's cancel flag when a
//!    cancellation was asked for, the wall time is spent, the lease was lost,
//!    or the server is stopping. A reaper (`dispatcher.rs`, every `lease / 2`)
//!    requeues jobs whose lease expired.
//! 5. **outcome** (`worker.rs`) — success stores the produced model and
//!    artifacts as blobs and registers them in one transaction; otherwise the
//!    job is failed, cancelled, or given back, as its stop reason says.
//!
//! [`QueueHandle::shutdown`] stops claiming, stops the running jobs and puts
//! them back to `queued` without spending an attempt, so a job interrupted by
//! a server stop runs again, once, after the restart.
//!
//! Timing and size come from [`QueueConfig`] (`config.rs`).
//!
//! Assumption: one kiln process uses a data directory at a time. At start every
//! job still `running` belongs to a dead process and is requeued at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::blobs::BlobStore;
use crate::config::Settings;
use crate::store::{QueueStore, Store, StoreError};

mod config;
mod context;
mod dispatcher;
mod executor;
mod loader;
mod worker;

#[cfg(test)]
mod tests;

pub use config::QueueConfig;
use context::{Control, StopReason};
pub use executor::{JobExecutor, KilnExecutor};

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
        let dispatcher = tokio::spawn(dispatcher::dispatch(shared.clone(), executor));
        let reaper = tokio::spawn(dispatcher::reap(shared.clone()));
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
