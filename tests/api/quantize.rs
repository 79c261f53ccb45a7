//! Issue 4 end to end: quantize jobs over HTTP, the int8 file downloaded and
//! uploaded again, and every class of bad quantization parameter.

use serde_json::{Value, json};

use crate::helpers::{classification_csv, id, spawn_app};

fn mlp12() -> Value {
    json!({"input_dim": 12, "layers": [
        {"type": "dense", "units": 48, "activation": "relu"},
        {"type": "dense", "units": 24, "activation": "relu"},
        {"type": "dense", "units": 1, "activation": "sigmoid"}]})
}

#[tokio::test]
async fn static_int8_is_smaller_as_accurate_and_travels_as_a_safetensors_file() {
    let app = spawn_app().await;
    let (train, test, model) = app.trained_fixture(1_200, 12, 31, mlp12()).await;
    let done = app.finish_job(json!({"kind": "quantize", "model": model, "dataset": train, "eval_dataset": test,
               "params": {"mode": "static", "calibration": {"method": "percentile", "samples": 500, "compare": true}}}),
    )
    .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let (before, after) = (&done["result"]["before"], &done["result"]["metrics"]);
    assert_eq!(after["dtype"], "int8");
    assert!(
        after["size_bytes"].as_u64() < before["size_bytes"].as_u64(),
        "{after}"
    );
    let drop = before["accuracy"].as_f64().expect("acc") - after["accuracy"].as_f64().expect("acc");
    assert!(drop < 0.02, "int8 lost {drop}: {after}");
    assert!(after["latency_us_b1"].is_number() && after["throughput_b1024"].is_number());
    let layers = after["quantized_layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 3, "{layers:?}");
    assert!(
        layers
            .iter()
            .all(|l| l["input_scale"].as_f64().is_some_and(|s| s > 0.0))
    );
    let comparison = after["calibration_comparison"]
        .as_array()
        .expect("comparison");
    for method in ["minmax", "percentile_99.99", "entropy"] {
        assert!(
            comparison.iter().any(|c| c["method"] == method),
            "{comparison:?}"
        );
    }

    // The file is safetensors with I8 weights; it uploads again and predicts the same.
    let int8 = done["result"]["model_id"].as_str().expect("id").to_string();
    let res = app.get(&format!("/v1/models/{int8}/download")).await;
    assert_eq!(res.status(), 200);
    let bytes = res.bytes().await.expect("bytes").to_vec();
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    assert_eq!(
        st.tensor("layers.0.weight").expect("w").dtype(),
        safetensors::Dtype::I8
    );
    assert!(
        st.tensor("layers.0.weight_scale").is_ok() && st.tensor("layers.0.input_scale").is_ok()
    );
    let res = app
        .upload(
            "/v1/models",
            "int8.safetensors",
            bytes,
            &[("name", "int8-again")],
        )
        .await;
    assert_eq!(res.status(), 201);
    let again: Value = res.json().await.expect("json");
    assert_eq!(again["dtype"], "int8");
    let inputs = json!(
        (0..5)
            .map(|r| (0..12)
                .map(|c| ((r * 12 + c) as f32 * 0.29).sin())
                .collect::<Vec<f32>>())
            .collect::<Vec<_>>()
    );
    assert_eq!(
        app.predict(&int8, &inputs).await,
        app.predict(&id(&again), &inputs).await
    );
    let ev = app
        .finish_job(json!({"kind": "evaluate", "model": id(&again), "dataset": test}))
        .await;
    assert_eq!(
        ev["result"]["metrics"]["accuracy"], after["accuracy"],
        "{ev}"
    );
}

#[tokio::test]
async fn dynamic_and_qat_modes_run_and_an_accuracy_budget_is_kept_or_refused_clearly() {
    let app = spawn_app().await;
    let (train, test, model) = app.trained_fixture(1_200, 12, 31, mlp12()).await;
    for params in [
        json!({"mode": "dynamic", "granularity": "per_tensor"}),
        json!({"mode": "qat", "scheme": "asymmetric", "fine_tune": {"epochs": 2, "optimizer": {"name": "adam", "lr": 0.001}}}),
    ] {
        let done = app.finish_job(json!({"kind": "quantize", "model": model, "dataset": train, "eval_dataset": test, "params": params}),
        )
        .await;
        assert_eq!(done["status"], "succeeded", "{params}: {done}");
        let acc = done["result"]["metrics"]["accuracy"].as_f64().expect("acc");
        assert!(acc > 0.8, "{params}: {acc}");
    }
    let done = app
        .finish_job(
            json!({"kind": "quantize", "model": model, "dataset": train, "eval_dataset": test,
               "params": {"max_accuracy_drop": 0.0}}),
        )
        .await;
    match done["status"].as_str() {
        Some("succeeded") => {
            let m = &done["result"]["metrics"];
            assert!(m["main_metric_drop"].as_f64().expect("drop") <= 0.0, "{m}");
        }
        Some("failed") => {
            let e = done["error"].as_str().unwrap_or_default();
            assert!(e.contains("max_accuracy_drop"), "{e}");
        }
        other => panic!("unexpected status {other:?}: {done}"),
    }
}

#[tokio::test]
async fn bad_quantization_parameters_are_rejected_naming_the_field() {
    let app = spawn_app().await;
    let ds = app
        .create_dataset("train.csv", classification_csv(200, 8, 3), &[])
        .await;
    let model = app
        .create_model(json!({"input_dim": 8, "layers": [
            {"type": "dense", "units": 4, "activation": "relu"},
            {"type": "dense", "units": 1, "activation": "sigmoid"}]}))
        .await;
    let job = |params: Value| json!({"kind": "quantize", "model": id(&model), "dataset": id(&ds), "params": params});
    let cases = [
        (json!({"bits": 4}), "params.bits"),
        (json!({"mode": "int4"}), "params.mode"),
        (json!({"granularity": "per_row"}), "params.granularity"),
        (json!({"scheme": "log"}), "params.scheme"),
        (
            json!({"calibration": {"samples": 0}}),
            "params.calibration.samples",
        ),
        (
            json!({"calibration": {"samples": 100000}}),
            "params.calibration.samples",
        ),
        (
            json!({"calibration": {"method": "kmeans"}}),
            "params.calibration.method",
        ),
        (
            json!({"calibration": {"method": "percentile", "percentile": 101}}),
            "params.calibration.percentile",
        ),
        (
            json!({"mode": "dynamic", "calibration": {"method": "minmax"}}),
            "params.calibration",
        ),
        (json!({"fine_tune": {"epochs": 1}}), "params.fine_tune"),
        (
            json!({"mode": "qat", "fine_tune": {"epochs": 0}}),
            "params.fine_tune.epochs",
        ),
        (
            json!({"max_accuracy_drop": -0.1}),
            "params.max_accuracy_drop",
        ),
    ];
    for (params, field) in cases {
        app.assert_job_rejected(&job(params), field).await;
    }
}
