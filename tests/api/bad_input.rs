//! Every class of bad input gets a 4xx problem document that names the field.

use serde_json::{Value, json};

use crate::helpers::{TestApp, classification_csv, mlp, problem_fields, spawn_app};

/// Asserts the status, the problem content type, and that `field` is among the named fields.
async fn assert_problem(res: reqwest::Response, status: u16, field: &str) -> Value {
    let got = res.status().as_u16();
    let content_type = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body: Value = res.json().await.expect("problem body is JSON");
    assert_eq!(got, status, "unexpected status; body: {body}");
    assert_eq!(content_type, "application/problem+json", "body: {body}");
    assert_eq!(body["status"], status, "body: {body}");
    assert!(body["title"].is_string() && body["type"].is_string() && body["detail"].is_string());
    let fields = problem_fields(&body);
    assert!(
        fields.iter().any(|f| f == field),
        "expected field `{field}` in {fields:?}; body: {body}"
    );
    body
}

async fn upload_dataset(
    app: &TestApp,
    name: &str,
    bytes: &[u8],
    fields: &[(&str, &str)],
) -> reqwest::Response {
    app.upload("/v1/datasets", name, bytes.to_vec(), fields)
        .await
}

/// What is wrong, the file, the form fields, the field named, and a phrase the problem must contain.
type UploadCase<'a> = (
    &'a str,
    &'a [u8],
    &'a [(&'a str, &'a str)],
    &'a str,
    &'a str,
);

#[tokio::test]
async fn malformed_dataset_uploads_are_rejected_naming_the_field() {
    let app = spawn_app().await;
    let cases: &[UploadCase] = &[
        ("an empty file", b"", &[], "file", ""),
        ("a header without rows", b"a,b,label\n", &[], "file", ""),
        (
            "a ragged row",
            b"a,b,label\n1,2,0\n3,1\n",
            &[],
            "file",
            "line 3",
        ),
        (
            "a non-numeric value",
            b"a,b,label\n1,2,0\nx,4,1\n",
            &[],
            "file",
            "line 3",
        ),
        ("a NaN", b"a,b,label\n1,2,0\nNaN,4,1\n", &[], "file", ""),
        (
            "an infinity",
            b"a,b,label\n1,inf,0\n3,4,1\n",
            &[],
            "file",
            "",
        ),
        (
            "an unknown label column",
            b"a,b,label\n1,2,0\n3,4,1\n",
            &[("label_column", "target")],
            "label_column",
            "",
        ),
        (
            "an unknown task",
            b"a,b,label\n1,2,0\n3,4,1\n",
            &[("task", "clustering")],
            "task",
            "",
        ),
        (
            "labels out of range for a binary task",
            b"a,b,label\n1,2,0\n3,4,2\n5,6,1\n",
            &[("task", "binary")],
            "task",
            "",
        ),
        (
            "fractional labels for a multiclass task",
            b"a,b,label\n1,2,0.5\n3,4,2\n",
            &[("task", "multiclass")],
            "task",
            "",
        ),
        (
            "an unknown form field",
            b"a,b,label\n1,2,0\n3,4,1\n",
            &[("colour", "blue")],
            "colour",
            "",
        ),
    ];
    for (what, bytes, fields, field, detail) in cases {
        let res = upload_dataset(&app, "data.csv", bytes, fields).await;
        let body = assert_problem(res, 422, field).await;
        assert!(
            body.to_string().contains(detail),
            "{what}: expected `{detail}` in {body}"
        );
    }
}

#[tokio::test]
async fn a_truncated_npz_is_rejected_naming_the_file() {
    let app = spawn_app().await;
    // A zip local-file header and nothing after it.
    let truncated = b"PK\x03\x04\x14\x00\x00\x00\x08\x00".to_vec();
    let res = upload_dataset(&app, "data.npz", &truncated, &[]).await;
    assert_problem(res, 422, "file").await;
}

#[tokio::test]
async fn an_upload_without_a_file_part_is_rejected() {
    let app = spawn_app().await;
    let form = reqwest::multipart::Form::new().text("name", "nothing");
    let res = app
        .client
        .post(app.url("/v1/datasets"))
        .multipart(form)
        .send()
        .await
        .expect("sent");
    assert_problem(res, 422, "file").await;
}

#[tokio::test]
async fn an_oversized_upload_gets_413_and_leaves_no_blob_behind() {
    let app = crate::helpers::spawn_app_with(|s| s.limits.max_upload_bytes = 10_000).await;
    let big = classification_csv(2_000, 10, 1);
    assert!(big.len() > 10_000);
    let res = upload_dataset(&app, "big.csv", &big, &[]).await;
    assert_problem(res, 413, "file").await;
    let blobs = app.data_dir.path().join("blobs");
    let leftovers: Vec<_> = walk(&blobs).into_iter().filter(|p| p.is_file()).collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test]
async fn bad_architectures_are_rejected_naming_the_field() {
    let app = spawn_app().await;
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"input_dim": 4, "layers": [{"type": "dense"}]}),
            "architecture.layers[0]",
        ),
        (
            json!({"input_dim": 4, "layers": [{"type": "dense", "units": 2, "kernel": 3}]}),
            "architecture.layers[0].kernel",
        ),
        (
            json!({"input_dim": 4, "layers": [{"type": "conv9d", "units": 2}]}),
            "architecture.layers[0].type",
        ),
        (
            json!({"input_dim": 4, "layers": [{"type": "dense", "units": 2, "activation": "swish"}]}),
            "architecture.layers[0].activation",
        ),
        (
            json!({"input_dim": 4, "layers": [{"type": "dense", "units": 0}]}),
            "architecture.layers[0].units",
        ),
        (
            json!({"input_dim": 4, "layers": [{"type": "dense", "units": 2}, {"type": "dropout", "rate": 1.5}]}),
            "architecture.layers[1].rate",
        ),
        (json!({"input_dim": 4, "layers": []}), "architecture.layers"),
        (
            json!({"input_dim": 0, "layers": [{"type": "dense", "units": 1}]}),
            "architecture.input_dim",
        ),
        (
            json!({"input_dim": 60000, "layers": [{"type": "dense", "units": 60000}]}),
            "architecture.layers",
        ),
        (
            json!({"input_dim": -3, "layers": [{"type": "dense", "units": 1}]}),
            "architecture.input_dim",
        ),
    ];
    for (arch, field) in cases {
        let res = app
            .post_json("/v1/models", &json!({"name": "bad", "architecture": arch}))
            .await;
        assert_problem(res, 422, field).await;
    }
}

#[tokio::test]
async fn malformed_json_gets_400_and_the_wrong_media_type_gets_415() {
    let app = spawn_app().await;
    let res = app
        .client
        .post(app.url("/v1/models"))
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .expect("sent");
    assert_problem(res, 400, "body").await;
    let res = app
        .client
        .post(app.url("/v1/jobs"))
        .header("content-type", "text/plain")
        .body("train please")
        .send()
        .await
        .expect("sent");
    assert_problem(res, 415, "content-type").await;
}

#[tokio::test]
async fn a_model_file_that_is_not_a_kiln_model_is_rejected() {
    let app = spawn_app().await;
    let res = app
        .upload(
            "/v1/models",
            "model.safetensors",
            b"definitely not safetensors".to_vec(),
            &[],
        )
        .await;
    assert_problem(res, 422, "file").await;
    // A valid safetensors header that lacks kiln's metadata.
    let header = br#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(header);
    file.extend_from_slice(&1.0f32.to_le_bytes());
    let res = app
        .upload("/v1/models", "model.safetensors", file, &[])
        .await;
    assert_problem(res, 422, "file").await;
}

/// A dataset of 8 features and a model that fits it, for the job-parameter cases.
async fn job_fixture(app: &TestApp) -> (String, String) {
    let ds = app
        .create_dataset("train.csv", classification_csv(200, 8, 3), &[])
        .await;
    let model = app.create_model(mlp(8, 8, 1, "sigmoid")).await;
    (
        model["id"].as_str().expect("id").to_string(),
        ds["id"].as_str().expect("id").to_string(),
    )
}

#[tokio::test]
async fn bad_job_parameters_are_rejected_naming_the_field() {
    let app = spawn_app().await;
    let (model, dataset) = job_fixture(&app).await;
    let job = |params: Value| json!({"kind": "train", "model": model, "dataset": dataset, "params": params});
    let cases: Vec<(Value, &str)> = vec![
        (job(json!({"epochs": 0})), "params.epochs"),
        (job(json!({"epochs": 1_000_000_000u64})), "params.epochs"),
        (job(json!({"batch_size": 0})), "params.batch_size"),
        (
            job(json!({"optimizer": {"name": "adam", "lr": -0.1}})),
            "params.optimizer.lr",
        ),
        (
            job(json!({"optimizer": {"name": "adam", "lr": "NaN"}})),
            "params.optimizer.lr",
        ),
        (
            job(json!({"optimizer": {"name": "lbfgs", "lr": 0.1}})),
            "params.optimizer.name",
        ),
        (
            job(json!({"validation_split": 1.5})),
            "params.validation_split",
        ),
        (job(json!({"epochs": 2, "colour": "blue"})), "params.colour"),
        (
            json!({"kind": "levitate", "model": model, "dataset": dataset, "params": {}}),
            "kind",
        ),
        (
            json!({"kind": "train", "model": uuid::Uuid::now_v7(), "dataset": dataset}),
            "model",
        ),
        (
            json!({"kind": "train", "model": model, "dataset": uuid::Uuid::now_v7()}),
            "dataset",
        ),
        (
            json!({"kind": "train", "model": "not-a-uuid", "dataset": dataset}),
            "model",
        ),
        (json!({"kind": "train", "dataset": dataset}), "body"),
    ];
    for (body, field) in cases {
        let res = app.post_json("/v1/jobs", &body).await;
        assert_problem(res, 422, field).await;
    }
}

#[tokio::test]
async fn a_model_whose_input_width_differs_from_the_dataset_is_rejected() {
    let app = spawn_app().await;
    let (_, dataset) = job_fixture(&app).await;
    let wide = app.create_model(mlp(100, 4, 1, "sigmoid")).await;
    let res = app
        .post_json(
            "/v1/jobs",
            &json!({"kind": "train", "model": wide["id"], "dataset": dataset, "params": {}}),
        )
        .await;
    let body = assert_problem(res, 422, "dataset").await;
    assert!(
        body["detail"].as_str().unwrap_or_default().contains("100"),
        "{body}"
    );
}

#[tokio::test]
async fn missing_and_malformed_ids_get_404_and_400() {
    let app = spawn_app().await;
    for path in [
        "/v1/jobs/",
        "/v1/models/",
        "/v1/datasets/",
        "/v1/artifacts/",
    ] {
        let res = app.get(&format!("{path}{}", uuid::Uuid::now_v7())).await;
        assert_problem(res, 404, "id").await;
        let res = app.get(&format!("{path}not-a-uuid")).await;
        assert_problem(res, 400, "id").await;
    }
    let res = app.get("/v1/jobs?limit=0").await;
    assert_problem(res, 422, "limit").await;
    let res = app.get("/v1/jobs?status=sleeping").await;
    assert_problem(res, 422, "status").await;
    let res = app.get("/v1/jobs?kind=levitate").await;
    assert_problem(res, 422, "kind").await;
    let res = app.get("/v1/datasets?cursor=yesterday").await;
    assert_problem(res, 422, "cursor").await;
}

#[tokio::test]
async fn an_idempotency_key_reused_for_another_request_is_a_conflict() {
    let app = spawn_app().await;
    let (model, dataset) = job_fixture(&app).await;
    let send = |epochs: u32| {
        app.client
            .post(app.url("/v1/jobs"))
            .header("Idempotency-Key", "key-1")
            .json(&json!({"kind": "train", "model": model, "dataset": dataset, "params": {"epochs": epochs}}))
            .send()
    };
    let first: Value = send(1).await.expect("sent").json().await.expect("json");
    let again = send(1).await.expect("sent");
    assert_eq!(again.status(), 202);
    let again: Value = again.json().await.expect("json");
    assert_eq!(first["id"], again["id"], "same key, same job");
    let res = send(2).await.expect("sent");
    assert_problem(res, 409, "Idempotency-Key").await;
}

#[tokio::test]
async fn predict_rejects_rows_of_the_wrong_width_and_empty_input() {
    let app = spawn_app().await;
    let model = app.create_model(mlp(3, 4, 1, "sigmoid")).await;
    let path = format!("/v1/models/{}/predict", model["id"].as_str().expect("id"));
    let res = app
        .post_json(&path, &json!({"inputs": [[1.0, 2.0, 3.0], [1.0, 2.0]]}))
        .await;
    assert_problem(res, 422, "inputs[1]").await;
    let res = app.post_json(&path, &json!({"inputs": []})).await;
    assert_problem(res, 422, "inputs").await;
    let res = app
        .post_json(&path, &json!({"inputs": [["a", 1, 2]]}))
        .await;
    assert_problem(res, 422, "inputs[0][0]").await;
    let res = app
        .post_json(&path, &json!({"inputs": [[1.0, 2.0, 3.0]]}))
        .await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn a_download_format_the_model_cannot_give_is_rejected_naming_the_format() {
    let app = spawn_app().await;
    let model = app.create_model(mlp(4, 3, 1, "sigmoid")).await;
    let id = model["id"].as_str().expect("id");
    let res = app
        .get(&format!("/v1/models/{id}/download?format=torchscript"))
        .await;
    let problem = assert_problem(res, 422, "format").await;
    assert!(
        problem.to_string().contains("onnx"),
        "the formats are listed: {problem}"
    );
    // Only a compressed model has a kilnz form.
    let res = app
        .get(&format!("/v1/models/{id}/download?format=kilnz"))
        .await;
    assert_problem(res, 422, "format").await;
    let res = app.get(&format!("/v1/models/{id}/download")).await;
    assert_eq!(res.status(), 200);
    let disposition = res.headers()["content-disposition"].to_str().expect("cd");
    assert!(disposition.contains(".safetensors"), "{disposition}");
}
