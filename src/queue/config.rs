//! [`QueueConfig`]: the timing and size of the worker pool, kept apart so the knobs read at a glance.

use std::time::Duration;

use crate::config::Settings;

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
    /// How long [`QueueHandle::shutdown`](super::QueueHandle::shutdown) waits for running jobs to stop.
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
