//! The pool against a real SQLite store, with injected job runners.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::*;
use crate::blobs::BlobBackend;
use crate::jobs::{JobContext, JobError, JobKind, JobOutput, ProducedArtifact, ProducedModel};
use crate::nn::spec::{Activation, Architecture, LayerSpec};
use crate::store::{Catalog, InsertJobOutcome, JobRecord, JobStatus, NewJobRecord};

type RunFn = dyn Fn(&JobRecord, &dyn JobContext) -> Result<JobOutput, JobError> + Send + Sync;

/// Hands the job record itself to a test function.
struct TestExecutor(Arc<RunFn>);

impl JobExecutor for TestExecutor {
    type Inputs = JobRecord;

    async fn load(
        &self,
        _store: &Store,
        _blobs: &BlobStore,
        job: &JobRecord,
    ) -> Result<JobRecord, JobError> {
        Ok(job.clone())
    }

    fn run(
        &self,
        _kind: JobKind,
        job: JobRecord,
        ctx: &dyn JobContext,
    ) -> Result<JobOutput, JobError> {
        (self.0)(&job, ctx)
    }
}

/// Behaviour chosen by the job's `params.do`.
fn behaviour(job: &JobRecord, ctx: &dyn JobContext) -> Result<JobOutput, JobError> {
    match job.params["do"].as_str().unwrap_or("ok") {
        "panic" => panic!("boom in the job"),
        "fail" => Err(JobError::Failed("diverged".into())),
        "invalid" => Err(crate::validation::Invalid::one("params.epochs", "too many").into()),
        "wait_cancel" => {
            ctx.set_progress(0.25);
            while !ctx.is_cancelled() {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(JobError::Cancelled)
        }
        _ => {
            for epoch in 1..=3u32 {
                ctx.record_metrics(
                    epoch,
                    &[("loss", 1.0 / f64::from(epoch)), ("accuracy", 0.5)],
                );
                ctx.set_progress(f64::from(epoch) / 3.0);
            }
            let mut metrics = Map::new();
            metrics.insert("accuracy".into(), json!(0.9));
            Ok(JobOutput {
                model: Some(ProducedModel {
                    name: "trained".into(),
                    architecture: architecture(),
                    file: b"model bytes".to_vec(),
                    params: 3,
                    nonzero_params: 2,
                    dtype: "f32".into(),
                    task: Some(crate::nn::data::Task::Binary),
                    source: None,
                }),
                metrics,
                before: Some(Map::new()),
                artifacts: vec![ProducedArtifact {
                    name: "report.json".into(),
                    content_type: "application/json".into(),
                    bytes: b"{}".to_vec(),
                }],
                sections: [
                    ("baseline", json!({"accuracy": 0.8})),
                    ("metrics", json!("ignored")),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            })
        }
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

fn config(workers: usize) -> QueueConfig {
    QueueConfig {
        workers,
        lease: Duration::from_secs(5),
        heartbeat: Duration::from_millis(50),
        poll: Duration::from_millis(50),
        max_attempts: 3,
        job_wall_time: Duration::from_secs(60),
        shutdown_grace: Duration::from_secs(5),
    }
}

struct Env {
    _dir: tempfile::TempDir,
    store: Store,
    blobs: BlobStore,
    model_id: Uuid,
}

async fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(dir.path()).await.unwrap();
    store.migrate().await.unwrap();
    let blobs = BlobStore::new(dir.path()).unwrap();
    let model = store
        .insert_model(crate::store::NewModelRecord {
            id: Uuid::now_v7(),
            name: "base".into(),
            architecture: architecture(),
            params: 3,
            nonzero_params: 3,
            size_bytes: 10,
            dtype: "f32".into(),
            sha256: "a".repeat(64),
            trained: false,
            parent_id: None,
            job_id: None,
            task: None,
            source: None,
        })
        .await
        .unwrap();
    Env {
        _dir: dir,
        store,
        blobs,
        model_id: model.id,
    }
}

impl Env {
    async fn start(
        &self,
        workers: usize,
        config_change: impl FnOnce(&mut QueueConfig),
    ) -> QueueHandle {
        let mut c = config(workers);
        config_change(&mut c);
        Queue::start_with(
            self.store.clone(),
            self.blobs.clone(),
            c,
            TestExecutor(Arc::new(behaviour)),
        )
        .await
        .unwrap()
    }

    async fn queue(&self, what: &str) -> Uuid {
        let new = NewJobRecord {
            id: Uuid::now_v7(),
            kind: "train".into(),
            model_id: self.model_id,
            dataset_id: Uuid::now_v7(),
            eval_dataset_id: None,
            params: json!({"do": what}),
            max_attempts: 3,
            idempotency_key: None,
            request_hash: None,
            models: Vec::new(),
        };
        match self.store.insert_job(new).await.unwrap() {
            InsertJobOutcome::Created(j) => j.id,
            other => panic!("{other:?}"),
        }
    }

    async fn wait_for(&self, id: Uuid, done: impl Fn(&JobRecord) -> bool) -> JobRecord {
        for _ in 0..400 {
            let job = self.store.get_job(id).await.unwrap().unwrap();
            if done(&job) {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("job {id} did not reach the expected state");
    }

    async fn finished(&self, id: Uuid) -> JobRecord {
        self.wait_for(id, |j| j.status.is_finished()).await
    }
}

#[tokio::test]
async fn a_job_that_panics_is_failed_and_the_next_job_still_runs() {
    let env = env().await;
    let panics = env.queue("panic").await;
    let fine = env.queue("ok").await;
    let q = env.start(1, |_| {}).await;
    q.notify();
    let failed = env.finished(panics).await;
    assert_eq!(failed.status, JobStatus::Failed);
    assert!(
        failed.error.as_deref().unwrap().contains("boom in the job"),
        "{failed:?}"
    );
    assert_eq!(env.finished(fine).await.status, JobStatus::Succeeded);
    q.shutdown().await;
}

#[tokio::test]
async fn a_successful_job_registers_its_model_artifacts_metrics_and_result() {
    let env = env().await;
    let q = env.start(2, |_| {}).await;
    let id = env.queue("ok").await;
    q.notify();
    let job = env.finished(id).await;
    assert_eq!(job.status, JobStatus::Succeeded);
    assert_eq!(job.progress, 1.0);
    let result = job.result.unwrap();
    let model_id: Uuid = serde_json::from_value(result["model_id"].clone()).unwrap();
    let model = env.store.get_model(model_id).await.unwrap().unwrap();
    assert_eq!(model.parent_id, Some(env.model_id));
    assert_eq!(model.job_id, Some(id));
    assert_eq!(
        (model.params, model.nonzero_params, model.trained),
        (3, 2, true)
    );
    assert_eq!(env.blobs.read(&model.sha256).await.unwrap(), b"model bytes");
    assert_eq!(result["metrics"]["accuracy"], json!(0.9));
    assert_eq!(result["before"], json!({}));
    // Extra sections sit beside the fixed ones and never replace them.
    assert_eq!(result["baseline"], json!({"accuracy": 0.8}));
    let names: Vec<Value> = result["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].clone())
        .collect();
    assert_eq!(names, [json!("model.safetensors"), json!("report.json")]);
    let artifacts = env.store.artifacts_for_job(id).await.unwrap();
    assert_eq!(artifacts.len(), 2);
    assert_eq!(artifacts[1].content_type, "application/json");
    // Every metric row, including the last epoch's, was written before completion.
    assert_eq!(env.store.job_metrics(id).await.unwrap().len(), 6);
    q.shutdown().await;
}

#[tokio::test]
async fn failed_and_invalid_jobs_are_failed_with_their_message() {
    let env = env().await;
    let q = env.start(2, |_| {}).await;
    let failed = env.queue("fail").await;
    let invalid = env.queue("invalid").await;
    q.notify();
    assert_eq!(
        env.finished(failed).await.error.as_deref(),
        Some("diverged")
    );
    let job = env.finished(invalid).await;
    assert_eq!(job.status, JobStatus::Failed);
    assert!(job.error.unwrap().contains("params.epochs"));
    q.shutdown().await;
}

#[tokio::test]
async fn a_running_job_is_cancelled_when_asked() {
    let env = env().await;
    let q = env.start(1, |_| {}).await;
    let id = env.queue("wait_cancel").await;
    q.notify();
    env.wait_for(id, |j| j.status == JobStatus::Running && j.progress > 0.0)
        .await;
    assert_eq!(q.busy_workers(), 1);
    env.store.request_cancel(id).await.unwrap();
    let job = env.finished(id).await;
    assert_eq!(job.status, JobStatus::Cancelled);
    q.shutdown().await;
}

#[tokio::test]
async fn a_job_over_its_wall_time_is_failed() {
    let env = env().await;
    let q = env
        .start(1, |c| c.job_wall_time = Duration::from_millis(100))
        .await;
    let id = env.queue("wait_cancel").await;
    q.notify();
    let job = env.finished(id).await;
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.error.as_deref(), Some("exceeded job wall time"));
    q.shutdown().await;
}

#[tokio::test]
async fn a_job_interrupted_by_shutdown_runs_again_after_a_restart_without_spending_an_attempt() {
    let env = env().await;
    let q = env.start(1, |_| {}).await;
    let id = env.queue("wait_cancel").await;
    q.notify();
    env.wait_for(id, |j| j.status == JobStatus::Running).await;
    q.shutdown().await;
    let job = env.store.get_job(id).await.unwrap().unwrap();
    assert_eq!((job.status, job.attempts), (JobStatus::Queued, 0));

    // The next process runs it to completion (as an "ok" job this time).
    sqlx::query("UPDATE jobs SET params = '{\"do\":\"ok\"}' WHERE id = ?")
        .bind(id)
        .execute(env.store.pool())
        .await
        .unwrap();
    let q = env.start(1, |_| {}).await;
    let job = env.finished(id).await;
    assert_eq!((job.status, job.attempts), (JobStatus::Succeeded, 1));
    q.shutdown().await;
}

#[tokio::test]
async fn a_job_left_running_by_a_crashed_process_is_requeued_at_start() {
    let env = env().await;
    let id = env.queue("ok").await;
    env.store
        .claim_next(Duration::from_secs(3600))
        .await
        .unwrap()
        .unwrap();
    let q = env.start(1, |_| {}).await;
    let job = env.finished(id).await;
    assert_eq!((job.status, job.attempts), (JobStatus::Succeeded, 2));
    q.shutdown().await;
}

#[tokio::test]
async fn the_production_executor_loads_the_model_and_dataset_blobs_and_runs_an_evaluate_job() {
    use crate::formats::{dataset_file, model_file};
    use crate::nn::data::{Dataset, Task};

    let env = env().await;
    let file = model_file::ModelFile::untrained(&architecture(), 7);
    let model_blob = env
        .blobs
        .put_bytes(&model_file::encode(&file).unwrap())
        .await
        .unwrap();
    let model = env
        .store
        .insert_model(crate::store::NewModelRecord {
            id: Uuid::now_v7(),
            name: "untrained".into(),
            architecture: architecture(),
            params: 3,
            nonzero_params: 3,
            size_bytes: model_blob.size_bytes as i64,
            dtype: "f32".into(),
            sha256: model_blob.sha256,
            trained: false,
            parent_id: None,
            job_id: None,
            task: None,
            source: None,
        })
        .await
        .unwrap();
    let data = Dataset {
        x: ndarray::array![[0.0f32, 1.0], [1.0, 0.0], [0.5, 0.5], [1.0, 1.0]],
        y: ndarray::array![0.0f32, 1.0, 0.0, 1.0],
        task: Task::Binary,
        classes: 2,
        input_shape: None,
    };
    let data_blob = env
        .blobs
        .put_bytes(&dataset_file::write_npz(&data).unwrap())
        .await
        .unwrap();
    let dataset = env
        .store
        .insert_dataset(crate::store::NewDatasetRecord {
            id: Uuid::now_v7(),
            name: "d".into(),
            format: "csv".into(),
            task: "binary".into(),
            rows: 4,
            features: 2,
            classes: 2,
            label_column: None,
            sha256: data_blob.sha256.clone(),
            size_bytes: 10,
            data_sha256: data_blob.sha256,
            feature_names: None,
            input_shape: None,
        })
        .await
        .unwrap();
    let InsertJobOutcome::Created(job) = env
        .store
        .insert_job(NewJobRecord {
            id: Uuid::now_v7(),
            kind: "evaluate".into(),
            model_id: model.id,
            dataset_id: dataset.id,
            eval_dataset_id: None,
            params: json!({}),
            max_attempts: 3,
            idempotency_key: None,
            request_hash: None,
            models: Vec::new(),
        })
        .await
        .unwrap()
    else {
        panic!("created")
    };
    let q = Queue::start_with(
        env.store.clone(),
        env.blobs.clone(),
        config(1),
        KilnExecutor,
    )
    .await
    .unwrap();
    let done = env.finished(job.id).await;
    assert_eq!(done.status, JobStatus::Succeeded, "{:?}", done.error);
    let result = done.result.unwrap();
    assert!(result["metrics"]["accuracy"].is_number(), "{result}");
    q.shutdown().await;
}
