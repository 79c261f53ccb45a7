//! The importer against graphs built here the way converters write them (torch's Gemm and
//! MatMul + Add, its Erf GELU, skl2onnx's classifier tails): every accepted graph is run by
//! the reference interpreter and must predict what kiln's imported network predicts; every
//! refused one must name the node, its op and why.

mod build;
mod images;
mod refused;

use ndarray::{Array2, array};

use super::import;
use crate::onnx::interpret::{self, Value, max_abs_diff};
use crate::onnx::proto::ModelProto;
use crate::onnx::proto::tensor_proto::DataType;
use crate::source::Source;
use build::*;
use kiln_nn::data::Task;
use kiln_nn::spec::{Activation, ArchitectureLimits, LayerSpec};

fn imported(m: &ModelProto) -> crate::model_file::ModelFile {
    import(&encode(m), &ArchitectureLimits::default()).unwrap_or_else(|e| panic!("{e:?}"))
}

/// The graph's single float output as the interpreter computes it on `x`.
fn reference(m: &ModelProto, output: &str, x: &Array2<f32>) -> Array2<f32> {
    let input = m.graph.as_ref().expect("graph").input[0].name().to_string();
    let mut outs = interpret::run(m, &[(&input, Value::matrix(DataType::Float, x))])
        .expect("the interpreter runs the graph");
    outs.remove(output)
        .expect("output")
        .to_matrix()
        .expect("matrix")
}

fn activations(file: &crate::model_file::ModelFile) -> Vec<(usize, Activation, bool)> {
    file.model
        .architecture()
        .layers
        .iter()
        .filter_map(|l| match l {
            LayerSpec::Dense {
                units,
                activation,
                use_bias,
            } => Some((*units, *activation, *use_bias)),
            _ => None,
        })
        .collect()
}

#[test]
fn gemm_with_trans_b_alpha_and_beta_computes_the_hand_computed_values() {
    // y = relu(2 · x·Bᵀ + 0.5 · c), B is [out 2, in 3].
    let b = [1.0, -1.0, 0.5, 0.0, 2.0, -3.0];
    let c = [4.0, -2.0];
    let m = model(
        vec![
            node(
                "Gemm",
                "fc",
                &["x", "B", "C"],
                &["z"],
                vec![int("transB", 1), float("alpha", 2.0), float("beta", 0.5)],
            ),
            node("Relu", "act", &["z"], &["y"], vec![]),
        ],
        vec![floats("B", &[2, 3], &b, true), floats("C", &[2], &c, false)],
        input("x", 3),
        &["y"],
    );
    let file = imported(&m);
    let x = array![[1.0f32, 2.0, 3.0], [-1.0, 0.0, 1.0]];
    // Row 1: x·B0 = 1 - 2 + 1.5 = 0.5 → 2·0.5 + 2 = 3; x·B1 = 0 + 4 - 9 = -5 → -10 - 1 → 0.
    // Row 2: x·B0 = -1 + 0 + 0.5 = -0.5 → -1 + 2 = 1; x·B1 = 0 + 0 - 3 → -6 - 1 → 0.
    let expected = array![[3.0f32, 0.0], [1.0, 0.0]];
    assert!(max_abs_diff(&file.model.predict(x.view()), &expected) < 1e-6);
    assert_eq!(activations(&file), vec![(2, Activation::Relu, true)]);
    assert!(max_abs_diff(&reference(&m, "y", &x), &expected) < 1e-6);
}

#[test]
fn a_torch_style_matmul_add_network_keeps_its_names_producer_and_opset() {
    let (m, x) = torch_mlp();
    let file = imported(&m);
    assert!(max_abs_diff(&file.model.predict(x.view()), &reference(&m, "probs", &x)) < 1e-6);
    assert_eq!(
        activations(&file),
        vec![
            (5, Activation::Tanh, true),
            (4, Activation::LeakyRelu, false),
            (3, Activation::Softmax, true)
        ]
    );
    assert_eq!(file.meta.task, Some(Task::Multiclass));
    assert!(file.meta.trained);
    let source = Source::read(&file.meta).expect("source recorded");
    assert_eq!(source.format, "onnx");
    assert_eq!(source.input_name, "features");
    assert_eq!(source.output_name, "probs");
    assert_eq!(source.producer_name.as_deref(), Some("pytorch"));
    assert_eq!(source.producer_version.as_deref(), Some("2.9.0"));
    assert_eq!(source.opset, Some(17));
    assert_eq!(source.ir_version, Some(8));
}

#[test]
fn identity_dropout_flatten_reshape_and_constants_leave_no_layer_behind() {
    let w = pattern(6, 2, 0.3);
    let m = model(
        vec![
            node("Flatten", "flat", &["img"], &["f"], vec![int("axis", 1)]),
            node(
                "Constant",
                "shape",
                &[],
                &["s"],
                vec![tensor_attr("value", ints("", &[2], &[-1, 6]))],
            ),
            node("Reshape", "again", &["f", "s"], &["r"], vec![]),
            node("Identity", "id", &["r"], &["i"], vec![]),
            node("Dropout", "drop", &["i", "ratio"], &["d"], vec![]),
            node("MatMul", "mm", &["d", "W"], &["z"], vec![]),
            node(
                "Constant",
                "bias",
                &[],
                &["b"],
                vec![tensor_attr(
                    "value",
                    floats("", &[1, 2], &[0.1, -0.2], false),
                )],
            ),
            node("Add", "add", &["b", "z"], &["y"], vec![]),
            node("Sigmoid", "sig", &["y"], &["p"], vec![]),
        ],
        vec![
            floats("W", &[6, 2], w.as_slice().unwrap_or(&[]), true),
            floats("ratio", &[], &[0.5], false),
        ],
        input_dims("img", &[None, Some(2), Some(3)]),
        &["p"],
    );
    let file = imported(&m);
    assert_eq!(file.model.input_dim(), 6);
    assert_eq!(activations(&file), vec![(2, Activation::Sigmoid, true)]);
    let x = pattern(4, 6, 0.7);
    let got = file.model.predict(x.view());
    let linear = x.dot(&w) + array![[0.1f32, -0.2]];
    let expected = linear.mapv(|v| 1.0 / (1.0 + (-v).exp()));
    assert!(max_abs_diff(&got, &expected) < 1e-6);
}

#[test]
fn both_gelu_forms_and_the_erf_decomposition_are_read_exactly() {
    for form in [
        "erf_mul_first",
        "erf_half_first",
        "erf_half_last",
        "gelu_none",
        "gelu_tanh",
    ] {
        let (m, x) = gelu_network(form);
        let file = imported(&m);
        let want = if form == "gelu_tanh" {
            Activation::Gelu
        } else {
            Activation::GeluErf
        };
        assert_eq!(activations(&file)[0].1, want, "{form}");
        let diff = max_abs_diff(&file.model.predict(x.view()), &reference(&m, "y", &x));
        assert!(diff < 1e-5, "{form}: {diff}");
    }
}

/// Gemm(x[N,3], W[3,4], b) then `Clip(min, max)`, the bounds as inputs (opset 13);
/// `None` leaves a bound out (an empty input name).
fn clipped(lo: Option<f32>, hi: Option<f32>) -> ModelProto {
    let w = pattern(3, 4, 1.4);
    let mut inits = vec![
        floats("W", &[3, 4], &flat(&w), true),
        floats("b", &[4], &[2.5, -0.2, 0.0, 4.0], true),
    ];
    let mut names = vec!["z".to_string()];
    for (role, bound) in [("lo", lo), ("hi", hi)] {
        match bound {
            Some(v) => {
                inits.push(floats(role, &[], &[v], false));
                names.push(role.to_string());
            }
            None => names.push(String::new()),
        }
    }
    let inputs: Vec<&str> = names.iter().map(String::as_str).collect();
    let clip = node("Clip", "clip", &inputs, &["y"], vec![]);
    let gemm = node("Gemm", "fc", &["x", "W", "b"], &["z"], vec![]);
    let mut m = model(vec![gemm, clip], inits, input("x", 3), &["y"]);
    set_versions(&mut m, 13, 7);
    m
}

#[test]
fn clip_zero_six_is_relu6_and_clip_zero_is_relu() {
    let x = pattern(9, 3, 3.0);
    for (hi, want) in [(Some(6.0), Activation::Relu6), (None, Activation::Relu)] {
        let m = clipped(Some(0.0), hi);
        let file = imported(&m);
        assert_eq!(activations(&file)[0].1, want, "max {hi:?}");
        let got = file.model.predict(x.view());
        let diff = max_abs_diff(&got, &reference(&m, "y", &x));
        assert!(diff < 1e-6, "max {hi:?}: {diff}");
        if hi.is_some() {
            // The data reach both bounds, so the clamp is exercised at each end.
            assert!(got.iter().any(|v| *v == 6.0) && got.iter().any(|v| *v == 0.0));
        }
    }
    for (lo, hi) in [
        (Some(-1.0), Some(1.0)),
        (Some(0.0), Some(4.0)),
        (None, Some(6.0)),
    ] {
        let text = match import(&encode(&clipped(lo, hi)), &ArchitectureLimits::default()) {
            Ok(_) => panic!("Clip({lo:?}, {hi:?}) imported"),
            Err(e) => {
                e.0.iter()
                    .map(|f| f.message.clone())
                    .collect::<Vec<_>>()
                    .join("; ")
            }
        };
        assert!(
            text.contains("\"clip\" (Clip)") && text.contains("relu6"),
            "{text}"
        );
    }
}

#[test]
fn skl2onnx_classifier_tails_are_dropped_and_the_probabilities_kept_with_notes() {
    let (m, chain_only) = sklearn_binary();
    let file = imported(&m);
    let x = pattern(5, 4, 0.9);
    let p = reference(&chain_only, "p", &x);
    assert!(max_abs_diff(&file.model.predict(x.view()), &p) < 1e-6);
    assert_eq!(file.meta.task, Some(Task::Binary));
    let source = Source::read(&file.meta).expect("source");
    assert_eq!(source.output_name, "p");
    let notes = source.notes.join(" | ");
    assert!(notes.contains("ZipMap"), "{notes}");
    assert!(notes.contains("output_label"), "{notes}");
    assert!(notes.contains("class labels"), "{notes}");
    assert!(notes.contains("[1−p, p]"), "{notes}");
    assert!(
        notes.contains("DOUBLE"),
        "the cast of the double input is noted: {notes}"
    );
}

#[test]
fn every_supported_opset_and_ir_version_reads_and_a_dynamic_batch_is_normal() {
    for opset in super::MIN_OPSET..=super::MAX_OPSET {
        for ir in [7, 8, 10, 11] {
            let (mut m, x) = torch_mlp();
            set_versions(&mut m, opset, ir);
            let file = imported(&m);
            assert_eq!(file.model.predict(x.view()).dim(), (x.nrows(), 3));
        }
    }
}

#[test]
fn a_kiln_export_imports_back_to_the_same_network() {
    use crate::model_file::{ModelFile, ModelMeta};
    use kiln_nn::Sequential;
    let arch = serde_json::from_value(serde_json::json!({"input_dim": 7, "layers": [
        {"type": "dense", "units": 9, "activation": "relu"},
        {"type": "dense", "units": 8, "activation": "gelu"},
        {"type": "dense", "units": 6, "activation": "gelu_erf", "use_bias": false},
        {"type": "dense", "units": 5, "activation": "leaky_relu"},
        {"type": "dense", "units": 4, "activation": "softmax"}]}))
    .expect("architecture");
    let model = Sequential::new(&arch, 11);
    let file = ModelFile {
        meta: ModelMeta::new(model.architecture().clone()),
        model,
    };
    let bytes = crate::onnx::export(&file).expect("export");
    let back = import(&bytes, &ArchitectureLimits::default()).expect("import");
    assert_eq!(back.model.architecture(), file.model.architecture());
    let x = pattern(6, 7, 0.4);
    let diff = max_abs_diff(&back.model.predict(x.view()), &file.model.predict(x.view()));
    assert!(diff < 1e-6, "{diff}");
    let source = Source::read(&back.meta).expect("source");
    assert_eq!(
        (source.input_name.as_str(), source.output_name.as_str()),
        ("input", "output")
    );
    assert_eq!(source.producer_name.as_deref(), Some("kiln"));
}

#[test]
fn a_transpose_of_a_constant_weight_is_read_as_the_transposed_weight() {
    let w = build::pattern(2, 3, 0.5); // [out 2, in 3], as torch stores Linear weights
    let m = model(
        vec![
            node(
                "Transpose",
                "/fc/Transpose",
                &["fc.weight"],
                &["wt"],
                vec![ints_attr("perm", &[1, 0])],
            ),
            node("MatMul", "/fc/MatMul", &["x", "wt"], &["y"], vec![]),
        ],
        vec![floats(
            "fc.weight",
            &[2, 3],
            &w.iter().copied().collect::<Vec<_>>(),
            true,
        )],
        input("x", 3),
        &["y"],
    );
    let file = imported(&m);
    let x = build::pattern(4, 3, 1.0);
    assert!(max_abs_diff(&file.model.predict(x.view()), &x.dot(&w.t())) < 1e-6);
    assert_eq!(activations(&file), vec![(2, Activation::Linear, false)]);
}

#[test]
fn a_standard_scaler_folds_into_the_first_dense_layer() {
    // skl2onnx's Pipeline(StandardScaler, MLP): Scaler(offset, scale) → MatMul → Add → Relu.
    let w = build::pattern(3, 2, 0.6);
    let (offset, scale) = ([1.0f32, -2.0, 0.5], [0.5f32, 2.0, 4.0]);
    let mut scaler = build::ml_node("Scaler", "Scaler", &["X"], &["scaled"]);
    scaler.attribute = vec![
        build::floats_attr("offset", &offset),
        build::floats_attr("scale", &scale),
    ];
    let m = model(
        vec![
            scaler,
            node("MatMul", "MatMul", &["scaled", "W"], &["z"], vec![]),
            node("Add", "Add", &["z", "b"], &["zb"], vec![]),
            node("Relu", "Relu", &["zb"], &["y"], vec![]),
        ],
        vec![
            floats("W", &[3, 2], &w.iter().copied().collect::<Vec<_>>(), true),
            floats("b", &[2], &[0.1, -0.3], true),
        ],
        input("X", 3),
        &["y"],
    );
    let file = imported(&m);
    let x = build::pattern(5, 3, 2.0);
    let scaled = Array2::from_shape_fn(x.dim(), |(i, j)| (x[[i, j]] - offset[j]) * scale[j]);
    let expected = (scaled.dot(&w) + array![[0.1f32, -0.3]]).mapv(|v| v.max(0.0));
    let diff = max_abs_diff(&file.model.predict(x.view()), &expected);
    assert!(diff < 1e-5, "{diff}");
    let notes = Source::read(&file.meta).expect("source").notes.join(" | ");
    assert!(
        notes.contains("Scaler") && notes.contains("folded"),
        "{notes}"
    );
}
