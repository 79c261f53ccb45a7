//! What a running job sees ([`QueueContext`]: a stop switch and an event channel, never SQL) and the async writer draining its events; separate so compute stays apart from storage.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use tokio::sync::mpsc;
use uuid::Uuid;

use crate::jobs::JobContext;
use crate::store::{QueueStore, Store};

/// Why a running job was asked to stop; the first reason wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum StopReason {
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
pub(super) struct Control {
    cancel: AtomicBool,
    reason: AtomicU8,
}

impl Control {
    pub(super) fn stop(&self, reason: StopReason) {
        let _ = self.reason.compare_exchange(
            StopReason::None as u8,
            reason as u8,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        self.cancel.store(true, Ordering::Release);
    }

    pub(super) fn reason(&self) -> StopReason {
        StopReason::from_u8(self.reason.load(Ordering::Acquire))
    }
}

/// What a job reports while it computes, on its way to [`write_events`].
pub(super) enum Event {
    Progress(f64),
    Metrics(u32, Vec<(String, f64)>),
}

/// The [`JobContext`] a job sees: flags and a channel, never SQL.
pub(super) struct QueueContext {
    pub(super) control: Arc<Control>,
    pub(super) events: mpsc::UnboundedSender<Event>,
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

/// Writes progress and metrics as they come; ends (having written everything)
/// once the job's context is dropped.
pub(super) async fn write_events(
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
