//! The source document's workflow end to end: upload, create, train, evaluate,
//! download, upload the download again, and get identical predictions.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{classification_csv, mlp, spawn_app};

const JOB_TIMEOUT: Duration = Duration::from_secs(120);

#[tokio::test]
async fn train_evaluate_download_and_reupload_give_identical_predictions() {
    let app = spawn_app().await;
    let (train_csv, test_csv) = (
        classification_csv(1_000, 10, 11),
        classification_csv(400, 10, 12),
    );
    let train = app
        .create_dataset("train.csv", train_csv, &[("name", "train")])
        .await;
    assert_eq!(train["rows"], 1_000);
    assert_eq!(train["features"], 10);
    assert_eq!(train["classes"], 2);
    assert_eq!(train["task"], "binary");
    assert_eq!(train["sha256"].as_str().map(str::len), Some(64));
    let test = app
        .create_dataset("test.csv", test_csv, &[("name", "test")])
        .await;

    let model = app.create_model(mlp(10, 16, 1, "sigmoid")).await;
    assert_eq!(model["params"], 10 * 16 + 16 + 16 + 1);
    assert_eq!(model["trained"], false);

    let epochs = 15;
    let job = app
        .create_job(&json!({
            "kind": "train", "model": model["id"], "dataset": train["id"], "eval_dataset": test["id"],
            "params": {"epochs": epochs, "batch_size": 32, "optimizer": {"name": "adam", "lr": 0.01},
                       "loss": "binary_crossentropy", "seed": 7}}))
        .await;
    let job_id = job["id"].as_str().expect("id").to_string();
    let done = app.wait_for_job(&job_id, JOB_TIMEOUT).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["progress"], 1.0);
    assert_eq!(done["attempts"], 1);
    let result = &done["result"];
    let metrics = &result["metrics"];
    for key in [
        "loss",
        "accuracy",
        "precision",
        "recall",
        "f1",
        "auc",
        "params",
        "nonzero_params",
        "size_bytes",
        "latency_us_b1",
        "throughput_b1024",
    ] {
        assert!(metrics[key].is_number(), "metrics lack {key}: {metrics}");
    }
    let accuracy = metrics["accuracy"].as_f64().expect("accuracy");
    assert!(
        accuracy > 0.85,
        "a separable problem must be learned; accuracy {accuracy}"
    );

    // The per-epoch history was streamed as the job ran.
    let history: Value = app
        .get(&format!("/v1/jobs/{job_id}/metrics"))
        .await
        .json()
        .await
        .expect("json");
    let steps = history["history"].as_array().expect("history");
    assert_eq!(steps.len(), epochs);
    assert!(
        steps
            .iter()
            .all(|s| s["metrics"]["loss"].is_number() && s["metrics"]["accuracy"].is_number())
    );
    let first = steps[0]["metrics"]["loss"].as_f64().expect("loss");
    let last = steps[epochs - 1]["metrics"]["loss"].as_f64().expect("loss");
    assert!(last < first, "training loss must fall: {first} → {last}");

    // Lineage: the trained model points at its parent and the job that made it.
    let trained_id = result["model_id"].as_str().expect("model_id").to_string();
    let trained: Value = app
        .get(&format!("/v1/models/{trained_id}"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(trained["parent_id"], model["id"]);
    assert_eq!(trained["job_id"], job["id"]);
    assert_eq!(trained["trained"], true);
    assert_eq!(trained["task"], "binary");

    // The model artifact downloads with its ETag, length and ranges.
    let artifacts: Value = app
        .get(&format!("/v1/jobs/{job_id}/artifacts"))
        .await
        .json()
        .await
        .expect("json");
    let artifact = artifacts["items"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["name"] == "model.safetensors"))
        .expect("a model artifact")
        .clone();
    let res = app
        .get(&format!(
            "/v1/artifacts/{}",
            artifact["id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(res.status(), 200);
    let etag = res.headers()["etag"].to_str().expect("etag").to_string();
    assert_eq!(
        etag,
        format!("\"{}\"", artifact["sha256"].as_str().expect("sha"))
    );
    assert!(
        res.headers()["content-disposition"]
            .to_str()
            .expect("cd")
            .contains("model.safetensors")
    );
    let artifact_bytes = res.bytes().await.expect("bytes");
    assert_eq!(
        artifact_bytes.len() as u64,
        artifact["size_bytes"].as_u64().expect("size")
    );
    let ranged = app
        .client
        .get(app.url(&format!(
            "/v1/artifacts/{}",
            artifact["id"].as_str().expect("id")
        )))
        .header("range", "bytes=0-7")
        .send()
        .await
        .expect("sent");
    assert_eq!(ranged.status(), 206);
    assert_eq!(
        ranged.bytes().await.expect("bytes").as_ref(),
        &artifact_bytes[..8]
    );
    let not_modified = app
        .client
        .get(app.url(&format!(
            "/v1/artifacts/{}",
            artifact["id"].as_str().expect("id")
        )))
        .header("if-none-match", etag.as_str())
        .send()
        .await
        .expect("sent");
    assert_eq!(not_modified.status(), 304);

    // Evaluate on the held-out set.
    let eval = app
        .create_job(
            &json!({"kind": "evaluate", "model": trained_id, "dataset": test["id"], "params": {}}),
        )
        .await;
    let eval = app
        .wait_for_job(eval["id"].as_str().expect("id"), JOB_TIMEOUT)
        .await;
    assert_eq!(eval["status"], "succeeded", "{eval}");
    let eval_metrics = eval["result"]["metrics"].clone();
    assert!(
        eval_metrics["confusion_matrix"].is_array(),
        "{eval_metrics}"
    );
    assert_eq!(
        eval_metrics["accuracy"], metrics["accuracy"],
        "train reported its eval-set metrics"
    );

    // Download, upload again, predict with both.
    let res = app.get(&format!("/v1/models/{trained_id}/download")).await;
    assert_eq!(res.status(), 200);
    let file = res.bytes().await.expect("bytes").to_vec();
    assert_eq!(file, artifact_bytes.to_vec());
    // The file carries its own lineage, for whoever opens it outside kiln.
    let decoded = kiln::formats::model::read(&file).expect("a kiln model file");
    assert_eq!(decoded.meta.job_id.as_deref(), job["id"].as_str());
    assert_eq!(decoded.meta.parent_id.as_deref(), model["id"].as_str());
    assert!(decoded.meta.trained);
    let res = app
        .upload("/v1/models", "copy.safetensors", file, &[("name", "copy")])
        .await;
    assert_eq!(res.status(), 201);
    let copy: Value = res.json().await.expect("json");
    assert_eq!(copy["trained"], true);
    assert_eq!(copy["params"], trained["params"]);

    let inputs: Vec<Vec<f32>> = (0..5)
        .map(|r| {
            (0..10)
                .map(|c| ((r * 10 + c) as f32 * 0.37).sin())
                .collect()
        })
        .collect();
    let predict = |id: String| {
        let body = json!({"inputs": inputs});
        let app = &app;
        async move {
            let res = app
                .post_json(&format!("/v1/models/{id}/predict"), &body)
                .await;
            assert_eq!(res.status(), 200);
            res.json::<Value>().await.expect("json")["outputs"].clone()
        }
    };
    let original = predict(trained_id.clone()).await;
    let reuploaded = predict(copy["id"].as_str().expect("id").to_string()).await;
    assert_eq!(original, reuploaded);
    assert_eq!(original.as_array().map(Vec::len), Some(5));
    assert!(
        original[0][0]
            .as_f64()
            .is_some_and(|p| (0.0..=1.0).contains(&p))
    );

    let eval_copy = app
        .create_job(&json!({"kind": "evaluate", "model": copy["id"], "dataset": test["id"]}))
        .await;
    let eval_copy = app
        .wait_for_job(eval_copy["id"].as_str().expect("id"), JOB_TIMEOUT)
        .await;
    assert_eq!(eval_copy["result"]["metrics"]["loss"], eval_metrics["loss"]);
}

#[tokio::test]
async fn lists_are_newest_first_and_paginate_by_cursor() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let m = app.create_model(mlp(4, 2 + i, 1, "sigmoid")).await;
        ids.push(m["id"].as_str().expect("id").to_string());
    }
    let page1: Value = app
        .get("/v1/models?limit=2")
        .await
        .json()
        .await
        .expect("json");
    let items = page1["items"].as_array().expect("items");
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["id"], ids[2].as_str());
    assert_eq!(items[1]["id"], ids[1].as_str());
    let cursor = page1["next_cursor"].as_str().expect("a next page");
    let page2: Value = app
        .get(&format!("/v1/models?limit=2&cursor={cursor}"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(page2["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(page2["items"][0]["id"], ids[0].as_str());
    assert!(page2["next_cursor"].is_null());
}

#[tokio::test]
async fn health_readiness_and_the_openapi_document_answer() {
    let app = spawn_app().await;
    let health: Value = app.get("/healthz").await.json().await.expect("json");
    assert_eq!(health["status"], "ok");
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    let doc: Value = app.get("/openapi.json").await.json().await.expect("json");
    let paths = doc["paths"].as_object().expect("paths");
    for p in [
        "/v1/datasets",
        "/v1/datasets/{id}",
        "/v1/models",
        "/v1/models/{id}",
        "/v1/models/{id}/download",
        "/v1/models/{id}/predict",
        "/v1/jobs",
        "/v1/jobs/{id}",
        "/v1/jobs/{id}/cancel",
        "/v1/jobs/{id}/metrics",
        "/v1/jobs/{id}/artifacts",
        "/v1/artifacts/{id}",
        "/healthz",
        "/readyz",
    ] {
        assert!(paths.contains_key(p), "openapi lacks {p}");
    }
    assert!(doc["components"]["schemas"]["Problem"].is_object());
    let res = app.get("/v1/nothing-here").await;
    assert_eq!(res.status(), 404);
}
