//! Runs one claimed job: compute on the blocking pool under `catch_unwind`, heartbeat and stop checks alongside, then the outcome (and any produced model and artifacts) written to the store.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::Shared;
use super::context::{Control, QueueContext, StopReason, write_events};
use super::executor::JobExecutor;
use crate::blobs::BlobBackend;
use crate::jobs::{JobError, JobKind, JobOutput};
use crate::store::{
    CompletedJob, JobRecord, NewArtifactRecord, NewModelRecord, QueueStore, Store, StoreError,
};

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
    /// Boxed: a job's output is large next to a panic message.
    Returned(Box<Result<JobOutput, JobError>>),
    Panicked(String),
}

pub(super) async fn run_job<E: JobExecutor>(
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
            Ok(r) => Ran::Returned(Box::new(r)),
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
        Ran::Returned(returned) => match *returned {
            Ok(output) => finish_ok(shared, &job, output).await,
            Err(e) => finish_error(store, &job, e, reason).await,
        },
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
            task: model.task.map(|t| t.as_str().to_string()),
            source: model.source,
        });
        artifacts.push(NewArtifactRecord {
            id: Uuid::now_v7(),
            name: format!("model.{}", crate::formats::model::extension(&model.file)),
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
    let mut result = json!({
        "model_id": model_id,
        "metrics": Value::Object(output.metrics),
        "before": output.before.map(Value::Object),
        "artifacts": artifacts.iter().map(|a| json!({
            "id": a.id, "name": a.name, "size_bytes": a.size_bytes, "sha256": a.sha256,
        })).collect::<Vec<_>>(),
    });
    if let Value::Object(r) = &mut result {
        for (k, v) in output.sections {
            // The four fixed sections are never overwritten.
            r.entry(k).or_insert(v);
        }
    }
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
