//! Issue 3 end to end: prune, compress, compact over HTTP, and the compressed
//! artifact downloaded, uploaded again and served with identical predictions.

use serde_json::{Value, json};

use crate::helpers::{classification_csv, id, spawn_app};

fn deep(input_dim: usize) -> Value {
    json!({"input_dim": input_dim, "layers": [
        {"type": "dense", "units": 64, "activation": "relu"},
        {"type": "dropout", "rate": 0.1},
        {"type": "dense", "units": 32, "activation": "relu"},
        {"type": "dense", "units": 1, "activation": "sigmoid"}]})
}

#[tokio::test]
async fn prune_then_compress_gives_a_smaller_file_that_uploads_again_and_predicts_identically() {
    let app = spawn_app().await;
    let (train, test, trained) = app.trained_fixture(1_000, 10, 21, deep(10)).await;

    // Gradual magnitude pruning to 80 % while fine-tuning.
    let done = app.run_job(json!({"kind": "prune", "model": trained, "dataset": train, "eval_dataset": test,
               "params": {"method": "magnitude", "sparsity": 0.8, "schedule": {"type": "polynomial"},
                          "fine_tune": {"epochs": 4, "optimizer": {"name": "adam", "lr": 0.005}}}}),
    )
    .await;
    let (before, after) = (&done["result"]["before"], &done["result"]["metrics"]);
    for key in [
        "accuracy",
        "params",
        "nonzero_params",
        "size_bytes",
        "latency_us_b1",
        "throughput_b1024",
        "layers",
    ] {
        assert!(
            !before[key].is_null() && !after[key].is_null(),
            "{key}: {done}"
        );
    }
    // Exactly 80 % of the hidden layers' weights are zero (the output layer stays dense).
    let hidden = 10 * 64 + 64 * 32;
    let layers = after["layers"].as_array().expect("layers");
    let zeros: u64 = layers[..2]
        .iter()
        .map(|l| l["weights"].as_u64().expect("w") - l["nonzero"].as_u64().expect("nz"))
        .sum();
    assert_eq!(zeros, (0.8 * hidden as f64).round() as u64, "{layers:?}");
    assert_eq!(layers[2]["sparsity"], 0.0);
    assert!(after["size_bytes"].as_u64() < before["size_bytes"].as_u64());
    assert!(after["accuracy"].as_f64().expect("acc") > 0.85, "{after}");
    let events = after["pruning_events"].as_array().expect("events");
    assert!(
        events.len() > 2,
        "a gradual schedule prunes many times: {events:?}"
    );
    let pruned = done["result"]["model_id"].as_str().expect("id").to_string();
    let shown: Value = app
        .get(&format!("/v1/models/{pruned}"))
        .await
        .json()
        .await
        .expect("json");
    assert!(
        shown["sparsity"].as_f64().expect("sparsity") > 0.6,
        "{shown}"
    );
    assert_eq!(shown["parent_id"], trained.as_str());

    // Weight sharing and entropy coding.
    let done = app.run_job(json!({"kind": "compress", "model": pruned, "dataset": train, "eval_dataset": test,
               "params": {"bits": 4, "fine_tune": {"epochs": 1, "optimizer": {"name": "adam", "lr": 0.001}}}}),
    )
    .await;
    let m = &done["result"]["metrics"];
    assert_eq!(m["roundtrip_max_abs_diff"], 0.0, "{m}");
    assert!(
        m["size_bytes"].as_u64() < after["size_bytes"].as_u64(),
        "{m}"
    );
    assert!(m["accuracy"].as_f64().expect("acc") > 0.8, "{m}");
    let compressed = done["result"]["model_id"].as_str().expect("id").to_string();
    let res = app.get(&format!("/v1/models/{compressed}/download")).await;
    assert_eq!(res.status(), 200);
    let disposition = res.headers()["content-disposition"]
        .to_str()
        .expect("cd")
        .to_string();
    assert!(disposition.contains(".kilnz"), "{disposition}");
    let file = res.bytes().await.expect("bytes").to_vec();
    assert!(file.starts_with(b"KILNZ"));
    assert_eq!(file.len() as u64, m["size_bytes"].as_u64().expect("size"));

    // The artifact uploads again and serves the same predictions.
    let res = app
        .upload("/v1/models", "lenet.kilnz", file, &[("name", "again")])
        .await;
    assert_eq!(res.status(), 201);
    let again: Value = res.json().await.expect("json");
    assert_eq!(again["dtype"], "shared4");
    let inputs: Vec<Vec<f32>> = (0..6)
        .map(|r| {
            (0..10)
                .map(|c| ((r * 10 + c) as f32 * 0.41).cos())
                .collect()
        })
        .collect();
    let inputs = json!(inputs);
    assert_eq!(
        app.predict(&compressed, &inputs).await,
        app.predict(&id(&again), &inputs).await
    );
    let ev = app
        .run_job(json!({"kind": "evaluate", "model": id(&again), "dataset": test}))
        .await;
    assert_eq!(ev["result"]["metrics"]["accuracy"], m["accuracy"]);
    assert_eq!(ev["result"]["metrics"]["size_bytes"], m["size_bytes"]);

    // The dense safetensors form of the compressed model is one query away.
    let res = app
        .get(&format!(
            "/v1/models/{compressed}/download?format=safetensors"
        ))
        .await;
    assert_eq!(res.status(), 200);
    let dense = kiln::formats::model::read(&res.bytes().await.expect("bytes"))
        .expect("a kiln safetensors file");
    assert_eq!(
        dense.model.param_count(),
        m["params"].as_u64().expect("params")
    );
}

#[tokio::test]
async fn neuron_pruning_shrinks_the_layers_and_compact_reports_what_it_did() {
    let app = spawn_app().await;
    let (train, test, trained) = app.trained_fixture(1_000, 10, 21, deep(10)).await;
    let done = app.run_job(json!({"kind": "prune", "model": trained, "dataset": train, "eval_dataset": test,
               "params": {"method": "neurons", "sparsity": 0.5, "scope": "per_layer", "criterion": "l1",
                          "fine_tune": {"epochs": 2}}}),
    )
    .await;
    let pruned = done["result"]["model_id"].as_str().expect("id").to_string();
    let shown: Value = app
        .get(&format!("/v1/models/{pruned}"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(shown["architecture"]["layers"][0]["units"], 32);
    assert_eq!(shown["architecture"]["layers"][2]["units"], 16);
    assert_eq!(shown["params"], 10 * 32 + 32 + 32 * 16 + 16 + 16 + 1);
    assert_eq!(
        shown["sparsity"], 0.0,
        "a structurally pruned model is dense"
    );

    let done = app
        .run_job(
            json!({"kind": "compact", "model": trained, "dataset": train, "eval_dataset": test,
               "params": {"low_rank": {"energy": 0.99}, "low_rank_layers": [0]}}),
        )
        .await;
    let m = &done["result"]["metrics"];
    let actions = m["actions"].as_array().expect("actions");
    for a in actions {
        assert!(
            a["kind"].is_string() && a["metric_after"].is_number(),
            "{a}"
        );
    }
    assert!(
        m["params"].as_u64() <= done["result"]["before"]["params"].as_u64(),
        "{m}"
    );
}

#[tokio::test]
async fn bad_optimization_parameters_are_rejected_naming_the_field() {
    let app = spawn_app().await;
    let ds = app
        .create_dataset("train.csv", classification_csv(200, 8, 3), &[])
        .await;
    let model = app
        .create_model(json!({"input_dim": 8, "layers": [
            {"type": "dense", "units": 2, "activation": "relu"},
            {"type": "dense", "units": 1, "activation": "sigmoid"}]}))
        .await;
    let single = app
        .create_model(json!({"input_dim": 8, "layers": [
            {"type": "dense", "units": 1, "activation": "sigmoid"}]}))
        .await;
    let job = |kind: &str, m: &Value, params: Value| json!({"kind": kind, "model": id(m), "dataset": id(&ds), "params": params});
    let cases: Vec<(Value, &str)> = vec![
        (
            job("prune", &model, json!({"sparsity": 1.0})),
            "params.sparsity",
        ),
        (
            job("prune", &model, json!({"sparsity": -0.1})),
            "params.sparsity",
        ),
        (
            job("prune", &model, json!({"method": "random"})),
            "params.method",
        ),
        (
            job(
                "prune",
                &model,
                json!({"method": "neurons", "layers": {"0": 0.9}}),
            ),
            "params.layers.0",
        ),
        (
            job(
                "prune",
                &model,
                json!({"method": "neurons", "scope": "per_layer", "sparsity": 0.8}),
            ),
            "params.sparsity",
        ),
        (
            job(
                "prune",
                &model,
                json!({"method": "neurons", "layers": {"1": 0.5}}),
            ),
            "params.layers.1",
        ),
        (job("prune", &single, json!({"sparsity": 0.5})), "model"),
        (job("prune", &single, json!({"method": "neurons"})), "model"),
        (
            job("prune", &model, json!({"criterion": "l1"})),
            "params.criterion",
        ),
        (
            job("prune", &model, json!({"schedule": "polynomial"})),
            "params.schedule",
        ),
        (
            job(
                "prune",
                &model,
                json!({"schedule": {"type": "polynomial", "end_step": 100000}, "fine_tune": {"epochs": 1}}),
            ),
            "params.schedule.end_step",
        ),
        (
            job("prune", &model, json!({"fine_tune": {"epochs": 0}})),
            "params.fine_tune.epochs",
        ),
        (job("compress", &model, json!({"bits": 9})), "params.bits"),
        (job("compress", &model, json!({"bits": 0})), "params.bits"),
        (
            job("compress", &model, json!({"coder": "lz4"})),
            "params.coder",
        ),
        (
            job("compress", &model, json!({"init": "random"})),
            "params.init",
        ),
        (
            job("compact", &model, json!({"low_rank": {}})),
            "params.low_rank",
        ),
        (
            job("compact", &model, json!({"low_rank": {"energy": 1.5}})),
            "params.low_rank.energy",
        ),
        (
            job(
                "compact",
                &model,
                json!({"low_rank": {"energy": 0.9}, "low_rank_layers": [7]}),
            ),
            "params.low_rank_layers[0]",
        ),
    ];
    for (body, field) in cases {
        app.assert_job_rejected(&body, field).await;
    }
}
