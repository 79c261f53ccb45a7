//! The `job_metrics` table: one row per (job, step, metric name).

use sqlx::SqlitePool;
use uuid::Uuid;

use super::rows::{MetricRow, all};
use crate::store::{MetricPoint, StoreError, now_ms};

/// Upserts one step's values, so a retried attempt overwrites what an earlier
/// attempt wrote for the same step. Non-finite values are skipped (SQLite
/// would store NaN as NULL) and logged.
pub(super) async fn record_metrics(
    pool: &SqlitePool,
    job_id: Uuid,
    step: i64,
    values: &[(String, f64)],
) -> Result<(), StoreError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let now = now_ms();
    for (name, value) in values {
        if !value.is_finite() {
            tracing::warn!(%job_id, step, metric = %name, value, "non-finite metric not recorded");
            continue;
        }
        sqlx::query(
            "INSERT INTO job_metrics (job_id, step, name, value, created_at) VALUES (?, ?, ?, ?, ?)
                 ON CONFLICT (job_id, step, name) DO UPDATE SET value = excluded.value,
                                                                created_at = excluded.created_at",
        )
        .bind(job_id)
        .bind(step)
        .bind(name.as_str())
        .bind(*value)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The whole history of a job, by step then name.
pub(super) async fn job_metrics(
    pool: &SqlitePool,
    job_id: Uuid,
) -> Result<Vec<MetricPoint>, StoreError> {
    let rows: Vec<MetricRow> =
        sqlx::query_as("SELECT * FROM job_metrics WHERE job_id = ? ORDER BY step, name")
            .bind(job_id)
            .fetch_all(pool)
            .await?;
    Ok(all(rows))
}
