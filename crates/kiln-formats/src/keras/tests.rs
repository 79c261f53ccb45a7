//! Fixtures written by Keras itself (`scripts/keras_fixtures.py`): kiln must reproduce
//! `model.predict` within 1e-5 and refuse what it cannot import, naming why.

use std::io::{Cursor, Read, Write};

use ndarray::Array2;
use serde_json::{Value, json};

use super::import;
use crate::source::Source;
use kiln_nn::data::Task;
use kiln_nn::spec::{Activation, Architecture, ArchitectureLimits, LayerSpec};

const SEQUENTIAL: &[u8] = include_bytes!("../../tests/fixtures/keras/sequential.keras");
const SEQUENTIAL_IO: &str = include_str!("../../tests/fixtures/keras/sequential.json");
const FUNCTIONAL: &[u8] = include_bytes!("../../tests/fixtures/keras/functional.keras");
const FUNCTIONAL_IO: &str = include_str!("../../tests/fixtures/keras/functional.json");
const DEFLATED: &[u8] = include_bytes!("../../tests/fixtures/keras/deflated.keras");
const CONV: &[u8] = include_bytes!("../../tests/fixtures/keras/conv.keras");
const RESIDUAL: &[u8] = include_bytes!("../../tests/fixtures/keras/residual.keras");
const WRONG_SHAPE: &[u8] = include_bytes!("../../tests/fixtures/keras/wrong_shape.keras");

fn limits() -> ArchitectureLimits {
    ArchitectureLimits::default()
}

fn matrix(v: &Value) -> Array2<f32> {
    let rows: Vec<Vec<f32>> = serde_json::from_value(v.clone()).expect("rows");
    let width = rows[0].len();
    Array2::from_shape_vec((rows.len(), width), rows.into_iter().flatten().collect())
        .expect("rectangular")
}

/// Keras' outputs for the fixture's inputs against kiln's.
fn assert_predicts_like_keras(file: &crate::model_file::ModelFile, io: &str) {
    let io: Value = serde_json::from_str(io).expect("fixture json");
    let (x, want) = (matrix(&io["inputs"]), matrix(&io["outputs"]));
    let got = file.model.predict(x.view());
    assert_eq!(got.dim(), want.dim());
    let worst = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 1e-5, "max |kiln - keras| = {worst}");
}

/// The text of an import's refusal.
fn refusal(bytes: &[u8]) -> String {
    let e = import(bytes, &limits()).expect_err("refused");
    assert!(e.0.iter().all(|f| f.field == "file"), "{e}");
    e.to_string()
}

fn assert_mentions(text: &str, phrases: &[&str]) {
    for p in phrases {
        assert!(text.contains(p), "`{p}` not in: {text}");
    }
}

/// The entries of a zip, by name, in order.
fn entries(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).expect("zip");
    (0..zip.len())
        .map(|i| {
            let mut f = zip.by_index(i).expect("entry");
            let mut data = Vec::new();
            f.read_to_end(&mut data).expect("read");
            (f.name().to_string(), data)
        })
        .collect()
}

fn zip_of(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    let mut z = zip::ZipWriter::new(&mut out);
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, data) in entries {
        z.start_file(name.as_str(), opts).expect("entry");
        z.write_all(data).expect("write");
    }
    z.finish().expect("zip");
    out.into_inner()
}

/// `keras` with its config.json passed through `edit`.
fn with_config(keras: &[u8], edit: impl Fn(&mut Value)) -> Vec<u8> {
    let mut files = entries(keras);
    for (name, data) in &mut files {
        if name == "config.json" {
            let mut config: Value = serde_json::from_slice(data).expect("config");
            edit(&mut config);
            *data = serde_json::to_vec(&config).expect("json");
        }
    }
    zip_of(&files)
}

fn dense(units: usize, activation: Activation, use_bias: bool) -> LayerSpec {
    LayerSpec::Dense {
        units,
        activation,
        use_bias,
    }
}

#[test]
fn the_source_documents_sequential_model_predicts_as_keras_does() {
    let file = import(SEQUENTIAL, &limits()).expect("imports");
    assert_eq!(
        file.meta.architecture,
        Architecture {
            input_dim: 100,
            input_shape: None,
            layers: vec![
                dense(64, Activation::Relu, true),
                dense(32, Activation::Relu, true),
                dense(1, Activation::Sigmoid, true),
            ],
        }
    );
    assert!(file.meta.trained);
    assert_eq!(file.meta.task, Some(Task::Binary));
    let source = Source::read(&file.meta).expect("source recorded");
    assert_eq!(source.format, "keras");
    assert_eq!(source.input_name, "input_layer");
    assert_eq!(source.output_name, "dense_2");
    assert_eq!(source.producer_name.as_deref(), Some("keras"));
    assert_eq!(source.producer_version.as_deref(), Some("3.15.1"));
    assert_eq!((source.opset, source.ir_version), (None, None));
    assert_predicts_like_keras(&file, SEQUENTIAL_IO);
}

#[test]
fn a_functional_chain_keeps_dropout_and_folds_its_activation_layer() {
    let file = import(FUNCTIONAL, &limits()).expect("imports");
    assert_eq!(
        file.meta.architecture,
        Architecture {
            input_dim: 6,
            input_shape: None,
            layers: vec![
                dense(16, Activation::Tanh, true),
                LayerSpec::Dropout { rate: 0.25 },
                dense(8, Activation::GeluErf, false),
                dense(3, Activation::Softmax, true),
            ],
        }
    );
    assert_eq!(file.meta.task, Some(Task::Multiclass));
    let source = Source::read(&file.meta).expect("source recorded");
    assert_eq!(source.input_name, "features");
    assert_eq!(source.output_name, "probabilities");
    assert_eq!(
        source.notes,
        [
            "Flatten layer \"flat\" dropped: its input is already flat",
            "Activation layer \"hidden_tanh\" folded into Dense \"hidden\"",
        ]
    );
    assert_predicts_like_keras(&file, FUNCTIONAL_IO);
}

#[test]
fn a_deflated_zip_reads_like_a_stored_one() {
    let file = import(DEFLATED, &limits()).expect("imports");
    assert_predicts_like_keras(&file, FUNCTIONAL_IO);
}

#[test]
fn a_sequential_model_without_input_layer_takes_its_build_shape() {
    let keras = with_config(SEQUENTIAL, |c| {
        let layers = c["config"]["layers"].as_array_mut().expect("layers");
        layers.remove(0);
    });
    let file = import(&keras, &limits()).expect("imports");
    assert_eq!(file.meta.architecture.input_dim, 100);
    assert_predicts_like_keras(&file, SEQUENTIAL_IO);
}

#[test]
fn a_convolution_is_refused_by_layer_name_and_class() {
    assert_mentions(
        &refusal(CONV),
        &["layer \"conv\" (Conv2D): kiln imports dense networks"],
    );
}

#[test]
fn a_graph_that_is_not_a_chain_is_refused_naming_the_merge() {
    assert_mentions(
        &refusal(RESIDUAL),
        &["layer \"skip\" (Add)", "reads [\"x\", \"a\"]", "chain"],
    );
}

#[test]
fn a_kernel_of_the_wrong_shape_is_refused_naming_the_layer() {
    assert_mentions(
        &refusal(WRONG_SHAPE),
        &[
            "model.weights.h5",
            "\"dense_1\" (Dense)",
            "[64, 31]",
            "[64, 32]",
        ],
    );
}

#[test]
fn missing_entries_and_bad_json_are_named() {
    let files = entries(SEQUENTIAL);
    let without = |gone: &str| {
        zip_of(
            &files
                .iter()
                .filter(|(n, _)| n != gone)
                .cloned()
                .collect::<Vec<_>>(),
        )
    };
    assert_mentions(
        &refusal(&without("model.weights.h5")),
        &["model.weights.h5"],
    );
    assert_mentions(&refusal(&without("config.json")), &["config.json"]);
    // metadata.json only gives the version.
    let file = import(&without("metadata.json"), &limits()).expect("imports");
    assert_eq!(
        Source::read(&file.meta).and_then(|s| s.producer_version),
        None
    );

    let mut bad = files.clone();
    for (name, data) in &mut bad {
        if name == "config.json" {
            *data = b"{not json".to_vec();
        }
    }
    assert_mentions(&refusal(&zip_of(&bad)), &["config.json"]);

    let mut garbage = files;
    for (name, data) in &mut garbage {
        if name == "model.weights.h5" {
            *data = b"not hdf5".to_vec();
        }
    }
    assert_mentions(&refusal(&zip_of(&garbage)), &["model.weights.h5", "HDF5"]);
}

#[test]
fn layer_options_kiln_lacks_are_refused_with_the_reason() {
    type Edit = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(Edit, Vec<&str>)> = vec![
        (
            Box::new(|c| c["config"]["layers"][1]["config"]["activation"] = json!("elu")),
            vec!["layer \"dense\" (Dense)", "\"elu\""],
        ),
        (
            Box::new(|c| c["config"]["layers"][1]["config"]["activation"] = json!("leaky_relu")),
            vec!["layer \"dense\" (Dense)", "0.2", "0.01"],
        ),
        (
            Box::new(|c| {
                c["config"]["layers"][2]["config"]["dtype"] =
                    json!({"class_name": "DTypePolicy", "config": {"name": "mixed_float16"}})
            }),
            vec!["layer \"dense_1\" (Dense)", "mixed_float16", "float32"],
        ),
        (
            Box::new(|c| c["config"]["layers"][0]["config"]["batch_shape"] = json!([null, 10, 10])),
            vec![
                "layer \"dense\" (Dense)",
                "[null,10,10]",
                "without a Flatten",
            ],
        ),
        (
            Box::new(|c| {
                let mut act = c["config"]["layers"][1]["config"].clone();
                act["name"] = json!("act");
                act["activation"] = json!("tanh");
                let entry =
                    json!({"module": "keras.layers", "class_name": "Activation", "config": act});
                c["config"]["layers"]
                    .as_array_mut()
                    .expect("layers")
                    .insert(2, entry);
            }),
            vec![
                "layer \"act\" (Activation)",
                "one activation per Dense layer",
            ],
        ),
        (
            Box::new(|c| c["config"]["layers"][1]["module"] = json!("my_package")),
            vec!["layer \"dense\" (Dense)", "custom layer"],
        ),
        (
            Box::new(|c| c["config"]["layers"][1]["config"]["units"] = json!("many")),
            vec!["config.json", "layer \"dense\" (Dense)"],
        ),
        (
            Box::new(|c| c["class_name"] = json!("MyModel")),
            vec!["config.json", "MyModel"],
        ),
    ];
    for (edit, phrases) in cases {
        let keras = with_config(SEQUENTIAL, edit);
        assert_mentions(&refusal(&keras), &phrases);
    }
}

#[test]
fn architecture_limits_name_the_keras_layer() {
    let tight = ArchitectureLimits {
        max_units: 50,
        ..limits()
    };
    let e = import(SEQUENTIAL, &tight)
        .expect_err("over the limit")
        .to_string();
    assert_mentions(&e, &["layer \"dense\" (Dense)", "units", "50"]);
}

#[test]
fn truncated_and_corrupted_files_are_refused_without_panicking() {
    assert!(refusal(&SEQUENTIAL[..40]).contains("zip"));
    for cut in (0..SEQUENTIAL.len()).step_by(997) {
        assert!(
            import(&SEQUENTIAL[..cut], &limits()).is_err(),
            "cut at {cut}"
        );
    }
    // Flipped bytes inside the HDF5 entry (stored, so at the same offsets): errors or a model.
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    for _ in 0..300 {
        let mut bytes = FUNCTIONAL.to_vec();
        for _ in 0..3 {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let i = (seed >> 33) as usize % bytes.len();
            bytes[i] = (seed >> 17) as u8;
        }
        let _ = import(&bytes, &limits());
    }
}

/// The sequential fixture with Dense `dense_at`'s activation moved into a layer of `class`.
fn activation_layer_after(dense_at: usize, class: &str, config: Value) -> Vec<u8> {
    with_config(SEQUENTIAL, |c| {
        c["config"]["layers"][dense_at]["config"]["activation"] = json!("linear");
        let mut cfg = config.clone();
        cfg["name"] = json!(format!("{}_layer", class.to_lowercase()));
        let entry = json!({"module": "keras.layers", "class_name": class, "config": cfg});
        c["config"]["layers"]
            .as_array_mut()
            .expect("layers")
            .insert(dense_at + 1, entry);
    })
}

#[test]
fn relu_layers_fold_into_the_dense_before_them_and_variants_kiln_lacks_are_refused() {
    let relu = activation_layer_after(
        1,
        "ReLU",
        json!({"max_value": null, "negative_slope": 0.0, "threshold": 0.0}),
    );
    let file = import(&relu, &limits()).expect("imports");
    assert_eq!(
        file.meta.architecture.layers[0],
        dense(64, Activation::Relu, true)
    );
    assert_predicts_like_keras(&file, SEQUENTIAL_IO);
    let notes = Source::read(&file.meta).expect("source").notes.join(" | ");
    assert!(
        notes.contains("ReLU layer \"relu_layer\" folded into Dense"),
        "{notes}"
    );

    for (class, config, phrases) in [
        (
            "ReLU",
            json!({"max_value": 4.0}),
            vec!["layer \"relu_layer\" (ReLU)", "max_value other than 6"],
        ),
        (
            "LeakyReLU",
            json!({"negative_slope": 0.3}),
            vec!["(LeakyReLU)", "0.3", "0.01"],
        ),
        ("Softmax", json!({"axis": 0}), vec!["(Softmax)", "axis 0"]),
    ] {
        assert_mentions(
            &refusal(&activation_layer_after(1, class, config)),
            &phrases,
        );
    }
    let relu6 = activation_layer_after(1, "ReLU", json!({"max_value": 6.0}));
    let file = import(&relu6, &limits()).expect("ReLU(max_value=6) is kiln's relu6");
    assert_eq!(
        file.meta.architecture.layers[0],
        dense(64, Activation::Relu6, true)
    );
    let leaky = activation_layer_after(1, "LeakyReLU", json!({"negative_slope": 0.01}));
    let file = import(&leaky, &limits()).expect("a 0.01 slope is kiln's leaky_relu");
    assert_eq!(
        file.meta.architecture.layers[0],
        dense(64, Activation::LeakyRelu, true)
    );
}
