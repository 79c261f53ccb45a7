//! A job's metric history: one value per (job, step, metric name).

use serde::Serialize;
use uuid::Uuid;

/// One value of a job's metric history.
#[derive(Debug, Clone, Serialize)]
pub struct MetricPoint {
    pub job_id: Uuid,
    /// The epoch (1-based) for training jobs.
    pub step: i64,
    pub name: String,
    pub value: f64,
    /// Unix milliseconds.
    pub created_at: i64,
}
