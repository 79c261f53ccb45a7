//! Convolutional networks over HTTP: image datasets in every layout an upload
//! may use, a CNN trained and evaluated through the jobs API, and every class
//! of malformed convolutional architecture or mismatched image shape a 422
//! naming the layer or the field.

use std::io::Cursor;

use ndarray::{Array, Array1, Array3, Array4, Dimension};
use ndarray_npy::NpzWriter;
use serde_json::{Value, json};

use crate::helpers::{TestApp, id, problem_fields, spawn_app};

const SIDE: usize = 8;

/// `n` single-channel `SIDE × SIDE` images: label 1 is a bright vertical bar in
/// a random column, label 0 a horizontal bar in a random row, both over noise.
fn bars(n: usize, seed: u64) -> (Array3<f32>, Array1<f32>) {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as usize
    };
    let mut x = Array3::<f32>::zeros((n, SIDE, SIDE));
    let mut y = Array1::<f32>::zeros(n);
    for i in 0..n {
        let vertical = next() % 2 == 1;
        let at = next() % SIDE;
        for h in 0..SIDE {
            for w in 0..SIDE {
                let on = if vertical { w == at } else { h == at };
                let noise = (next() % 1000) as f32 / 1000.0 * 0.4;
                x[[i, h, w]] = if on { 1.0 } else { 0.0 } + noise;
            }
        }
        y[i] = f32::from(u8::from(vertical));
    }
    (x, y)
}

fn npz<D: Dimension>(x: &Array<f32, D>, y: &Array1<f32>) -> Vec<u8> {
    let mut w = NpzWriter::new(Cursor::new(Vec::new()));
    w.add_array("x", x).expect("x");
    w.add_array("y", y).expect("y");
    w.finish().expect("npz").into_inner()
}

fn cnn() -> Value {
    json!({"input_shape": [1, SIDE, SIDE], "layers": [
        {"type": "conv2d", "filters": 4, "kernel_size": 3, "padding": "same", "use_bias": false},
        {"type": "batch_norm", "activation": "relu"},
        {"type": "max_pool2d", "pool_size": 2},
        {"type": "conv2d", "filters": 4, "kernel_size": 3, "activation": "relu"},
        {"type": "global_avg_pool2d"},
        {"type": "dense", "units": 1, "activation": "sigmoid"}]})
}

async fn post_model(app: &TestApp, architecture: Value) -> (u16, Value) {
    let res = app
        .post_json(
            "/v1/models",
            &json!({"name": "cnn", "architecture": architecture}),
        )
        .await;
    let status = res.status().as_u16();
    (status, res.json().await.expect("json"))
}

/// The first error's field and message of a 422.
fn first_error(body: &Value) -> (String, String) {
    let e = &body["errors"][0];
    (
        e["field"].as_str().unwrap_or_default().to_string(),
        e["message"].as_str().unwrap_or_default().to_string(),
    )
}

#[tokio::test]
async fn a_cnn_trains_and_evaluates_on_image_uploads_of_every_layout() {
    let app = spawn_app().await;
    let (x, y) = bars(240, 1);
    let train = app.create_dataset("bars.npz", npz(&x, &y), &[]).await;
    assert_eq!(train["input_shape"], json!([1, SIDE, SIDE]), "{train}");
    assert_eq!(train["features"], SIDE * SIDE);

    // The test set arrives channels last, as Keras keeps it.
    let (x, y) = bars(120, 2);
    let nhwc: Array4<f32> = x.clone().insert_axis(ndarray::Axis(3));
    let test = app
        .create_dataset("bars_nhwc.npz", npz(&nhwc, &y), &[("layout", "nhwc")])
        .await;
    assert_eq!(test["input_shape"], json!([1, SIDE, SIDE]), "{test}");

    let model = app.create_model(cnn()).await;
    // conv 4·1·9 + BN 2·4 + conv 4·4·9 + 4 + dense 4 + 1.
    assert_eq!(model["params"], 36 + 8 + 144 + 4 + 4 + 1, "{model}");
    let done = app
        .run_job(
            json!({"kind": "train", "model": id(&model), "dataset": id(&train),
            "eval_dataset": id(&test),
            "params": {"epochs": 12, "batch_size": 16, "optimizer": {"name": "adam", "lr": 0.02},
                       "seed": 3}}),
        )
        .await;
    let accuracy = done["result"]["metrics"]["accuracy"]
        .as_f64()
        .expect("accuracy");
    assert!(
        accuracy >= 0.9,
        "bars are learnable; accuracy {accuracy}: {done}"
    );
    let trained = done["result"]["model_id"].as_str().expect("model id");

    // Evaluate again on the same images sent as CSV rows with an input_shape.
    let mut csv = (0..SIDE * SIDE)
        .map(|i| format!("p{i}"))
        .collect::<Vec<_>>()
        .join(",");
    csv.push_str(",label\n");
    for (row, label) in x.outer_iter().zip(&y) {
        for v in row.iter() {
            csv.push_str(&format!("{v},"));
        }
        csv.push_str(&format!("{label}\n"));
    }
    let shape = format!("[1, {SIDE}, {SIDE}]");
    let rows = app
        .create_dataset(
            "bars.csv",
            csv.into_bytes(),
            &[("input_shape", shape.as_str())],
        )
        .await;
    assert_eq!(rows["input_shape"], json!([1, SIDE, SIDE]));
    let eval = app
        .run_job(json!({"kind": "evaluate", "model": trained, "dataset": id(&rows)}))
        .await;
    assert_eq!(
        eval["result"]["metrics"]["accuracy"], done["result"]["metrics"]["accuracy"],
        "the same images in another layout score the same: {eval}"
    );

    // Magnitude pruning reaches into the convolutions (per filter row), keeps
    // batch norm whole and the output layer dense, and fine-tunes around the cuts.
    let pruned = app
        .run_job(
            json!({"kind": "prune", "model": trained, "dataset": id(&train),
            "eval_dataset": id(&test),
            "params": {"sparsity": 0.5, "scope": "per_layer",
                       "fine_tune": {"epochs": 4, "batch_size": 16,
                                     "optimizer": {"name": "adam", "lr": 0.005}, "seed": 1}}}),
        )
        .await;
    let m = &pruned["result"]["metrics"];
    let layers: Vec<(u64, u64, u64)> = m["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| {
            let n = |k: &str| l[k].as_u64().expect("count");
            (n("layer"), n("weights"), n("nonzero"))
        })
        .collect();
    // conv 36 → 18 kept, conv 144 → 72 kept, the output dense layer whole.
    assert_eq!(layers, vec![(0, 36, 18), (3, 144, 72), (5, 4, 4)], "{m}");
    let pruned_accuracy = m["accuracy"].as_f64().expect("accuracy");
    assert!(pruned_accuracy >= 0.85, "half the conv weights gone: {m}");
    // Removing whole units is for dense networks so far: a 422 naming the method.
    let neurons = json!({"kind": "prune", "model": trained, "dataset": id(&train),
        "params": {"method": "neurons"}});
    app.assert_job_rejected(&neurons, "params.method").await;

    // Jobs whose algorithms are dense-only answer 422 at once, naming the model.
    for kind in ["compress", "compact", "quantize"] {
        let body = json!({"kind": kind, "model": trained, "dataset": id(&train),
            "eval_dataset": id(&test)});
        app.assert_job_rejected(&body, "model").await;
    }
    // A CNN teacher distils into an MLP student over the same image rows.
    let distilled = app
        .run_job(json!({"kind": "distill", "model": trained, "dataset": id(&train),
            "eval_dataset": id(&test),
            "params": {"epochs": 40, "batch_size": 16, "seed": 5,
                "optimizer": {"name": "adam", "lr": 0.01}, "student": {"architecture": {"input_dim": SIDE * SIDE,
                "layers": [{"type": "dense", "units": 16, "activation": "relu"},
                           {"type": "dense", "units": 1, "activation": "sigmoid"}]}}}}))
        .await;
    let student = distilled["result"]["metrics"]["accuracy"]
        .as_f64()
        .expect("student accuracy");
    assert!(
        student >= 0.8,
        "an MLP learns bars from a CNN teacher; {distilled}"
    );

    // One image predicted over HTTP agrees with its label.
    let first: Vec<f32> = x
        .outer_iter()
        .next()
        .expect("row")
        .iter()
        .copied()
        .collect();
    let out = app.predict(trained, &json!([first])).await;
    let p = out[0][0].as_f64().expect("probability");
    assert_eq!(p > 0.5, y[0] == 1.0, "prediction {p} for label {}", y[0]);
}

#[tokio::test]
async fn a_model_whose_input_shape_disagrees_with_the_images_is_refused() {
    let app = spawn_app().await;
    let (x, y) = bars(20, 4);
    let images = app.create_dataset("bars.npz", npz(&x, &y), &[]).await;
    // Same 64 values per row, another shape.
    let other = json!({"input_shape": [4, 4, 4], "layers": [
        {"type": "conv2d", "filters": 2, "kernel_size": 1, "activation": "relu"},
        {"type": "flatten"}, {"type": "dense", "units": 1, "activation": "sigmoid"}]});
    let model = app.create_model(other).await;
    let body = json!({"kind": "train", "model": id(&model), "dataset": id(&images)});
    app.assert_job_rejected(&body, "dataset").await;
    let res = app.post_json("/v1/jobs", &body).await;
    let problem: Value = res.json().await.expect("json");
    let (_, message) = first_error(&problem);
    assert!(
        message.contains("[4, 4, 4]") && message.contains("[1, 8, 8]"),
        "{message}"
    );
}

#[tokio::test]
async fn bad_image_uploads_name_their_field() {
    let app = spawn_app().await;
    let csv = b"a,b,c,d,label\n0,1,2,3,0\n3,2,1,0,1\n".to_vec();
    for (fields, field, says) in [
        (
            vec![("layout", "hwc")],
            "layout",
            "must be nchw (channels_first) or nhwc",
        ),
        (vec![("layout", "nhwc")], "layout", "input_shape"),
        (
            vec![("input_shape", "[1, 3, 3]")],
            "input_shape",
            "9 values",
        ),
        (
            vec![("input_shape", "[2, 2]")],
            "input_shape",
            "[channels, height, width]",
        ),
    ] {
        let res = app
            .upload("/v1/datasets", "d.csv", csv.clone(), &fields)
            .await;
        let status = res.status().as_u16();
        let problem: Value = res.json().await.expect("json");
        assert_eq!(status, 422, "{fields:?}: {problem}");
        let (f, message) = first_error(&problem);
        assert_eq!(f, field, "{fields:?}: {problem}");
        assert!(message.contains(says), "{fields:?}: {message}");
    }
    let (x, y) = bars(4, 5);
    let res = app
        .upload(
            "/v1/datasets",
            "x.npz",
            npz(&x, &y),
            &[("input_shape", "8,1,8")],
        )
        .await;
    assert_eq!(res.status(), 422);
    let problem: Value = res.json().await.expect("json");
    assert_eq!(problem_fields(&problem), ["input_shape"], "{problem}");
    // Nothing was kept of the refused uploads.
    let list: Value = app.get("/v1/datasets").await.json().await.expect("json");
    assert_eq!(list["items"].as_array().map(Vec::len), Some(0), "{list}");
}

#[tokio::test]
async fn malformed_convolutional_architectures_name_the_layer_and_the_shapes() {
    let app = spawn_app().await;
    let head = json!([{"type": "flatten"}, {"type": "dense", "units": 2, "activation": "softmax"}]);
    let with = |first: Value| {
        let mut layers = vec![first];
        layers.extend(head.as_array().expect("head").iter().cloned());
        json!({"input_shape": [3, 6, 6], "layers": layers})
    };
    let cases = [
        (
            with(json!({"type": "conv2d", "filters": 2, "kernel_size": 7})),
            "architecture.layers[0].kernel_size",
            "[3, 6, 6]",
        ),
        (
            with(json!({"type": "conv2d", "filters": 2, "kernel_size": 3, "strides": 0})),
            "architecture.layers[0].strides",
            "",
        ),
        (
            with(json!({"type": "conv2d", "filters": 4, "kernel_size": 3, "groups": 2})),
            "architecture.layers[0].groups",
            "",
        ),
        (
            with(json!({"type": "max_pool2d", "pool_size": 9})),
            "architecture.layers[0].pool_size",
            "a [9, 9] window does not fit",
        ),
        (
            json!({"input_shape": [3, 6, 6], "layers": [{"type": "dense", "units": 2}]}),
            "architecture.layers[0]",
            "flatten",
        ),
        (
            json!({"input_shape": [1, 6, 6], "layers": [
                {"type": "conv2d", "filters": 2, "kernel_size": 3, "activation": "relu"},
                {"type": "batch_norm"}, {"type": "flatten"}, {"type": "dense", "units": 1}]}),
            "architecture.layers[1]",
            "folded",
        ),
        (
            json!({"input_shape": [1, 28], "layers": [{"type": "dense", "units": 1}]}),
            "architecture.input_shape",
            "",
        ),
        (
            with(json!({"type": "conv2d", "filters": 2, "kernel_size": 3, "rate": 0.5})),
            "architecture.layers[0]",
            "does not take `rate`",
        ),
    ];
    for (architecture, field, says) in cases {
        let (status, problem) = post_model(&app, architecture.clone()).await;
        assert_eq!(status, 422, "{architecture} → {problem}");
        let fields = problem_fields(&problem);
        assert!(
            fields.iter().any(|f| f == field),
            "{architecture}: expected {field} in {problem}"
        );
        let text = problem.to_string();
        assert!(text.contains(says), "{architecture}: {problem}");
    }
}
