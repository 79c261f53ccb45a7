//! The `jobs` table, which is also the queue.
//!
//! A worker claims a job with one `UPDATE … RETURNING` statement (SQLite
//! serialises writers, so that statement is the lock) and from then on every
//! write it makes is fenced by `WHERE id = ? AND attempts = ? AND status =
//! 'running'`: once its lease expired and the job was requeued or claimed by
//! someone else, a late write from the old attempt changes nothing.

use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::types::Json;
use uuid::Uuid;

use super::artifacts::insert_artifact;
use super::models::insert_model_in;
use super::rows::{self, JobRow};
use crate::jobs::references::ModelRole;
use crate::store::{
    CancelOutcome, CompletedJob, Completion, HeartbeatOutcome, InsertJobOutcome, JobRecord,
    JobStatus, NewJobRecord, StoreError, duration_ms, now_ms,
};

/// Sets a running job whose worker is gone back to `queued`, or `failed` once
/// its attempts are spent, or `cancelled` if a cancellation was asked for.
/// `?1` is now; the caller adds the condition choosing the rows.
const REQUEUE_LOST: &str = "UPDATE jobs SET
        status = CASE WHEN cancel_requested THEN 'cancelled'
                      WHEN attempts < max_attempts THEN 'queued'
                      ELSE 'failed' END,
        error = CASE WHEN cancel_requested OR attempts < max_attempts THEN error
                     ELSE 'worker lost ' || attempts || ' times' END,
        finished_at = CASE WHEN cancel_requested OR attempts >= max_attempts THEN ?1 ELSE NULL END,
        lease_until = NULL
    WHERE status = 'running'";

/// Queues a job, honouring its idempotency key: the same key with the same
/// request hash returns the existing job, with another hash `KeyConflict`.
pub(super) async fn insert_job(
    pool: &SqlitePool,
    new: NewJobRecord,
) -> Result<InsertJobOutcome, StoreError> {
    // The job and the models it references land together, or not at all.
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let inserted: Option<JobRow> = sqlx::query_as(
        "INSERT INTO jobs (id, kind, status, model_id, dataset_id, eval_dataset_id, params,
                               max_attempts, idempotency_key, request_hash, created_at)
             VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (idempotency_key) DO NOTHING
             RETURNING *",
    )
    .bind(new.id)
    .bind(new.kind)
    .bind(new.model_id)
    .bind(new.dataset_id)
    .bind(new.eval_dataset_id)
    .bind(Json(new.params))
    .bind(new.max_attempts)
    .bind(new.idempotency_key.clone())
    .bind(new.request_hash.clone())
    .bind(now_ms())
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(job) = &inserted {
        let input = std::iter::once((ModelRole::Input, new.model_id));
        for (role, model_id) in input.chain(new.models.iter().copied()) {
            sqlx::query(
                "INSERT OR IGNORE INTO job_models (job_id, model_id, role) VALUES (?, ?, ?)",
            )
            .bind(job.id)
            .bind(model_id)
            .bind(role.as_str())
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    if let Some(job) = rows::job(inserted)? {
        return Ok(InsertJobOutcome::Created(job));
    }
    // Only a key conflict makes the insert do nothing.
    let Some(key) = new.idempotency_key else {
        return Err(StoreError::from(sqlx::Error::RowNotFound));
    };
    let existing = job_by_idempotency_key(pool, &key)
        .await?
        .ok_or(StoreError::from(sqlx::Error::RowNotFound))?;
    if existing.request_hash == new.request_hash {
        Ok(InsertJobOutcome::Existing(existing))
    } else {
        Ok(InsertJobOutcome::KeyConflict)
    }
}

/// The stored models a job references, by role (its input model among them).
pub(super) async fn job_models(
    pool: &SqlitePool,
    job_id: Uuid,
) -> Result<Vec<(ModelRole, Uuid)>, StoreError> {
    let rows: Vec<(String, Uuid)> =
        sqlx::query_as("SELECT role, model_id FROM job_models WHERE job_id = ? ORDER BY role")
            .bind(job_id)
            .fetch_all(pool)
            .await?;
    rows.into_iter()
        .map(|(role, id)| {
            ModelRole::parse(&role)
                .map(|r| (r, id))
                .ok_or(StoreError::UnknownRole { job_id, role })
        })
        .collect()
}

pub(super) async fn job_by_idempotency_key(
    pool: &SqlitePool,
    key: &str,
) -> Result<Option<JobRecord>, StoreError> {
    let row: Option<JobRow> = sqlx::query_as("SELECT * FROM jobs WHERE idempotency_key = ?")
        .bind(key)
        .fetch_optional(pool)
        .await?;
    rows::job(row)
}

pub(super) async fn get_job(pool: &SqlitePool, id: Uuid) -> Result<Option<JobRecord>, StoreError> {
    let row: Option<JobRow> = sqlx::query_as("SELECT * FROM jobs WHERE id = ?")
        .bind(id)
        .fetch_optional(pool)
        .await?;
    rows::job(row)
}

/// Newest first, optionally only one status and/or kind; `cursor` is the last id of the previous page.
pub(super) async fn list_jobs(
    pool: &SqlitePool,
    status: Option<JobStatus>,
    kind: Option<&str>,
    limit: u32,
    cursor: Option<Uuid>,
) -> Result<Vec<JobRecord>, StoreError> {
    let found: Vec<JobRow> = sqlx::query_as(
            "SELECT * FROM jobs
             WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR kind = ?2) AND (?3 IS NULL OR id < ?3)
             ORDER BY id DESC LIMIT ?4",
        )
        .bind(status.map(JobStatus::as_str))
        .bind(kind)
        .bind(cursor)
        .bind(limit)
        .fetch_all(pool)
        .await?;
    rows::jobs(found)
}

/// Claims the oldest queued job for `lease`, counting an attempt.
///
/// SQLite serialises writers, so this one UPDATE is the lock: two workers
/// can never claim the same row.
pub(super) async fn claim_next(
    pool: &SqlitePool,
    lease: Duration,
) -> Result<Option<JobRecord>, StoreError> {
    let now = now_ms();
    let claimed: Option<JobRow> = sqlx::query_as(
        "UPDATE jobs SET status = 'running', attempts = attempts + 1, lease_until = ?1,
                             heartbeat_at = ?2, started_at = COALESCE(started_at, ?2)
             WHERE id = (SELECT id FROM jobs WHERE status = 'queued' ORDER BY id LIMIT 1)
             RETURNING *",
    )
    .bind(now.saturating_add(duration_ms(lease)))
    .bind(now)
    .fetch_optional(pool)
    .await?;
    rows::job(claimed)
}

/// Renews the lease of `attempt` and reports whether a cancellation was asked for.
pub(super) async fn heartbeat(
    pool: &SqlitePool,
    id: Uuid,
    attempt: i64,
    lease: Duration,
) -> Result<HeartbeatOutcome, StoreError> {
    let now = now_ms();
    let cancel: Option<bool> = sqlx::query_scalar(
        "UPDATE jobs SET lease_until = ?, heartbeat_at = ?
             WHERE id = ? AND attempts = ? AND status = 'running'
             RETURNING cancel_requested",
    )
    .bind(now.saturating_add(duration_ms(lease)))
    .bind(now)
    .bind(id)
    .bind(attempt)
    .fetch_optional(pool)
    .await?;
    Ok(match cancel {
        Some(cancel_requested) => HeartbeatOutcome {
            lease_kept: true,
            cancel_requested,
        },
        None => HeartbeatOutcome {
            lease_kept: false,
            cancel_requested: false,
        },
    })
}

/// Records progress (clamped to `0..=1`); false when the attempt lost its lease.
pub(super) async fn set_progress(
    pool: &SqlitePool,
    id: Uuid,
    attempt: i64,
    progress: f64,
) -> Result<bool, StoreError> {
    let progress = if progress.is_finite() {
        progress.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let done = sqlx::query(
        "UPDATE jobs SET progress = ? WHERE id = ? AND attempts = ? AND status = 'running'",
    )
    .bind(progress)
    .bind(id)
    .bind(attempt)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Marks the job succeeded and registers what it produced, all in one
/// transaction fenced by the attempt: if the lease was lost nothing is
/// written and `StoreError::LeaseLost` is returned.
pub(super) async fn complete(
    pool: &SqlitePool,
    id: Uuid,
    attempt: i64,
    done: CompletedJob,
) -> Result<Completion, StoreError> {
    // IMMEDIATE takes the write lock now, so the transaction cannot fail later on a lock upgrade.
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let job: Option<JobRow> = sqlx::query_as(
        "UPDATE jobs SET status = 'succeeded', result = ?, progress = 1, finished_at = ?,
                             lease_until = NULL, error = NULL
             WHERE id = ? AND attempts = ? AND status = 'running'
             RETURNING *",
    )
    .bind(Json(done.result))
    .bind(now_ms())
    .bind(id)
    .bind(attempt)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(job) = rows::job(job)? else {
        tx.rollback().await?;
        return Err(StoreError::LeaseLost {
            job_id: id,
            attempt,
        });
    };
    let model = match done.model {
        Some(m) => Some(insert_model_in(&mut *tx, m).await?),
        None => None,
    };
    let mut artifacts = Vec::with_capacity(done.artifacts.len());
    for a in done.artifacts {
        artifacts.push(insert_artifact(&mut *tx, id, a).await?);
    }
    tx.commit().await?;
    Ok((job, model, artifacts))
}

/// Marks the attempt failed with `message` (fenced).
pub(super) async fn fail(
    pool: &SqlitePool,
    id: Uuid,
    attempt: i64,
    message: &str,
) -> Result<JobRecord, StoreError> {
    finish_fenced(pool, id, attempt, "failed", Some(message)).await
}

/// Marks the attempt cancelled (fenced).
pub(super) async fn mark_cancelled(
    pool: &SqlitePool,
    id: Uuid,
    attempt: i64,
) -> Result<JobRecord, StoreError> {
    finish_fenced(pool, id, attempt, "cancelled", None).await
}

async fn finish_fenced(
    pool: &SqlitePool,
    id: Uuid,
    attempt: i64,
    status: &str,
    error: Option<&str>,
) -> Result<JobRecord, StoreError> {
    let job: Option<JobRow> = sqlx::query_as(
        "UPDATE jobs SET status = ?, error = ?, finished_at = ?, lease_until = NULL
             WHERE id = ? AND attempts = ? AND status = 'running'
             RETURNING *",
    )
    .bind(status)
    .bind(error)
    .bind(now_ms())
    .bind(id)
    .bind(attempt)
    .fetch_optional(pool)
    .await?;
    rows::job(job)?.ok_or(StoreError::LeaseLost {
        job_id: id,
        attempt,
    })
}

/// Gives a running job back to the queue without spending its attempt —
/// used when the server stops while the job runs, so it runs again after a
/// restart. A job whose cancellation was asked for becomes `cancelled` instead.
pub(super) async fn release(
    pool: &SqlitePool,
    id: Uuid,
    attempt: i64,
) -> Result<JobRecord, StoreError> {
    let job: Option<JobRow> = sqlx::query_as(
        "UPDATE jobs SET
                 status = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'queued' END,
                 attempts = CASE WHEN cancel_requested THEN attempts ELSE attempts - 1 END,
                 finished_at = CASE WHEN cancel_requested THEN ? ELSE NULL END,
                 lease_until = NULL
             WHERE id = ? AND attempts = ? AND status = 'running'
             RETURNING *",
    )
    .bind(now_ms())
    .bind(id)
    .bind(attempt)
    .fetch_optional(pool)
    .await?;
    rows::job(job)?.ok_or(StoreError::LeaseLost {
        job_id: id,
        attempt,
    })
}

/// Cancels a queued job at once, or asks a running one to stop.
pub(super) async fn request_cancel(
    pool: &SqlitePool,
    id: Uuid,
) -> Result<CancelOutcome, StoreError> {
    // Every SET expression sees the row as it was, so `status` below is the old status.
    let job: Option<JobRow> = sqlx::query_as(
        "UPDATE jobs SET
                 status = CASE WHEN status = 'queued' THEN 'cancelled' ELSE status END,
                 finished_at = CASE WHEN status = 'queued' THEN ? ELSE finished_at END,
                 cancel_requested = 1
             WHERE id = ? AND status IN ('queued', 'running')
             RETURNING *",
    )
    .bind(now_ms())
    .bind(id)
    .fetch_optional(pool)
    .await?;
    Ok(match rows::job(job)? {
        Some(job) if job.status == JobStatus::Cancelled => CancelOutcome::Cancelled(job),
        Some(job) => CancelOutcome::Requested(job),
        None => match get_job(pool, id).await? {
            Some(job) => CancelOutcome::AlreadyFinished(job),
            None => CancelOutcome::NotFound,
        },
    })
}

/// Running jobs whose lease ended before `now_ms` go back to `queued`
/// (or `failed` with "worker lost N times" once their attempts are spent).
/// Returns the jobs changed, as they are now.
pub(super) async fn requeue_expired(
    pool: &SqlitePool,
    now_ms: i64,
) -> Result<Vec<JobRecord>, StoreError> {
    let sql = format!("{REQUEUE_LOST} AND lease_until < ?1 RETURNING *");
    let changed: Vec<JobRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(now_ms)
        .fetch_all(pool)
        .await?;
    rows::jobs(changed)
}

/// At start-up every `running` job belongs to a previous process (a data
/// directory is used by one kiln process at a time), so none of them has a
/// live worker: requeue them at once rather than waiting for their leases.
pub(super) async fn requeue_running_at_start(
    pool: &SqlitePool,
) -> Result<Vec<JobRecord>, StoreError> {
    let sql = format!("{REQUEUE_LOST} RETURNING *");
    let changed: Vec<JobRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(now_ms())
        .fetch_all(pool)
        .await?;
    rows::jobs(changed)
}
