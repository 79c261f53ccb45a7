//! The two background loops of the pool: the dispatcher that claims jobs into free worker slots, and the reaper that requeues expired leases.

use std::sync::Arc;
use std::time::Duration;

use super::context::Control;
use super::executor::JobExecutor;
use super::worker::run_job;
use super::{Running, Shared, lock};
use crate::store::{QueueStore, now_ms};

/// Resolves once shutdown has begun.
async fn stopped(shared: &Shared) {
    let mut rx = shared.stop.subscribe();
    // An error means the sender is gone, which also means stop.
    let _ = rx.wait_for(|s| *s).await;
}

pub(super) async fn dispatch<E: JobExecutor>(shared: Arc<Shared>, executor: Arc<E>) {
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

pub(super) async fn reap(shared: Arc<Shared>) {
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
