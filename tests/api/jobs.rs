//! The queue seen through HTTP: cancellation, conflicts, and a server that
//! answers while every worker computes.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{TestApp, classification_csv, mlp, spawn_app_with};

/// A train job long enough to be caught running (thousands of batches).
async fn long_job(app: &TestApp, dataset: &Value, model: &Value) -> Value {
    app.create_job(&json!({
        "kind": "train", "model": model["id"], "dataset": dataset["id"],
        "params": {"epochs": 1000, "batch_size": 8}}))
        .await
}

async fn wait_until_running(app: &TestApp, id: &str) {
    for _ in 0..2_000 {
        let job: Value = app
            .get(&format!("/v1/jobs/{id}"))
            .await
            .json()
            .await
            .expect("json");
        if job["status"] == "running" && job["progress"].as_f64().unwrap_or(0.0) > 0.0 {
            return;
        }
        assert!(
            job["status"] == "queued" || job["status"] == "running",
            "{job}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("job {id} never started");
}

#[tokio::test]
async fn cancelling_stops_queued_and_running_jobs_and_finished_ones_conflict() {
    let app = spawn_app_with(|s| s.workers = 1).await;
    let dataset = app
        .create_dataset("d.csv", classification_csv(2_000, 16, 5), &[])
        .await;
    let model = app.create_model(mlp(16, 32, 1, "sigmoid")).await;

    let running = long_job(&app, &dataset, &model).await;
    let running_id = running["id"].as_str().expect("id");
    wait_until_running(&app, running_id).await;
    // One worker is busy, so this one waits in the queue.
    let queued = long_job(&app, &dataset, &model).await;
    let queued_id = queued["id"].as_str().expect("id");

    let res = app
        .post_json(&format!("/v1/jobs/{queued_id}/cancel"), &json!({}))
        .await;
    assert_eq!(res.status(), 202);
    let body: Value = res.json().await.expect("json");
    assert_eq!(
        body["status"], "cancelled",
        "a queued job is cancelled at once"
    );

    // The dataset is in use by the running job.
    let res = app
        .delete(&format!(
            "/v1/datasets/{}",
            dataset["id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(res.status(), 409);

    let res = app
        .post_json(&format!("/v1/jobs/{running_id}/cancel"), &json!({}))
        .await;
    assert_eq!(res.status(), 202);
    let done = app.wait_for_job(running_id, Duration::from_secs(30)).await;
    assert_eq!(done["status"], "cancelled", "{done}");
    assert!(done["result"].is_null());

    let res = app
        .post_json(&format!("/v1/jobs/{running_id}/cancel"), &json!({}))
        .await;
    assert_eq!(res.status(), 409);

    let filtered: Value = app
        .get("/v1/jobs?status=cancelled&kind=train")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(filtered["items"].as_array().map(Vec::len), Some(2));
    let none: Value = app
        .get("/v1/jobs?status=succeeded")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(none["items"].as_array().map(Vec::len), Some(0));

    // Nothing uses the dataset now.
    let res = app
        .delete(&format!(
            "/v1/datasets/{}",
            dataset["id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(res.status(), 204);
}

#[tokio::test]
async fn the_api_answers_while_every_worker_is_busy() {
    let app = spawn_app_with(|s| s.workers = 2).await;
    let dataset = app
        .create_dataset("d.csv", classification_csv(2_000, 16, 5), &[])
        .await;
    let model = app.create_model(mlp(16, 32, 1, "sigmoid")).await;
    let a = long_job(&app, &dataset, &model).await;
    let b = long_job(&app, &dataset, &model).await;
    wait_until_running(&app, a["id"].as_str().expect("id")).await;
    wait_until_running(&app, b["id"].as_str().expect("id")).await;
    for path in ["/healthz", "/readyz", "/v1/jobs"] {
        let res = tokio::time::timeout(Duration::from_secs(5), app.get(path))
            .await
            .expect("answered while workers compute");
        assert_eq!(res.status(), 200);
    }
    for job in [a, b] {
        let id = job["id"].as_str().expect("id");
        app.post_json(&format!("/v1/jobs/{id}/cancel"), &json!({}))
            .await;
        let done = app.wait_for_job(id, Duration::from_secs(30)).await;
        assert_eq!(done["status"], "cancelled");
    }
}
