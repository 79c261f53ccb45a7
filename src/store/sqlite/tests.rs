//! Against a real SQLite database in a temporary directory.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;
use uuid::Uuid;

use super::*;
use crate::jobs::JobKind;
use crate::jobs::references::{ModelRole, referenced_models};
use crate::nn::spec::{Activation, Architecture, LayerSpec};
use crate::store::*;

const LEASE: Duration = Duration::from_secs(30);

pub(crate) async fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(dir.path()).await.unwrap();
    store.migrate().await.unwrap();
    (dir, store)
}

pub(crate) fn new_job(max_attempts: i64) -> NewJobRecord {
    NewJobRecord {
        id: Uuid::now_v7(),
        kind: "train".into(),
        model_id: Uuid::now_v7(),
        dataset_id: Uuid::now_v7(),
        eval_dataset_id: None,
        params: json!({"epochs": 1}),
        max_attempts,
        idempotency_key: None,
        request_hash: None,
        models: Vec::new(),
    }
}

pub(crate) async fn queue(store: &Store, max_attempts: i64) -> JobRecord {
    match store.insert_job(new_job(max_attempts)).await.unwrap() {
        InsertJobOutcome::Created(j) => j,
        other => panic!("{other:?}"),
    }
}

fn architecture() -> Architecture {
    Architecture {
        input_dim: 2,
        input_shape: None,
        layers: vec![LayerSpec::Dense {
            units: 1,
            activation: Activation::Sigmoid,
            use_bias: true,
        }],
    }
}

pub(crate) fn new_model(job_id: Option<Uuid>) -> NewModelRecord {
    NewModelRecord {
        id: Uuid::now_v7(),
        name: "m".into(),
        architecture: architecture(),
        params: 3,
        nonzero_params: 3,
        size_bytes: 100,
        dtype: "f32".into(),
        sha256: "a".repeat(64),
        trained: false,
        parent_id: None,
        job_id,
        task: None,
        source: None,
    }
}

fn new_dataset() -> NewDatasetRecord {
    NewDatasetRecord {
        id: Uuid::now_v7(),
        name: "d".into(),
        format: "csv".into(),
        task: "binary".into(),
        rows: 10,
        features: 2,
        classes: 2,
        label_column: Some("y".into()),
        sha256: "b".repeat(64),
        size_bytes: 120,
        data_sha256: "c".repeat(64),
        feature_names: Some(vec!["a".into(), "b".into()]),
        input_shape: None,
    }
}

#[tokio::test]
async fn migrations_are_idempotent_and_ping_counts_queued_jobs() {
    let (_dir, store) = open().await;
    store.migrate().await.unwrap();
    assert_eq!(store.ping().await.unwrap(), 0);
    queue(&store, 3).await;
    assert_eq!(store.ping().await.unwrap(), 1);
}

#[tokio::test]
async fn ping_fails_before_migrations_ran() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(dir.path()).await.unwrap();
    assert!(matches!(
        store.ping().await,
        Err(StoreError::NotMigrated { .. })
    ));
}

#[tokio::test]
async fn the_claim_is_exclusive_under_eight_concurrent_claimers() {
    let (_dir, store) = open().await;
    let mut ids = HashSet::new();
    for _ in 0..200 {
        ids.insert(queue(&store, 3).await.id);
    }
    let mut claimers = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        claimers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            while let Some(job) = store.claim_next(LEASE).await.unwrap() {
                assert_eq!(job.status, JobStatus::Running);
                assert_eq!(job.attempts, 1);
                mine.push(job.id);
            }
            mine
        }));
    }
    let mut claimed = Vec::new();
    for c in claimers {
        claimed.extend(c.await.unwrap());
    }
    assert_eq!(claimed.len(), 200, "every job claimed exactly once");
    assert_eq!(claimed.iter().copied().collect::<HashSet<_>>(), ids);
}

#[tokio::test]
async fn jobs_are_claimed_oldest_first() {
    let (_dir, store) = open().await;
    let a = queue(&store, 3).await;
    let b = queue(&store, 3).await;
    assert_eq!(store.claim_next(LEASE).await.unwrap().unwrap().id, a.id);
    assert_eq!(store.claim_next(LEASE).await.unwrap().unwrap().id, b.id);
    assert!(store.claim_next(LEASE).await.unwrap().is_none());
}

#[tokio::test]
async fn a_fenced_write_with_a_stale_attempt_is_refused() {
    let (_dir, store) = open().await;
    let job = queue(&store, 3).await;
    let first = store.claim_next(LEASE).await.unwrap().unwrap();
    // The lease expires; another worker claims attempt 2.
    assert_eq!(
        store
            .requeue_expired(now_ms() + 60_000)
            .await
            .unwrap()
            .len(),
        1
    );
    let second = store.claim_next(LEASE).await.unwrap().unwrap();
    assert_eq!((second.id, second.attempts), (job.id, 2));

    let stale = first.attempts;
    assert!(
        !store
            .heartbeat(job.id, stale, LEASE)
            .await
            .unwrap()
            .lease_kept
    );
    assert!(!store.set_progress(job.id, stale, 0.5).await.unwrap());
    assert!(matches!(
        store.fail(job.id, stale, "late").await,
        Err(StoreError::LeaseLost { .. })
    ));
    let done = CompletedJob {
        result: json!({}),
        model: Some(new_model(Some(job.id))),
        artifacts: vec![],
    };
    assert!(matches!(
        store.complete(job.id, stale, done.clone()).await,
        Err(StoreError::LeaseLost { .. })
    ));
    // Nothing of the refused completion was written.
    assert!(store.list_models(10, None).await.unwrap().is_empty());
    let now = store.get_job(job.id).await.unwrap().unwrap();
    assert_eq!(
        (now.status.as_str(), now.attempts, now.error),
        ("running", 2, None)
    );

    // The current attempt still can.
    assert!(store.heartbeat(job.id, 2, LEASE).await.unwrap().lease_kept);
    let (job, model, _) = store.complete(job.id, 2, done).await.unwrap();
    assert_eq!(job.status, JobStatus::Succeeded);
    assert_eq!(job.progress, 1.0);
    assert_eq!(model.unwrap().job_id, Some(job.id));
}

#[tokio::test]
async fn an_expired_lease_is_claimed_again_and_then_failed_after_max_attempts() {
    let (_dir, store) = open().await;
    let job = queue(&store, 2).await;
    let later = || now_ms() + 60_000;
    store.claim_next(LEASE).await.unwrap().unwrap();
    // A lease still in force is left alone.
    assert!(store.requeue_expired(now_ms()).await.unwrap().is_empty());
    let requeued = store.requeue_expired(later()).await.unwrap();
    assert_eq!(requeued[0].status, JobStatus::Queued);
    let again = store.claim_next(LEASE).await.unwrap().unwrap();
    assert_eq!((again.id, again.attempts), (job.id, 2));
    let failed = store.requeue_expired(later()).await.unwrap();
    assert_eq!(failed[0].status, JobStatus::Failed);
    assert_eq!(failed[0].error.as_deref(), Some("worker lost 2 times"));
    assert!(failed[0].finished_at.is_some());
    assert!(store.claim_next(LEASE).await.unwrap().is_none());
}

#[tokio::test]
async fn jobs_left_running_by_a_dead_process_are_requeued_at_start() {
    let (_dir, store) = open().await;
    let a = queue(&store, 3).await;
    let b = queue(&store, 1).await;
    store.claim_next(LEASE).await.unwrap();
    store.claim_next(LEASE).await.unwrap();
    let changed = store.requeue_running_at_start().await.unwrap();
    let status = |id| changed.iter().find(|j| j.id == id).unwrap().status;
    assert_eq!(status(a.id), JobStatus::Queued);
    assert_eq!(status(b.id), JobStatus::Failed);
}

#[tokio::test]
async fn a_released_job_goes_back_to_the_queue_without_spending_an_attempt() {
    let (_dir, store) = open().await;
    let job = queue(&store, 1).await;
    let claimed = store.claim_next(LEASE).await.unwrap().unwrap();
    let released = store.release(job.id, claimed.attempts).await.unwrap();
    assert_eq!((released.status.as_str(), released.attempts), ("queued", 0));
    let again = store.claim_next(LEASE).await.unwrap().unwrap();
    assert_eq!(again.attempts, 1);
}

#[tokio::test]
async fn the_same_idempotency_key_returns_the_same_job() {
    let (_dir, store) = open().await;
    let mut new = new_job(3);
    new.idempotency_key = Some("key-1".into());
    new.request_hash = Some("hash-a".into());
    let InsertJobOutcome::Created(first) = store.insert_job(new.clone()).await.unwrap() else {
        panic!("created");
    };
    let mut replay = new.clone();
    replay.id = Uuid::now_v7();
    let InsertJobOutcome::Existing(same) = store.insert_job(replay.clone()).await.unwrap() else {
        panic!("existing");
    };
    assert_eq!(same.id, first.id);
    replay.request_hash = Some("hash-b".into());
    assert!(matches!(
        store.insert_job(replay).await.unwrap(),
        InsertJobOutcome::KeyConflict
    ));
    assert_eq!(
        store.list_jobs(None, None, 10, None).await.unwrap().len(),
        1
    );
}

#[tokio::test]
async fn cancelling_a_queued_a_running_and_a_finished_job() {
    let (_dir, store) = open().await;
    let running = queue(&store, 3).await;
    store.claim_next(LEASE).await.unwrap().unwrap();
    let queued = queue(&store, 3).await;

    let CancelOutcome::Cancelled(j) = store.request_cancel(queued.id).await.unwrap() else {
        panic!("a queued job is cancelled at once");
    };
    assert_eq!(j.status, JobStatus::Cancelled);
    assert!(j.finished_at.is_some());

    let CancelOutcome::Requested(j) = store.request_cancel(running.id).await.unwrap() else {
        panic!("a running job is asked to stop");
    };
    assert_eq!(j.status, JobStatus::Running);
    assert!(j.cancel_requested);
    assert!(
        store
            .heartbeat(running.id, 1, LEASE)
            .await
            .unwrap()
            .cancel_requested
    );
    store.mark_cancelled(running.id, 1).await.unwrap();

    assert!(matches!(
        store.request_cancel(running.id).await.unwrap(),
        CancelOutcome::AlreadyFinished(_)
    ));
    assert!(matches!(
        store.request_cancel(Uuid::now_v7()).await.unwrap(),
        CancelOutcome::NotFound
    ));
}

#[tokio::test]
async fn pages_by_cursor_come_newest_first_without_overlap() {
    let (_dir, store) = open().await;
    let mut ids = Vec::new();
    for _ in 0..7 {
        ids.push(queue(&store, 3).await.id);
    }
    ids.reverse();
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.list_jobs(None, None, 3, cursor).await.unwrap();
        if page.is_empty() {
            break;
        }
        cursor = page.last().map(|j| j.id);
        seen.extend(page.into_iter().map(|j| j.id));
    }
    assert_eq!(seen, ids);

    store.claim_next(LEASE).await.unwrap();
    let running = store
        .list_jobs(Some(JobStatus::Running), Some("train"), 10, None)
        .await
        .unwrap();
    assert_eq!(running.len(), 1);
    assert!(
        store
            .list_jobs(None, Some("evaluate"), 10, None)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn datasets_and_models_round_trip_and_answer_whether_they_are_in_use() {
    let (_dir, store) = open().await;
    let d = store.insert_dataset(new_dataset()).await.unwrap();
    assert_eq!(
        store
            .get_dataset(d.id)
            .await
            .unwrap()
            .unwrap()
            .feature_names
            .unwrap(),
        ["a", "b"]
    );
    assert_eq!(d.input_shape, None);
    let images = NewDatasetRecord {
        input_shape: Some(vec![2, 1, 1]),
        ..new_dataset()
    };
    let images = store.insert_dataset(images).await.unwrap();
    let back = store.get_dataset(images.id).await.unwrap().unwrap();
    assert_eq!(back.input_shape, Some(vec![2, 1, 1]));
    let m = store.insert_model(new_model(None)).await.unwrap();
    assert_eq!(
        store.get_model(m.id).await.unwrap().unwrap().architecture,
        architecture()
    );
    assert!(store.blob_referenced(&"c".repeat(64)).await.unwrap());
    assert!(!store.blob_referenced(&"d".repeat(64)).await.unwrap());
    let all = store.referenced_blobs().await.unwrap();
    let want: HashSet<String> = ["a", "b", "c"].iter().map(|c| c.repeat(64)).collect();
    assert_eq!(all, want);

    let mut new = new_job(3);
    new.model_id = m.id;
    new.eval_dataset_id = Some(d.id);
    let InsertJobOutcome::Created(job) = store.insert_job(new).await.unwrap() else {
        panic!()
    };
    assert!(store.dataset_in_use(d.id).await.unwrap());
    assert!(store.model_in_use(m.id).await.unwrap());
    store.request_cancel(job.id).await.unwrap();
    assert!(!store.dataset_in_use(d.id).await.unwrap());
    assert!(!store.model_in_use(m.id).await.unwrap());

    // A distill job's stored student is in use too.
    let student = Uuid::now_v7();
    let mut distill = new_job(3);
    distill.kind = "distill".into();
    distill.params = json!({"student": {"model": student, "architecture": {}}});
    distill.models = referenced_models(JobKind::Distill, distill.model_id, &distill.params);
    let InsertJobOutcome::Created(job) = store.insert_job(distill).await.unwrap() else {
        panic!()
    };
    assert!(store.model_in_use(student).await.unwrap());
    assert!(!store.model_in_use(Uuid::now_v7()).await.unwrap());
    store.request_cancel(job.id).await.unwrap();
    assert!(!store.model_in_use(student).await.unwrap());

    assert!(store.delete_dataset(d.id).await.unwrap());
    assert!(store.get_dataset(d.id).await.unwrap().is_none());
    assert_eq!(store.list_models(10, None).await.unwrap().len(), 1);
    assert!(store.delete_model(m.id).await.unwrap());
    assert!(!store.delete_model(m.id).await.unwrap());
}

#[tokio::test]
async fn completion_registers_the_model_and_artifacts_in_one_go() {
    let (_dir, store) = open().await;
    let parent = store.insert_model(new_model(None)).await.unwrap();
    let job = queue(&store, 3).await;
    store.claim_next(LEASE).await.unwrap();
    let mut model = new_model(Some(job.id));
    model.parent_id = Some(parent.id);
    let artifact = NewArtifactRecord {
        id: Uuid::now_v7(),
        name: "model.safetensors".into(),
        content_type: "application/octet-stream".into(),
        sha256: "e".repeat(64),
        size_bytes: 100,
    };
    let (job, model, artifacts) = store
        .complete(
            job.id,
            1,
            CompletedJob {
                result: json!({"model_id": model.id}),
                model: Some(model),
                artifacts: vec![artifact],
            },
        )
        .await
        .unwrap();
    assert_eq!(
        job.result.unwrap()["model_id"],
        json!(model.as_ref().unwrap().id)
    );
    assert_eq!(model.unwrap().parent_id, Some(parent.id));
    assert_eq!(store.artifacts_for_job(job.id).await.unwrap().len(), 1);
    assert!(
        store
            .referenced_blobs()
            .await
            .unwrap()
            .contains(&"e".repeat(64))
    );
    assert_eq!(
        store
            .get_artifact(artifacts[0].id)
            .await
            .unwrap()
            .unwrap()
            .job_id,
        job.id
    );
}

#[tokio::test]
async fn a_retried_attempt_overwrites_the_metrics_of_the_same_step() {
    let (_dir, store) = open().await;
    let job = queue(&store, 3).await;
    store
        .record_metrics(job.id, 1, &[("loss".into(), 0.9), ("accuracy".into(), 0.5)])
        .await
        .unwrap();
    store
        .record_metrics(job.id, 1, &[("loss".into(), 0.7), ("bad".into(), f64::NAN)])
        .await
        .unwrap();
    store
        .record_metrics(job.id, 2, &[("loss".into(), 0.5)])
        .await
        .unwrap();
    let points: Vec<(i64, String, f64)> = store
        .job_metrics(job.id)
        .await
        .unwrap()
        .into_iter()
        .map(|p| (p.step, p.name, p.value))
        .collect();
    assert_eq!(
        points,
        [
            (1, "accuracy".to_string(), 0.5),
            (1, "loss".to_string(), 0.7),
            (2, "loss".to_string(), 0.5)
        ]
    );
}

#[tokio::test]
async fn the_claim_reads_queued_jobs_in_index_order_without_sorting() {
    let (_dir, store) = open().await;
    let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(
        "EXPLAIN QUERY PLAN SELECT id FROM jobs WHERE status = 'queued' ORDER BY id LIMIT 1",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    let plan: Vec<String> = plan.into_iter().map(|row| row.3).collect();
    assert!(
        plan.iter().any(|d| d.contains("jobs_status_id")),
        "{plan:?}"
    );
    assert!(!plan.iter().any(|d| d.contains("TEMP B-TREE")), "{plan:?}");
}

#[tokio::test]
async fn upgrading_backfills_job_models_so_queued_jobs_keep_their_models_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(dir.path()).await.unwrap();
    // The schema as it was before `job_models`, with a distill job already queued.
    let job_models = MIGRATOR
        .iter()
        .find(|m| m.description == "job models")
        .map(|m| m.version)
        .unwrap();
    let before = MIGRATOR
        .iter()
        .map(|m| m.version)
        .filter(|&v| v < job_models)
        .max()
        .unwrap();
    MIGRATOR.run_to(before, store.pool()).await.unwrap();
    let (job, teacher, student) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let params = json!({"student": {"model": student, "architecture": {}}});
    sqlx::query(
        "INSERT INTO jobs (id, kind, status, model_id, dataset_id, params, max_attempts, created_at)
         VALUES (?, 'distill', 'queued', ?, ?, ?, 3, 0)",
    )
    .bind(job)
    .bind(teacher)
    .bind(Uuid::now_v7())
    .bind(params.to_string())
    .execute(store.pool())
    .await
    .unwrap();

    store.migrate().await.unwrap();
    assert!(store.model_in_use(teacher).await.unwrap());
    assert!(store.model_in_use(student).await.unwrap());
    assert_eq!(
        store.job_models(job).await.unwrap(),
        vec![(ModelRole::Input, teacher), (ModelRole::Student, student)]
    );
}
