//! A job interrupted by stopping the server — killed outright, or stopped
//! gracefully — finishes after a restart, exactly once.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{classification_csv, mlp};

struct Server {
    child: Child,
    address: String,
}

/// Starts the real binary and waits for the line that names its address.
fn start(data_dir: &Path) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["serve", "--listen", "127.0.0.1:0", "--workers", "1"])
        .arg("--data-dir")
        .arg(data_dir)
        .env("KILN_QUEUE__HEARTBEAT_SECS", "1")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kiln starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("a ready line");
    let address = line
        .trim()
        .strip_prefix("kiln listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line}"))
        .to_string();
    Server { child, address }
}

async fn get_json(client: &reqwest::Client, server: &Server, path: &str) -> Value {
    client
        .get(format!("{}{path}", server.address))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json")
}

async fn interrupted_job_finishes_once_after_restart(graceful: bool) {
    let dir = tempfile::tempdir().expect("temp dir");
    let client = reqwest::Client::new();
    let server = start(dir.path());
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(classification_csv(2_000, 16, 9)).file_name("d.csv"),
    );
    let dataset: Value = client
        .post(format!("{}/v1/datasets", server.address))
        .multipart(form)
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    let model: Value = client
        .post(format!("{}/v1/models", server.address))
        .json(&json!({"name": "m", "architecture": mlp(16, 32, 1, "sigmoid")}))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    let epochs = 150;
    let created: Value = client
        .post(format!("{}/v1/jobs", server.address))
        .json(
            &json!({"kind": "train", "model": model["id"], "dataset": dataset["id"],
                      "params": {"epochs": epochs, "batch_size": 8}}),
        )
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    let id = created["id"].as_str().expect("id").to_string();

    let mut started = false;
    for _ in 0..3_000 {
        let j = get_json(&client, &server, &format!("/v1/jobs/{id}")).await;
        if j["status"] == "running" && j["progress"].as_f64().unwrap_or(0.0) > 0.0 {
            started = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(started, "the job never ran");

    let mut server = server;
    if graceful {
        let status = Command::new("kill")
            .args(["-TERM", &server.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    } else {
        server.child.kill().expect("SIGKILL");
    }
    server.child.wait().expect("stopped");

    let server = start(dir.path());
    let mut done = Value::Null;
    for _ in 0..12_000 {
        done = get_json(&client, &server, &format!("/v1/jobs/{id}")).await;
        if !matches!(done["status"].as_str(), Some("queued" | "running")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(done["status"], "succeeded", "{done}");
    let expected_attempts = if graceful { 1 } else { 2 };
    assert_eq!(done["attempts"], expected_attempts, "{done}");

    // Exactly one model came out of the job, and one history row per epoch.
    let models = get_json(&client, &server, "/v1/models?limit=200").await;
    let produced: Vec<_> = models["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|m| m["job_id"] == id.as_str())
        .collect();
    assert_eq!(produced.len(), 1, "{models}");
    assert_eq!(done["result"]["model_id"], produced[0]["id"]);
    let history = get_json(&client, &server, &format!("/v1/jobs/{id}/metrics")).await;
    assert_eq!(history["history"].as_array().map(Vec::len), Some(epochs));

    let mut server = server;
    server.child.kill().expect("stop");
    server.child.wait().expect("stopped");
}

#[tokio::test]
async fn a_job_interrupted_by_killing_the_server_finishes_once_after_a_restart() {
    interrupted_job_finishes_once_after_restart(false).await;
}

#[tokio::test]
async fn a_job_interrupted_by_a_graceful_stop_finishes_once_after_a_restart() {
    interrupted_job_finishes_once_after_restart(true).await;
}
