use ndarray::{Array2, ArrayView2, Axis};
use prost::Message;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

mod images;

use super::super::check::check;
use super::super::interpret::{self, Value, max_abs_diff};
use super::super::proto::tensor_proto::DataType;
use super::super::proto::{ModelProto, NodeProto};
use super::*;
use crate::model_file::{self, ModelMeta};
use kiln_nn::Sequential;
use kiln_nn::data::Task;
use kiln_nn::optimize::quant::calibrate::CalibrationMethod;
use kiln_nn::optimize::quant::qmodel::{QuantMode, QuantizedModel};
use kiln_nn::optimize::quant::scheme::{Granularity, Scheme};

fn arch(v: serde_json::Value) -> Architecture {
    serde_json::from_value(v).expect("architecture parses")
}

fn uniform(rows: usize, cols: usize, lo: f32, hi: f32, seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_fn((rows, cols), |_| rng.random_range(lo..hi))
}

/// A network with Glorot weights and non-zero biases, as training leaves it.
fn trained_like(a: &Architecture, seed: u64) -> Sequential {
    let mut model = Sequential::new(a, seed);
    let mut rng = ChaCha8Rng::seed_from_u64(seed + 1);
    for p in model.params_mut() {
        if p.matrix().nrows() == 1 {
            p.matrix_mut()
                .mapv_inplace(|_| rng.random_range(-0.3f32..0.3));
        }
    }
    model
}

/// Every activation, a dropout and two layers without bias.
fn every_activation() -> Architecture {
    arch(serde_json::json!({"input_dim": 12, "layers": [
        {"type": "dense", "units": 16, "activation": "relu"},
        {"type": "dropout", "rate": 0.25},
        {"type": "dense", "units": 15, "activation": "leaky_relu"},
        {"type": "dense", "units": 14, "activation": "sigmoid", "use_bias": false},
        {"type": "dense", "units": 13, "activation": "tanh"},
        {"type": "dense", "units": 12, "activation": "gelu"},
        {"type": "dense", "units": 11, "activation": "gelu_erf"},
        {"type": "dense", "units": 10, "activation": "linear", "use_bias": false},
        {"type": "dropout", "rate": 0.1},
        {"type": "dense", "units": 8, "activation": "relu6"},
        {"type": "dense", "units": 5, "activation": "softmax"}]}))
}

fn file_of(model: Sequential) -> ModelFile {
    let meta = ModelMeta::new(model.architecture().clone());
    ModelFile { model, meta }
}

/// Exports `file`, decodes the bytes, checks them and returns the model.
fn exported(file: &ModelFile) -> ModelProto {
    let bytes = export(file).expect("exports");
    let model = ModelProto::decode(bytes.as_slice()).expect("decodes");
    check(&model).expect("the decoded model passes the check");
    model
}

/// The graph run by the reference interpreter on `x`.
fn interpret_on(model: &ModelProto, x: ArrayView2<f32>) -> Array2<f32> {
    let graph = model.graph.as_ref().expect("graph");
    let (input, output) = (graph.input[0].name(), graph.output[0].name());
    let mut value = Value::matrix(DataType::Float, &x.to_owned());
    // An image input is `[batch, C, H, W]`: the same memory as kiln's rows.
    if let Some(shape) = declared_dims(&graph.input[0]).filter(|d| d.len() > 2) {
        value.dims = std::iter::once(x.nrows())
            .chain(shape[1..].iter().copied())
            .collect();
    }
    let mut outs =
        interpret::run(model, &[(input, value)]).expect("the interpreter runs the graph");
    outs.remove(output)
        .expect("the output")
        .to_matrix()
        .expect("a matrix")
}

/// A graph input's or output's dims, the symbolic ones as 0.
fn declared_dims(v: &super::super::proto::ValueInfoProto) -> Option<Vec<usize>> {
    let Some(TypeValue::TensorType(t)) = v.r#type.as_ref()?.value.as_ref() else {
        return None;
    };
    let dims = t.shape.as_ref()?.dim.iter().map(|d| match d.value {
        Some(Dim::DimValue(n)) => n as usize,
        _ => 0,
    });
    Some(dims.collect())
}

fn ops(model: &ModelProto) -> Vec<&str> {
    nodes(model).iter().map(NodeProto::op_type).collect()
}

fn nodes(model: &ModelProto) -> &[NodeProto] {
    &model.graph.as_ref().expect("graph").node
}

fn initializer<'a>(model: &'a ModelProto, name: &str) -> &'a super::super::proto::TensorProto {
    model
        .graph
        .as_ref()
        .and_then(|g| g.initializer.iter().find(|t| t.name() == name))
        .unwrap_or_else(|| panic!("initializer {name}"))
}

fn argmax(row: ndarray::ArrayView1<f32>) -> usize {
    row.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| {
            if v > bv { (i, v) } else { (bi, bv) }
        })
        .0
}

#[test]
fn an_fp32_export_computes_what_the_network_predicts_with_every_activation() {
    let model = trained_like(&every_activation(), 7);
    let x = uniform(64, 12, -2.0, 2.0, 8);
    let expected = model.predict(x.view());
    let onnx = exported(&file_of(model));
    let got = interpret_on(&onnx, x.view());
    let diff = max_abs_diff(&got, &expected);
    assert!(diff <= 1e-5, "max |onnx − kiln| = {diff}");
}

#[test]
fn dropout_layers_vanish_and_layers_without_bias_use_matmul() {
    let onnx = exported(&file_of(trained_like(&every_activation(), 7)));
    assert_eq!(
        ops(&onnx),
        [
            "Gemm",
            "Relu",
            "Gemm",
            "LeakyRelu",
            "MatMul",
            "Sigmoid",
            "Gemm",
            "Tanh",
            "Gemm",
            "Gelu",
            "Gemm",
            "Gelu",
            "MatMul",
            "Gemm",
            "Clip",
            "Gemm",
            "Softmax"
        ]
    );
    let n = nodes(&onnx);
    let attr =
        |node: &NodeProto, name: &str| node.attribute.iter().find(|a| a.name() == name).cloned();
    assert_eq!(attr(&n[3], "alpha").map(|a| a.f()), Some(0.01));
    assert_eq!(
        attr(&n[9], "approximate").map(|a| a.s().to_vec()),
        Some(b"tanh".to_vec())
    );
    assert!(n[11].attribute.is_empty(), "exact GELU is Gelu's default");
    // relu6 is Clip with its bounds as scalar initializers.
    assert_eq!(n[14].input[1..], ["layers.9.clip_min", "layers.9.clip_max"]);
    assert!(
        initializer(&onnx, "layers.9.clip_max").dims.is_empty(),
        "a scalar"
    );
    assert_eq!(attr(&n[16], "axis").map(|a| a.i()), Some(-1));
    assert_eq!(
        n[13].name(),
        "layers.9.linear",
        "layers keep their kiln index"
    );
    // Gemm(x, W[in, out], b) with transB 0 (the default): W is stored as kiln holds it.
    assert_eq!(n[0].input, ["input", "layers.0.weight", "layers.0.bias"]);
    assert_eq!(initializer(&onnx, "layers.0.weight").dims, [12, 16]);
    assert_eq!(n[4].input[1], "layers.3.weight");
    assert_eq!(n.last().map(|n| n.output[0].as_str()), Some("output"));
}

#[test]
fn the_graph_keeps_the_names_an_imported_model_came_with() {
    let model = trained_like(&every_activation(), 3);
    let x = uniform(9, 12, -1.0, 1.0, 4);
    let expected = model.predict(x.view());
    let mut file = file_of(model);
    let source = |input: &str, output: &str| Source {
        format: "onnx".into(),
        input_name: input.into(),
        output_name: output.into(),
        producer_name: Some("skl2onnx".into()),
        producer_version: None,
        opset: Some(17),
        ir_version: Some(8),
        notes: Vec::new(),
    };
    source("X", "probabilities").write(&mut file.meta);
    let onnx = exported(&file);
    let graph = onnx.graph.as_ref().expect("graph");
    assert_eq!(graph.input[0].name(), "X");
    assert_eq!(graph.output[0].name(), "probabilities");
    assert!(max_abs_diff(&interpret_on(&onnx, x.view()), &expected) <= 1e-5);

    // A user's names that collide with kiln's own: kiln's values step aside.
    source("layers.0.weight", "layers.0.linear").write(&mut file.meta);
    let onnx = exported(&file);
    let first = &nodes(&onnx)[0];
    assert_eq!(first.input[..2], ["layers.0.weight", "layers.0.weight_1"]);
    assert_eq!(first.output[0], "layers.0.linear_1");
    assert!(max_abs_diff(&interpret_on(&onnx, x.view()), &expected) <= 1e-5);

    // The same name for both: the output is renamed.
    source("data", "data").write(&mut file.meta);
    let onnx = exported(&file);
    assert_eq!(
        onnx.graph.as_ref().expect("graph").output[0].name(),
        "data_output"
    );
}

#[test]
fn the_model_says_who_wrote_it_and_what_it_holds() {
    let mut file = file_of(trained_like(&every_activation(), 1));
    file.meta.trained = true;
    file.meta.task = Some(Task::Multiclass);
    file.meta.parent_id = Some("0196f1c2-0000-7000-8000-000000000001".into());
    file.meta.job_id = Some("0196f1c2-0000-7000-8000-000000000002".into());
    let onnx = exported(&file);
    assert_eq!(onnx.ir_version, Some(10));
    assert_eq!(onnx.opset_import.len(), 1);
    assert_eq!(
        (
            onnx.opset_import[0].domain(),
            onnx.opset_import[0].version()
        ),
        ("", 21)
    );
    assert_eq!(onnx.producer_name(), "kiln");
    assert_eq!(onnx.producer_version(), env!("CARGO_PKG_VERSION"));
    assert!(
        onnx.doc_string()
            .starts_with("kiln model: input 12 → dense 16 relu → dropout 0.25 (omitted)"),
        "{}",
        onnx.doc_string()
    );
    assert!(
        onnx.doc_string().ends_with("dense 5 softmax; dtype f32"),
        "{}",
        onnx.doc_string()
    );
    let props: std::collections::HashMap<&str, &str> = onnx
        .metadata_props
        .iter()
        .map(|p| (p.key(), p.value()))
        .collect();
    assert_eq!(props["kiln.dtype"], "f32");
    assert_eq!(props["kiln.task"], "multiclass");
    assert_eq!(props["kiln.trained"], "true");
    assert_eq!(
        props["kiln.parent_id"],
        "0196f1c2-0000-7000-8000-000000000001"
    );
    assert_eq!(props["kiln.job_id"], "0196f1c2-0000-7000-8000-000000000002");
    let back: Architecture = serde_json::from_str(props["kiln.architecture"]).expect("json");
    assert_eq!(back, every_activation());
    assert!(!props.contains_key("kiln.source") && !props.contains_key("kiln.quantization"));
}

#[test]
fn a_pruned_model_read_back_from_csr_exports_its_zeros_as_dense_weights() {
    let mut model = trained_like(&every_activation(), 11);
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    for layer in model.layers_mut() {
        if let Some(d) = layer.as_dense_mut() {
            d.weight.matrix_mut().mapv_inplace(|w| {
                if rng.random_range(0.0f32..1.0) < 0.85 {
                    0.0
                } else {
                    w
                }
            });
        }
    }
    let bytes = model_file::encode(&file_of(model)).expect("encodes");
    let file = crate::model::read(&bytes).expect("decodes");
    let x = uniform(32, 12, -2.0, 2.0, 13);
    let expected = file.model.predict(x.view());
    let onnx = exported(&file);
    assert!(max_abs_diff(&interpret_on(&onnx, x.view()), &expected) <= 1e-5);
    let w = initializer(&onnx, "layers.0.weight");
    assert_eq!(w.raw_data().len(), 4 * 12 * 16, "dense f32 [in, out]");
    let zeros = w
        .raw_data()
        .chunks_exact(4)
        .filter(|c| c == &[0u8; 4])
        .count();
    assert!(zeros >= 12 * 16 * 7 / 10, "{zeros} zeros");
}

#[test]
fn a_compressed_model_exports_as_the_fp32_network_it_decodes_to() {
    use crate::compressed::{self, Coder};
    use kiln_nn::optimize::share::{CodebookInit, share_weights};
    let mut model = trained_like(&every_activation(), 21);
    let shared = share_weights(&model, 4, CodebookInit::Linear).expect("dense");
    shared.apply(&mut model);
    let bytes = compressed::encode(&file_of(model), &shared, Coder::Zstd).expect("encodes");
    let file = crate::model::read(&bytes).expect("decodes");
    let x = uniform(32, 12, -2.0, 2.0, 22);
    let expected = file.model.predict(x.view());
    let onnx = exported(&file);
    assert!(max_abs_diff(&interpret_on(&onnx, x.view()), &expected) <= 1e-5);
    let dtype = onnx.metadata_props.iter().find(|p| p.key() == "kiln.dtype");
    assert_eq!(dtype.map(|p| p.value()), Some("shared4"));
}

/// A classifier with what static mode treats differently: fused ReLU and Linear layers, a
/// tanh layer it dequantizes after, a dropout, a layer without bias and a softmax head.
fn classifier() -> Sequential {
    let a = arch(serde_json::json!({"input_dim": 20, "layers": [
        {"type": "dense", "units": 32, "activation": "relu"},
        {"type": "dropout", "rate": 0.3},
        {"type": "dense", "units": 24, "activation": "linear"},
        {"type": "dense", "units": 24, "activation": "tanh", "use_bias": false},
        {"type": "dense", "units": 16, "activation": "relu"},
        {"type": "dense", "units": 6, "activation": "softmax"}]}));
    trained_like(&a, 31)
}

/// `model` quantized as a `quantize` job stores it, read back from its bytes.
fn int8_file(model: &Sequential, cfg: &QuantConfig, float_layers: &[usize]) -> ModelFile {
    let calib = uniform(256, 20, -1.0, 1.0, 32);
    let calibration = match cfg.mode {
        QuantMode::Static => Some((calib.view(), CalibrationMethod::MinMax)),
        QuantMode::Dynamic => None,
    };
    let q = QuantizedModel::build(model, cfg, float_layers, calibration).expect("quantizes");
    let mut meta = ModelMeta::new(model.architecture().clone());
    meta.dtype = "int8".into();
    meta.quantization = Some(Quantization {
        config: cfg.clone(),
        layers: q.layers().to_vec(),
    });
    let file = ModelFile {
        model: q.dequantized(),
        meta,
    };
    crate::model::read(&model_file::encode(&file).expect("encodes")).expect("decodes")
}

const MODES: [QuantMode; 2] = [QuantMode::Static, QuantMode::Dynamic];
const SCHEMES: [Scheme; 2] = [Scheme::Symmetric, Scheme::Asymmetric];
const GRANULARITIES: [Granularity; 2] = [Granularity::PerTensor, Granularity::PerChannel];

/// Largest |ONNX − kiln| seen on the softmax outputs (probabilities) across every
/// configuration below: the rounding differences of the module doc of `qdq`, an output code
/// or two at most. Measured ≈ 0.012 (see the test); the bound leaves room.
const INT8_MAX_ABS_DIFF: f32 = 0.03;

#[test]
fn int8_exports_compute_what_kilns_int8_network_predicts() {
    let model = classifier();
    // Wider than the calibration range: codes saturate at both ends too.
    let x = uniform(2000, 20, -1.3, 1.3, 33);
    let mut worst = 0.0f32;
    for mode in MODES {
        for scheme in SCHEMES {
            for granularity in GRANULARITIES {
                for float_layers in [&[][..], &[4][..]] {
                    let cfg = QuantConfig {
                        mode,
                        scheme,
                        granularity,
                    };
                    let file = int8_file(&model, &cfg, float_layers);
                    let kiln = file
                        .predictor(None)
                        .expect("int8 network")
                        .predict(x.view());
                    let onnx = exported(&file);
                    // Dynamic ranges are per call: one call per batch, as kiln serves one.
                    let got = interpret_on(&onnx, x.view());
                    let same = got
                        .axis_iter(Axis(0))
                        .zip(kiln.axis_iter(Axis(0)))
                        .filter(|(a, b)| argmax(*a) == argmax(*b))
                        .count();
                    let label =
                        format!("{mode:?} {scheme:?} {granularity:?} float {float_layers:?}");
                    let diff = max_abs_diff(&got, &kiln);
                    // This network is untrained: many rows are near ties between two of six
                    // classes, where a code's rounding flips the argmax (a trained LeNet agrees
                    // on ≥ 99.5 % in ORT, scripts/interop); the bound on |onnx − kiln| is the
                    // tight check.
                    assert!(
                        same * 100 >= 99 * x.nrows(),
                        "{label}: {same} of 2000 rows agree"
                    );
                    assert!(
                        diff <= INT8_MAX_ABS_DIFF,
                        "{label}: max |onnx − kiln| = {diff}"
                    );
                    worst = worst.max(diff);
                    // The float model is further away: the comparison can fail.
                    let float = max_abs_diff(&model.predict(x.view()), &kiln);
                    assert!(float > diff, "{label}: float {float} vs onnx {diff}");
                }
            }
        }
    }
    eprintln!("largest |onnx − kiln int8| over every configuration: {worst}");
}

#[test]
fn int8_layers_are_written_as_qdq_around_matmul_with_the_stored_codes() {
    let model = classifier();
    let cfg = |mode, granularity| QuantConfig {
        mode,
        scheme: Scheme::Asymmetric,
        granularity,
    };
    let file = int8_file(
        &model,
        &cfg(QuantMode::Static, Granularity::PerChannel),
        &[4],
    );
    let onnx = exported(&file);
    let int8 = [
        "QuantizeLinear",
        "DequantizeLinear",
        "DequantizeLinear",
        "MatMul",
    ];
    let expected: Vec<&str> = [&int8[..], &["Add", "Relu"]]
        .concat()
        .into_iter()
        .chain(int8.iter().copied().chain(["Add"]))
        .chain(int8.iter().copied().chain(["Tanh"]))
        .chain(["Gemm", "Relu"])
        .chain(int8.iter().copied().chain(["Add", "Softmax"]))
        .collect();
    assert_eq!(ops(&onnx), expected);
    let q = file.meta.quantization.as_ref().expect("int8");
    let l0 = q.layer(0).expect("layer 0");
    let codes = initializer(&onnx, "layers.0.weight");
    assert_eq!(
        (codes.data_type(), codes.dims.as_slice()),
        (DataType::Uint8 as i32, &[20, 32][..])
    );
    // Shifted by 128 to u8, as are their zero points (see `qdq`).
    let stored: Vec<u8> = l0
        .weight
        .q
        .iter()
        .map(|&v| (i16::from(v) + 128) as u8)
        .collect();
    assert_eq!(
        codes.raw_data(),
        stored.as_slice(),
        "the stored codes, not re-quantized"
    );
    assert_eq!(initializer(&onnx, "layers.0.weight_scale").dims, [32]);
    let zp = initializer(&onnx, "layers.0.weight_zero_point");
    assert_eq!(
        (zp.data_type(), zp.dims.as_slice()),
        (DataType::Uint8 as i32, &[32][..])
    );
    let zps: Vec<u8> = l0
        .weight
        .params
        .iter()
        .map(|p| (p.zero_point + 128) as u8)
        .collect();
    assert_eq!(zp.raw_data(), zps.as_slice());
    let dq_w = &nodes(&onnx)[2];
    assert_eq!(
        dq_w.input,
        [
            "layers.0.weight",
            "layers.0.weight_scale",
            "layers.0.weight_zero_point"
        ]
    );
    assert_eq!(
        dq_w.attribute.first().map(|a| (a.name(), a.i())),
        Some(("axis", 1))
    );
    let input = l0.input.expect("static input params");
    let izp = initializer(&onnx, "layers.0.input_zero_point");
    assert_eq!(
        (izp.data_type(), izp.raw_data()),
        (DataType::Uint8 as i32, &[input.zero_point as u8][..])
    );
    let is = initializer(&onnx, "layers.0.input_scale");
    assert_eq!(
        (is.dims.len(), is.raw_data()),
        (0, &input.scale.to_le_bytes()[..])
    );
    // The float layer inside the int8 model keeps its float weights.
    assert_eq!(
        initializer(&onnx, "layers.4.weight").data_type(),
        DataType::Float as i32
    );

    let file = int8_file(
        &model,
        &cfg(QuantMode::Dynamic, Granularity::PerTensor),
        &[],
    );
    let onnx = exported(&file);
    let first = &nodes(&onnx)[..3];
    assert_eq!(first[0].op_type(), "DynamicQuantizeLinear");
    assert_eq!(
        first[1].input, first[0].output,
        "DequantizeLinear(y, y_scale, y_zero_point)"
    );
    assert!(first[2].attribute.is_empty(), "per tensor: no axis");
    assert!(initializer(&onnx, "layers.0.weight_scale").dims.is_empty());
    let props: Vec<(&str, &str)> = onnx
        .metadata_props
        .iter()
        .map(|p| (p.key(), p.value()))
        .collect();
    assert!(props.contains(&("kiln.dtype", "int8")));
    assert!(
        props
            .iter()
            .any(|(k, v)| *k == "kiln.quantization" && v.contains("\"dynamic\""))
    );
    assert!(
        onnx.doc_string()
            .contains("dynamic u8 activations, asymmetric per_tensor i8 weights")
    );
}

#[test]
fn int8_layers_that_do_not_fit_the_network_are_refused() {
    let model = classifier();
    let cfg = QuantConfig {
        mode: QuantMode::Static,
        scheme: Scheme::Symmetric,
        granularity: Granularity::PerTensor,
    };
    let mut file = int8_file(&model, &cfg, &[]);
    if let Some(q) = file.meta.quantization.as_mut() {
        q.layers[1].input = None;
    }
    let err = export(&file).expect_err("a static layer without input params");
    assert!(matches!(err, ExportError::Int8(_)), "{err}");
    assert!(err.to_string().contains("layers.2"), "{err}");
}

// The interpreter's own operators, against values worked out by hand from the ONNX spec.

fn run_one(node: NodeProto, inputs: Vec<(&str, Value)>) -> Vec<Value> {
    use super::super::proto::GraphProto;
    let outputs = node.output.clone();
    let model = ModelProto {
        graph: Some(GraphProto {
            node: vec![node],
            output: outputs
                .iter()
                .map(|o| super::super::proto::ValueInfoProto {
                    name: Some(o.clone()),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let named: Vec<(&str, Value)> = inputs;
    let mut outs = interpret::run(&model, &named).expect("runs");
    outputs
        .iter()
        .map(|o| outs.remove(o).expect("output"))
        .collect()
}

fn node(
    op: &str,
    inputs: &[&str],
    outputs: &[&str],
    attribute: Vec<super::super::proto::AttributeProto>,
) -> NodeProto {
    NodeProto {
        name: Some(op.into()),
        op_type: Some(op.into()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute,
        ..Default::default()
    }
}

#[test]
fn the_interpreters_quantize_linear_rounds_half_to_even_and_saturates() {
    let x = Value::vector(
        DataType::Float,
        vec![0.5, 1.5, 2.5, -0.5, -1.5, 300.0, -300.0, 0.26],
    );
    let run = |zp: Value| {
        let out = run_one(
            node("QuantizeLinear", &["x", "s", "z"], &["y"], Vec::new()),
            vec![
                ("x", x.clone()),
                ("s", Value::scalar(DataType::Float, 0.5)),
                ("z", zp),
            ],
        );
        out[0].data.clone()
    };
    // x / 0.5 = 1, 3, 5, −1, −3, 600, −600, 0.52 → round half to even: 1, 3, 5, −1, −3, …, 1.
    assert_eq!(
        run(Value::scalar(DataType::Uint8, 10.0)),
        [11.0, 13.0, 15.0, 9.0, 7.0, 255.0, 0.0, 11.0]
    );
    let x2 = Value::vector(DataType::Float, vec![0.25, 0.75, 1.25, -0.25]);
    let out = run_one(
        node("QuantizeLinear", &["x", "s", "z"], &["y"], Vec::new()),
        vec![
            ("x", x2),
            ("s", Value::scalar(DataType::Float, 0.5)),
            ("z", Value::scalar(DataType::Int8, 0.0)),
        ],
    );
    // 0.5, 1.5, 2.5, −0.5 → 0, 2, 2, −0 (ties to even).
    assert_eq!(out[0].data, [0.0, 2.0, 2.0, 0.0]);
    assert_eq!(out[0].dtype, DataType::Int8);
}

#[test]
fn the_interpreters_dequantize_linear_applies_per_axis_parameters_by_column() {
    let q = Value::matrix(DataType::Int8, &ndarray::array![[1.0, -2.0], [3.0, 4.0]]);
    let out = run_one(
        node(
            "DequantizeLinear",
            &["q", "s", "z"],
            &["w"],
            vec![graph::attr_int("axis", 1)],
        ),
        vec![
            ("q", q),
            ("s", Value::vector(DataType::Float, vec![0.5, 2.0])),
            ("z", Value::vector(DataType::Int8, vec![1.0, -1.0])),
        ],
    );
    // Column 0: (q − 1)·0.5; column 1: (q + 1)·2.
    assert_eq!(out[0].data, [0.0, -2.0, 1.0, 10.0]);
}

#[test]
fn the_interpreters_dynamic_quantize_linear_matches_the_specs_example() {
    // The example of the ONNX operator documentation.
    let x = Value::vector(DataType::Float, vec![0.0, 2.0, -3.0, -2.5, 1.34, 0.5]);
    let out = run_one(
        node(
            "DynamicQuantizeLinear",
            &["x"],
            &["y", "y_scale", "y_zero_point"],
            Vec::new(),
        ),
        vec![("x", x)],
    );
    assert_eq!(out[0].data, [153.0, 255.0, 0.0, 26.0, 221.0, 179.0]);
    assert_eq!(out[1].data, [5.0f32 / 255.0]);
    assert_eq!(out[2].data, [153.0]);
}

#[test]
fn the_interpreters_gelu_and_softmax_give_hand_computed_values() {
    let x = Value::vector(DataType::Float, vec![1.0, -1.0]);
    let exact = run_one(
        node("Gelu", &["x"], &["y"], Vec::new()),
        vec![("x", x.clone())],
    );
    // Φ(1) = 0.841344746…
    assert!(
        (exact[0].data[0] - 0.841_344_7).abs() < 1e-6
            && (exact[0].data[1] + 0.158_655_25).abs() < 1e-6
    );
    let tanh = run_one(
        node(
            "Gelu",
            &["x"],
            &["y"],
            vec![graph::attr_string("approximate", "tanh")],
        ),
        vec![("x", x)],
    );
    // 0.5·(1 + tanh(√(2/π)·1.044715)) = 0.841191990…
    assert!(
        (tanh[0].data[0] - 0.841_192).abs() < 1e-6,
        "{:?}",
        tanh[0].data
    );
    let m = Value::matrix(
        DataType::Float,
        &ndarray::array![[0.0, 2f32.ln()], [5.0, 5.0]],
    );
    let sm = run_one(
        node("Softmax", &["x"], &["y"], vec![graph::attr_int("axis", -1)]),
        vec![("x", m)],
    );
    let want = [1.0 / 3.0, 2.0 / 3.0, 0.5, 0.5];
    assert!(
        sm[0]
            .data
            .iter()
            .zip(want)
            .all(|(a, b)| (a - b).abs() < 1e-7),
        "{:?}",
        sm[0].data
    );
}

/// Writes sample exports (every activation, every int8 configuration), their inputs and
/// kiln's outputs to `$KILN_EXPORT_DIR` for `scripts/interop/export_check.py` (ONNX's checker
/// and ONNX Runtime). Ignored by `cargo test` because its check needs Python; the interop
/// stage of `.ci/run` (`scripts/interop/run.sh`) runs it and then the check.
#[test]
#[ignore = "writes files for the Python check, which scripts/interop/run.sh runs"]
fn writes_sample_exports_for_the_python_check() {
    let dir = std::env::var("KILN_EXPORT_DIR")
        .expect("KILN_EXPORT_DIR names the folder for the exports (see scripts/interop/run.sh)");
    let dir = std::path::PathBuf::from(dir);
    std::fs::create_dir_all(&dir).expect("directory");
    let write = |name: &str, file: &ModelFile, x: &Array2<f32>| {
        let kiln = file.predictor(None).expect("predictor").predict(x.view());
        std::fs::write(
            dir.join(format!("{name}.onnx")),
            export(file).expect("exports"),
        )
        .expect("write");
        ndarray_npy::write_npy(dir.join(format!("{name}.input.npy")), x).expect("npy");
        ndarray_npy::write_npy(dir.join(format!("{name}.kiln.npy")), &kiln).expect("npy");
    };
    // Image networks take `[batch, C, H, W]`: the same memory as kiln's rows.
    let cnn = images::trained_cnn(&images::every_image_layer(), 41);
    let x = uniform(500, 2 * 9 * 9, -1.5, 1.5, 42);
    let kiln = cnn.predict(x.view());
    let file = file_of(cnn);
    std::fs::write(dir.join("fp32_cnn.onnx"), export(&file).expect("exports")).expect("write");
    let x4 = x
        .into_shape_with_order((500, 2, 9, 9))
        .expect("rows are NCHW");
    ndarray_npy::write_npy(dir.join("fp32_cnn.input.npy"), &x4).expect("npy");
    ndarray_npy::write_npy(dir.join("fp32_cnn.kiln.npy"), &kiln).expect("npy");
    let x = uniform(2000, 12, -2.0, 2.0, 8);
    write(
        "fp32_every_activation",
        &file_of(trained_like(&every_activation(), 7)),
        &x,
    );
    let model = classifier();
    let x = uniform(2000, 20, -1.3, 1.3, 33);
    for mode in MODES {
        for scheme in SCHEMES {
            for granularity in GRANULARITIES {
                let cfg = QuantConfig {
                    mode,
                    scheme,
                    granularity,
                };
                let file = int8_file(&model, &cfg, &[]);
                let name = serde_plain(&mode)
                    + "_"
                    + &serde_plain(&scheme)
                    + "_"
                    + &serde_plain(&granularity);
                write(&format!("int8_{name}"), &file, &x);
            }
        }
    }
}
