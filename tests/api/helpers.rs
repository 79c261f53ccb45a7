//! `spawn_app()`: a real server on an ephemeral port with a temporary data directory.

use std::time::{Duration, Instant};

use kiln::config::Settings;
use kiln::datagen::{ClassificationSpec, make_classification, write_csv};
use kiln::startup::Application;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use tempfile::TempDir;

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub data_dir: TempDir,
    /// Dropping the sender stops the server, so the app lives as long as this value.
    _shutdown: tokio::sync::oneshot::Sender<()>,
    _server: tokio::task::JoinHandle<()>,
}

/// Settings for a test server: port 0, a fresh data directory, small limits where tests probe them.
pub fn test_settings(data_dir: &std::path::Path) -> Settings {
    let mut s = Settings::defaults().expect("defaults parse");
    s.listen = "127.0.0.1:0".into();
    s.data_dir = data_dir.to_path_buf();
    s.workers = 2;
    s.limits.max_upload_bytes = 4 * 1024 * 1024;
    s.limits.max_epochs = 1000;
    s.queue.poll_secs = 1;
    s.queue.heartbeat_secs = 1;
    s.queue.lease_secs = 5;
    s
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    let data_dir = tempfile::tempdir().expect("temp dir");
    let mut settings = test_settings(data_dir.path());
    configure(&mut settings);
    let app = Application::build(settings).await.expect("app builds");
    let address = format!("http://{}", app.local_addr());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        app.run_until(async {
            let _ = rx.await;
        })
        .await
        .expect("server runs");
    });
    TestApp {
        address,
        client: reqwest::Client::new(),
        data_dir,
        _shutdown: tx,
        _server: server,
    }
}

/// A binary classification CSV made by kiln's own generator. The problem is
/// fixed; `seed` draws the rows, so another seed is a held-out sample of it.
pub fn classification_csv(rows: usize, features: usize, seed: u64) -> Vec<u8> {
    classes_csv(rows, features, 2, seed)
}

/// [`classification_csv`] with `classes` classes.
pub fn classes_csv(rows: usize, features: usize, classes: usize, seed: u64) -> Vec<u8> {
    let spec = ClassificationSpec {
        rows,
        features,
        informative: features.min(4),
        classes,
        class_sep: 1.5,
        flip_y: 0.0,
        seed,
    };
    let ds = make_classification(&spec).expect("valid spec");
    let mut out = Vec::new();
    write_csv(&ds, &mut out).expect("csv writes");
    out
}

pub fn mlp(input_dim: usize, hidden: usize, outputs: usize, out_act: &str) -> Value {
    json!({"input_dim": input_dim, "layers": [
        {"type": "dense", "units": hidden, "activation": "relu"},
        {"type": "dense", "units": outputs, "activation": out_act}]})
}

impl TestApp {
    /// Stops the server (waiting for it to finish) and hands back its data directory.
    pub async fn stop(self) -> TempDir {
        drop(self._shutdown);
        self._server.await.expect("server stops cleanly");
        self.data_dir
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request sent")
    }

    pub async fn delete(&self, path: &str) -> reqwest::Response {
        self.client
            .delete(self.url(path))
            .send()
            .await
            .expect("request sent")
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn upload(
        &self,
        path: &str,
        filename: &str,
        bytes: Vec<u8>,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut form = Form::new().part("file", Part::bytes(bytes).file_name(filename.to_string()));
        for (k, v) in fields {
            form = form.text(k.to_string(), v.to_string());
        }
        self.client
            .post(self.url(path))
            .multipart(form)
            .send()
            .await
            .expect("request sent")
    }

    /// Uploads a dataset and returns its JSON, asserting 201.
    pub async fn create_dataset(
        &self,
        filename: &str,
        bytes: Vec<u8>,
        fields: &[(&str, &str)],
    ) -> Value {
        let res = self.upload("/v1/datasets", filename, bytes, fields).await;
        let status = res.status();
        let body: Value = res.json().await.expect("json body");
        assert_eq!(status, 201, "dataset upload failed: {body}");
        body
    }

    pub async fn create_model(&self, architecture: Value) -> Value {
        let res = self
            .post_json(
                "/v1/models",
                &json!({"name": "test", "architecture": architecture}),
            )
            .await;
        let status = res.status();
        let body: Value = res.json().await.expect("json body");
        assert_eq!(status, 201, "model creation failed: {body}");
        body
    }

    pub async fn create_job(&self, body: &Value) -> Value {
        let res = self.post_json("/v1/jobs", body).await;
        let status = res.status();
        let json: Value = res.json().await.expect("json body");
        assert_eq!(status, 202, "job creation failed: {json}");
        json
    }

    /// Polls a job until it leaves `queued`/`running`, failing the test after `timeout`.
    pub async fn wait_for_job(&self, id: &str, timeout: Duration) -> Value {
        let start = Instant::now();
        loop {
            let job: Value = self
                .get(&format!("/v1/jobs/{id}"))
                .await
                .json()
                .await
                .expect("json");
            let status = job["status"].as_str().unwrap_or_default().to_string();
            if !matches!(status.as_str(), "queued" | "running") {
                return job;
            }
            assert!(
                start.elapsed() < timeout,
                "job {id} still {status} after {timeout:?}: {job}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The `id` of a resource.
pub fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_string()
}

impl TestApp {
    /// Creates a job and waits until it has finished, whatever its outcome.
    pub async fn finish_job(&self, body: Value) -> Value {
        let job = self.create_job(&body).await;
        self.wait_for_job(&id(&job), Duration::from_secs(120)).await
    }

    /// [`Self::finish_job`] for a job that must succeed.
    pub async fn run_job(&self, body: Value) -> Value {
        let done = self.finish_job(body).await;
        assert_eq!(done["status"], "succeeded", "{done}");
        done
    }

    /// Train and test datasets of `features` columns (the first drawn with `seed`, the second
    /// with `seed + 1`) and `architecture` trained on them for 15 epochs: `(train, test, model)` ids.
    pub async fn trained_fixture(
        &self,
        rows: usize,
        features: usize,
        seed: u64,
        architecture: Value,
    ) -> (String, String, String) {
        let train = self
            .create_dataset("train.csv", classification_csv(rows, features, seed), &[])
            .await;
        let test = self
            .create_dataset("test.csv", classification_csv(400, features, seed + 1), &[])
            .await;
        let model = self.create_model(architecture).await;
        let done = self
            .run_job(
                json!({"kind": "train", "model": id(&model), "dataset": id(&train),
                "eval_dataset": id(&test),
                "params": {"epochs": 15, "optimizer": {"name": "adam", "lr": 0.01}, "seed": seed}}),
            )
            .await;
        let trained = done["result"]["model_id"]
            .as_str()
            .expect("model")
            .to_string();
        (id(&train), id(&test), trained)
    }

    /// `POST /v1/models/{model}/predict` → `outputs`.
    pub async fn predict(&self, model: &str, inputs: &Value) -> Value {
        let res = self
            .post_json(
                &format!("/v1/models/{model}/predict"),
                &json!({"inputs": inputs}),
            )
            .await;
        assert_eq!(res.status(), 200);
        res.json::<Value>().await.expect("json")["outputs"].clone()
    }

    /// Posts a job that must be refused with 422 naming `field`.
    pub async fn assert_job_rejected(&self, body: &Value, field: &str) {
        let res = self.post_json("/v1/jobs", body).await;
        let status = res.status().as_u16();
        let problem: Value = res.json().await.expect("json");
        assert_eq!(status, 422, "{body} → {problem}");
        let fields = problem_fields(&problem);
        assert!(
            fields.iter().any(|f| f == field),
            "{body}: expected {field} in {fields:?}"
        );
    }
}

/// The field names a problem document lists in `errors`.
pub fn problem_fields(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .map(|errs| {
            errs.iter()
                .filter_map(|e| e["field"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}
