//! ONNX and Keras through the HTTP API: a model downloaded as ONNX uploads again to the
//! same predictions; an imported model keeps its graph names through a job and exports
//! them back; every class of malformed ONNX or Keras file is a 422 naming the node or layer.
//! (The comparisons with ONNX Runtime, scikit-learn and Keras themselves run in
//! `scripts/interop`, which needs Python; these need nothing outside the repository.)

use std::io::Write;

use kiln::formats::onnx::proto::{ModelProto, TensorProto};
use prost::Message;
use serde_json::{Value, json};

use crate::helpers::{TestApp, id, mlp, spawn_app};

async fn upload_model(app: &TestApp, filename: &str, bytes: Vec<u8>) -> (u16, Value) {
    let res = app.upload("/v1/models", filename, bytes, &[]).await;
    let status = res.status().as_u16();
    (status, res.json().await.expect("json body"))
}

async fn download_onnx(app: &TestApp, model: &str) -> ModelProto {
    let res = app
        .get(&format!("/v1/models/{model}/download?format=onnx"))
        .await;
    assert_eq!(res.status(), 200);
    let disposition = res.headers()["content-disposition"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(disposition.ends_with(".onnx\""), "{disposition}");
    let bytes = res.bytes().await.expect("body");
    ModelProto::decode(bytes.as_ref()).expect("kiln's export decodes")
}

/// Every message of a 422 problem, in one string.
fn problem_text(body: &Value) -> String {
    let mut text = body["detail"].as_str().unwrap_or_default().to_string();
    for e in body["errors"].as_array().into_iter().flatten() {
        text.push(' ');
        text.push_str(e["message"].as_str().unwrap_or_default());
    }
    text
}

fn rows(n: usize, width: usize) -> Value {
    json!(
        (0..n)
            .map(|i| (0..width)
                .map(|j| ((i * 7 + j * 3) % 11) as f32 / 5.0 - 1.0)
                .collect::<Vec<_>>())
            .collect::<Vec<_>>()
    )
}

fn max_abs_diff(a: &Value, b: &Value) -> f64 {
    let flat = |v: &Value| -> Vec<f64> {
        v.as_array()
            .expect("rows")
            .iter()
            .flat_map(|r| {
                r.as_array()
                    .expect("row")
                    .iter()
                    .map(|x| x.as_f64().expect("number"))
            })
            .collect()
    };
    let (a, b) = (flat(a), flat(b));
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// A trained 6-16-1 sigmoid model and its (binary) training set: `(model, dataset)` ids.
async fn trained(app: &TestApp) -> (String, String) {
    let (train, _test, model) = app
        .trained_fixture(300, 6, 5, mlp(6, 16, 1, "sigmoid"))
        .await;
    (model, train)
}

#[tokio::test]
async fn a_model_downloaded_as_onnx_uploads_again_with_the_same_predictions() {
    let app = spawn_app().await;
    let (model, _) = trained(&app).await;
    let graph = download_onnx(&app, &model).await;
    assert_eq!(graph.producer_name(), "kiln");
    let (status, again) = upload_model(&app, "again.onnx", graph.encode_to_vec()).await;
    assert_eq!(status, 201, "{again}");
    assert_eq!(again["name"], "again");
    assert_eq!(again["source"]["format"], "onnx");
    assert_eq!(again["source"]["producer_name"], "kiln");
    assert_eq!(again["trained"], true);
    let x = rows(20, 6);
    let d = max_abs_diff(
        &app.predict(&model, &x).await,
        &app.predict(&id(&again), &x).await,
    );
    assert!(d <= 1e-6, "max abs diff {d}");
}

#[tokio::test]
async fn an_imported_model_keeps_its_graph_names_through_quantization_and_exports_them_as_qdq() {
    let app = spawn_app().await;
    let (model, train) = trained(&app).await;
    let mut graph = download_onnx(&app, &model).await;
    rename_io(&mut graph, "pixels", "class_probabilities");
    let (status, imported) = upload_model(&app, "named.onnx", graph.encode_to_vec()).await;
    assert_eq!(status, 201, "{imported}");
    assert_eq!(imported["source"]["input_name"], "pixels");
    assert_eq!(imported["source"]["output_name"], "class_probabilities");

    let done = app
        .run_job(
            json!({"kind": "quantize", "model": id(&imported), "dataset": train,
            "params": {"mode": "static", "granularity": "per_channel"}}),
        )
        .await;
    let quantized = done["result"]["model_id"].as_str().expect("model id");
    let view: Value = app
        .get(&format!("/v1/models/{quantized}"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(view["dtype"], "int8");
    assert_eq!(
        view["source"], imported["source"],
        "a derived model keeps its source"
    );

    let exported = download_onnx(&app, quantized).await;
    let g = exported.graph.as_ref().expect("graph");
    assert_eq!(
        g.input.iter().map(|i| i.name()).collect::<Vec<_>>(),
        ["pixels"]
    );
    assert_eq!(
        g.output.iter().map(|o| o.name()).collect::<Vec<_>>(),
        ["class_probabilities"]
    );
    let ops: Vec<&str> = g.node.iter().map(|n| n.op_type()).collect();
    for op in ["QuantizeLinear", "DequantizeLinear", "MatMul"] {
        assert!(ops.contains(&op), "{op} missing from {ops:?}");
    }
}

/// Renames the graph's input and output everywhere they are used.
fn rename_io(model: &mut ModelProto, input: &str, output: &str) {
    let g = model.graph.as_mut().expect("graph");
    let old_in = g.input[0].name().to_string();
    let old_out = g.output[0].name().to_string();
    g.input[0].name = Some(input.into());
    g.output[0].name = Some(output.into());
    for n in &mut g.node {
        for name in n.input.iter_mut().chain(n.output.iter_mut()) {
            if *name == old_in {
                *name = input.into();
            } else if *name == old_out {
                *name = output.into();
            }
        }
    }
}

/// The first float initializer with two dimensions (a weight) and its index.
fn first_weight(g: &kiln::formats::onnx::proto::GraphProto) -> usize {
    g.initializer
        .iter()
        .position(|t| t.dims.len() == 2)
        .expect("a weight initializer")
}

fn set_floats(t: &mut TensorProto, dims: Vec<i64>, values: &[f32]) {
    t.dims = dims;
    t.float_data.clear();
    t.raw_data = Some(values.iter().flat_map(|v| v.to_le_bytes()).collect());
}

#[tokio::test]
async fn malformed_onnx_files_are_rejected_naming_the_node_and_why() {
    let app = spawn_app().await;
    let model = app.create_model(mlp(4, 3, 2, "softmax")).await;
    let good = download_onnx(&app, &id(&model)).await;
    let bytes = good.encode_to_vec();

    type Break = fn(&mut ModelProto);
    let cases: Vec<(&str, Vec<u8>, Vec<String>)> = {
        let broken = |f: Break| {
            let mut m = good.clone();
            f(&mut m);
            m.encode_to_vec()
        };
        let g = good.graph.as_ref().expect("graph");
        let first = g.node[0].name().to_string();
        // The last dense node, which reads the weight the shape case breaks.
        let last_dense = g
            .node
            .iter()
            .rev()
            .find(|n| matches!(n.op_type(), "Gemm" | "MatMul"))
            .map(|n| n.name().to_string())
            .expect("a dense node");
        let w = g.initializer[first_weight(g)].name().to_string();
        vec![
            (
                "a truncated protobuf",
                bytes[..bytes.len() / 2].to_vec(),
                vec!["truncated".into()],
            ),
            (
                "an unsupported op",
                broken(|m| {
                    let g = m.graph.as_mut().expect("graph");
                    g.node[0].op_type = Some("Conv".into());
                }),
                vec![first.clone(), "Conv".into()],
            ),
            (
                "a cycle",
                broken(|m| {
                    // The second node reads the last one's output: a loop after the first layer.
                    let g = m.graph.as_mut().expect("graph");
                    let out = g.node[g.node.len() - 1].output[0].clone();
                    g.node[1].input[0] = out;
                }),
                vec!["cycle".into()],
            ),
            (
                "a shape that does not chain",
                broken(|m| {
                    let g = m.graph.as_mut().expect("graph");
                    let i = g
                        .initializer
                        .iter()
                        .rposition(|t| t.dims.len() == 2)
                        .expect("weight");
                    set_floats(&mut g.initializer[i], vec![5, 2], &[0.5; 10]);
                }),
                vec![last_dense.clone(), "5 input features".into()],
            ),
            (
                "weights of the wrong length",
                broken(|m| {
                    let g = m.graph.as_mut().expect("graph");
                    let i = first_weight(g);
                    set_floats(&mut g.initializer[i], vec![4, 3], &[0.5; 11]);
                }),
                vec![w.clone()],
            ),
            (
                "a tensor claiming 2 GB in a small file",
                broken(|m| {
                    let g = m.graph.as_mut().expect("graph");
                    let i = first_weight(g);
                    g.initializer[i].dims = vec![4, 134_217_728];
                }),
                vec![w.clone()],
            ),
            (
                "an opset older than 11",
                broken(|m| {
                    for o in &mut m.opset_import {
                        o.version = Some(9);
                    }
                }),
                vec!["opset".into()],
            ),
            (
                "bytes that are no model at all",
                b"hello, this is not a model file at all".to_vec(),
                vec!["not a model file".into()],
            ),
        ]
    };
    for (what, file, phrases) in cases {
        let (status, body) = upload_model(&app, "bad.onnx", file).await;
        assert_eq!(status, 422, "{what}: {body}");
        assert_eq!(body["status"], 422, "{what}: {body}");
        let text = problem_text(&body);
        for p in &phrases {
            assert!(
                text.to_lowercase().contains(&p.to_lowercase()),
                "{what}: `{p}` not in {text}"
            );
        }
    }
    // Nothing was stored for any of them.
    let list: Value = app.get("/v1/models").await.json().await.expect("json");
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
}

/// A zip of `entries` (stored, as `zipfile` writes by default).
fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    {
        let mut z = zip::ZipWriter::new(&mut out);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        for (name, data) in entries {
            z.start_file(*name, opts).expect("entry");
            z.write_all(data).expect("write");
        }
        z.finish().expect("zip");
    }
    out.into_inner()
}

const KERAS_METADATA: &[u8] =
    br#"{"keras_version": "3.15.1", "date_saved": "2026-12-03@09:00:00"}"#;

fn keras_config(layer_class: &str, layer_config: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "module": "keras", "class_name": "Sequential",
        "config": {"name": "sequential", "layers": [
            {"module": "keras.layers", "class_name": "InputLayer",
             "config": {"batch_shape": [null, 4], "dtype": "float32", "name": "input_layer"}},
            {"module": "keras.layers", "class_name": layer_class, "config": layer_config}
        ]}
    }))
    .expect("json")
}

#[tokio::test]
async fn malformed_keras_files_are_rejected_naming_the_layer_and_why() {
    let app = spawn_app().await;
    let dense = keras_config(
        "Dense",
        json!({"name": "dense", "units": 2, "activation": "relu", "use_bias": true}),
    );
    let conv = keras_config(
        "Conv2D",
        json!({"name": "conv", "filters": 2, "kernel_size": [3, 3]}),
    );
    let cases: Vec<(&str, Vec<u8>, Vec<&str>)> = vec![
        (
            "a .keras zip without weights",
            zip_of(&[("metadata.json", KERAS_METADATA), ("config.json", &dense)]),
            vec!["model.weights.h5"],
        ),
        (
            "a Keras layer kiln does not support",
            zip_of(&[
                ("metadata.json", KERAS_METADATA),
                ("config.json", &conv),
                ("model.weights.h5", b"not read: the layer is refused first"),
            ]),
            vec!["conv", "Conv2D"],
        ),
        (
            "a config.json that is not JSON",
            zip_of(&[
                ("metadata.json", KERAS_METADATA),
                ("config.json", b"{not json"),
                ("model.weights.h5", b""),
            ]),
            vec!["config.json"],
        ),
        (
            "a truncated zip",
            zip_of(&[("metadata.json", KERAS_METADATA), ("config.json", &dense)])[..40].to_vec(),
            vec![],
        ),
    ];
    for (what, file, phrases) in cases {
        let (status, body) = upload_model(&app, "bad.keras", file).await;
        assert_eq!(status, 422, "{what}: {body}");
        let text = problem_text(&body);
        for p in phrases {
            assert!(text.contains(p), "{what}: `{p}` not in {text}");
        }
    }
}
