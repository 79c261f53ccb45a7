//! Every class of graph kiln cannot represent exactly: each is refused with a message
//! naming the node (or tensor), its op type and why, never a panic.

use super::build::*;
use super::import;
use crate::onnx::proto::tensor_proto::{DataLocation, DataType};
use crate::onnx::proto::{ModelProto, StringStringEntryProto};
use kiln_nn::spec::ArchitectureLimits;

/// The import's message for `m`, which must be refused.
fn refusal(m: &ModelProto) -> String {
    refusal_of(&encode(m))
}

fn refusal_of(bytes: &[u8]) -> String {
    match import(bytes, &ArchitectureLimits::default()) {
        Ok(_) => panic!("imported a graph that must be refused"),
        Err(e) => {
            e.0.iter()
                .map(|f| format!("{}: {}", f.field, f.message))
                .collect::<Vec<_>>()
                .join("; ")
        }
    }
}

fn assert_names(what: &str, text: &str, phrases: &[&str]) {
    for p in phrases {
        assert!(text.contains(p), "{what}: `{p}` not in: {text}");
    }
}

/// `torch_mlp` with `edit` applied to its graph.
fn edited(edit: impl FnOnce(&mut crate::onnx::proto::GraphProto)) -> ModelProto {
    let (mut m, _) = torch_mlp();
    if let Some(g) = m.graph.as_mut() {
        edit(g);
    }
    m
}

#[test]
fn ops_outside_kilns_layers_are_named_with_their_op_type() {
    let conv = edited(|g| {
        g.node[2] = node(
            "LpNormalization",
            "/norm/LpNormalization",
            &["/fc1/Add_output_0"],
            &["/act1/Tanh_output_0"],
            vec![],
        )
    });
    assert_names(
        "lp norm",
        &refusal(&conv),
        &["/norm/LpNormalization", "LpNormalization", "not supported"],
    );
    let foreign = edited(|g| {
        g.node[2].domain = Some("com.microsoft".into());
        g.node[2].op_type = Some("FusedGelu".into());
    });
    assert_names(
        "custom domain",
        &refusal(&foreign),
        &["/act1/Tanh", "com.microsoft.FusedGelu"],
    );
    let mul = edited(|g| {
        g.node[2] = node(
            "Mul",
            "/scale/Mul",
            &["/fc1/Add_output_0", "fc1.bias"],
            &["/act1/Tanh_output_0"],
            vec![],
        );
    });
    assert_names(
        "standalone Mul",
        &refusal(&mul),
        &["/scale/Mul", "Mul", "GELU"],
    );
}

#[test]
fn attributes_kiln_cannot_honour_are_refused_naming_the_node() {
    let alpha = edited(|g| g.node[4].attribute = vec![float("alpha", 0.2)]);
    assert_names(
        "leaky alpha",
        &refusal(&alpha),
        &["/act2/LeakyRelu", "alpha", "0.2", "0.01"],
    );
    let axis = edited(|g| g.node[6].attribute = vec![int("axis", 0)]);
    assert_names(
        "softmax axis",
        &refusal(&axis),
        &["/softmax/Softmax", "axis 0"],
    );
    let trans_a = edited(|g| g.node[5].attribute.push(int("transA", 1)));
    assert_names("transA", &refusal(&trans_a), &["/fc3/Gemm", "transposed"]);
    let approx = {
        let (mut m, _) = gelu_network("gelu_none");
        if let Some(g) = m.graph.as_mut() {
            g.node[1].attribute = vec![string("approximate", "cubic")];
        }
        m
    };
    assert_names(
        "gelu approximate",
        &refusal(&approx),
        &["\"gelu\"", "cubic"],
    );
    let dropout = edited(|g| {
        g.node[2] = node(
            "Dropout",
            "/drop/Dropout",
            &["/fc1/Add_output_0", "", "train"],
            &["/act1/Tanh_output_0"],
            vec![],
        );
        g.initializer.push(floats("train", &[], &[1.0], false));
    });
    assert_names(
        "training dropout",
        &refusal(&dropout),
        &["/drop/Dropout", "training_mode"],
    );
}

#[test]
fn graphs_that_are_not_one_chain_of_dense_layers_are_refused() {
    let residual = edited(|g| {
        g.node[1].input = vec!["/fc1/MatMul_output_0".into(), "features".into()];
    });
    assert_names(
        "residual",
        &refusal(&residual),
        &["\"features\"", "/fc1/MatMul", "/fc1/Add", "single chain"],
    );
    let branch = edited(|g| {
        g.node.push(node(
            "Relu",
            "/side/Relu",
            &["/act1/Tanh_output_0"],
            &["side"],
            vec![],
        ));
        g.output.push(ValueInfo::named("side"));
    });
    assert_names(
        "two float outputs",
        &refusal(&branch),
        &["\"probs\"", "\"side\"", "one output"],
    );
    let computed_weight = edited(|g| {
        g.node[3].input[1] = "/fc1/Add_output_0".into();
    });
    assert!(!refusal(&computed_weight).is_empty());
    let two_inputs = edited(|g| g.input.push(input("mask", 4)));
    assert_names(
        "two inputs",
        &refusal(&two_inputs),
        &["\"features\"", "\"mask\"", "one input"],
    );
    let no_dense = model(
        vec![node("Relu", "only", &["x"], &["y"], vec![])],
        vec![],
        input("x", 3),
        &["y"],
    );
    assert_names(
        "no dense",
        &refusal(&no_dense),
        &["only", "before any layer with weights"],
    );
    let cycle = edited(|g| g.node[0].input[0] = "probs".into());
    assert_names("cycle", &refusal(&cycle), &["cycle"]);
    let dangling = edited(|g| g.node[3].input[0] = "nowhere".into());
    assert_names(
        "dangling",
        &refusal(&dangling),
        &["/fc2/MatMul", "\"nowhere\""],
    );
}

#[test]
fn weights_that_do_not_fit_are_refused_naming_the_tensor() {
    let short = edited(|g| {
        g.initializer[0]
            .raw_data
            .as_mut()
            .map(|r| r.truncate(12))
            .unwrap_or(())
    });
    assert_names(
        "short raw",
        &refusal(&short),
        &["fc1.weight_T", "20", "12 bytes"],
    );
    let typed_short = edited(|g| g.initializer[2].float_data.truncate(3));
    assert_names(
        "short typed",
        &refusal(&typed_short),
        &["fc2.weight_T", "3 values"],
    );
    let huge = edited(|g| g.initializer[0].dims = vec![1 << 40, 1 << 40]);
    assert_names(
        "huge dims",
        &refusal(&huge),
        &["fc1.weight_T", "more elements than can exist"],
    );
    let two_gb = edited(|g| g.initializer[0].dims = vec![1 << 27, 4]);
    assert_names(
        "2 GB claim",
        &refusal(&two_gb),
        &["fc1.weight_T", "[134217728, 4]", "80 bytes"],
    );
    let negative = edited(|g| g.initializer[0].dims = vec![-4, 5]);
    assert_names(
        "negative dim",
        &refusal(&negative),
        &["fc1.weight_T", "negative"],
    );
    let chain_mismatch = edited(|g| {
        g.initializer[2] = floats("fc2.weight_T", &[4, 4], &[0.0; 16], false);
    });
    assert_names(
        "width",
        &refusal(&chain_mismatch),
        &["/fc2/MatMul", "4 input features", "5"],
    );
    let bias = edited(|g| g.initializer[1] = floats("fc1.bias", &[3], &[0.0; 3], false));
    assert_names("bias", &refusal(&bias), &["/fc1/Add", "fc1.bias", "[3]"]);
    let int_weight = edited(|g| {
        g.initializer[2] = crate::onnx::proto::TensorProto {
            data_type: Some(DataType::Int8 as i32),
            ..g.initializer[2].clone()
        };
    });
    assert_names(
        "int8 weight",
        &refusal(&int_weight),
        &["fc2.weight_T", "INT8", "FLOAT"],
    );
}

#[test]
fn external_data_is_refused_with_how_to_save_a_self_contained_file() {
    let m = edited(|g| {
        let t = &mut g.initializer[0];
        t.raw_data = None;
        t.data_location = Some(DataLocation::External as i32);
        t.external_data = vec![StringStringEntryProto {
            key: Some("location".into()),
            value: Some("weights.bin".into()),
        }];
    });
    assert_names(
        "external",
        &refusal(&m),
        &[
            "fc1.weight_T",
            "external data",
            "weights.bin",
            "save_as_external_data=False",
        ],
    );
}

#[test]
fn opsets_and_ir_versions_outside_the_supported_range_are_refused() {
    for (opset, ir, phrase) in [
        (10, 8, "opset is 10"),
        (29, 8, "opset is 29"),
        (17, 6, "IR version is 6"),
    ] {
        let (mut m, _) = torch_mlp();
        set_versions(&mut m, opset, ir);
        assert_names(phrase, &refusal(&m), &[phrase]);
    }
    let (mut m, _) = torch_mlp();
    m.opset_import.clear();
    assert_names("no opset", &refusal(&m), &["opset"]);
    let (mut m, _) = torch_mlp();
    m.graph = None;
    assert_names("no graph", &refusal(&m), &["no graph"]);
}

#[test]
fn bytes_that_are_not_a_model_are_refused_without_a_panic() {
    let (m, _) = torch_mlp();
    let bytes = encode(&m);
    for cut in [1, 7, bytes.len() / 3, bytes.len() - 1] {
        let _ = import(&bytes[..cut], &ArchitectureLimits::default());
    }
    assert_names(
        "garbage",
        &refusal_of(b"\xff\xff\xff\xff garbage"),
        &["ONNX"],
    );
    // Every single-byte corruption of a valid file is answered, accepted or refused.
    for i in (0..bytes.len()).step_by(3) {
        let mut b = bytes.clone();
        b[i] ^= 0x5a;
        let _ = import(&b, &ArchitectureLimits::default());
    }
}

#[test]
fn a_network_over_kilns_limits_is_refused_as_too_big() {
    let (m, _) = torch_mlp();
    let limits = ArchitectureLimits {
        max_units: 4,
        ..ArchitectureLimits::default()
    };
    let text = match import(&encode(&m), &limits) {
        Ok(_) => panic!("a 5-unit layer over a 4-unit limit was imported"),
        Err(e) => e.0[0].message.clone(),
    };
    assert_names("limits", &text, &["limits", "architecture"]);
}

/// Output value infos for tests that add outputs.
struct ValueInfo;

impl ValueInfo {
    fn named(name: &str) -> crate::onnx::proto::ValueInfoProto {
        crate::onnx::proto::ValueInfoProto {
            name: Some(name.into()),
            ..Default::default()
        }
    }
}

#[test]
fn a_scaler_that_does_not_fit_or_comes_late_is_refused() {
    let scaler = |offset: &[f32]| {
        let mut n = ml_node("Scaler", "Scaler", &["/act1/Tanh_output_0"], &["scaled"]);
        n.attribute = vec![floats_attr("offset", offset), floats_attr("scale", &[2.0])];
        n
    };
    let late = edited(|g| {
        g.node.insert(3, scaler(&[0.0]));
        g.node[4].input[0] = "scaled".into();
    });
    assert_names(
        "late",
        &refusal(&late),
        &["\"Scaler\" (Scaler)", "first dense layer"],
    );
    let wrong = edited(|g| {
        let mut n = scaler(&[0.0, 1.0]);
        n.input[0] = "features".into();
        g.node.insert(0, n);
        g.node[1].input[0] = "scaled".into();
    });
    assert_names(
        "wrong width",
        &refusal(&wrong),
        &["\"Scaler\" (Scaler)", "offset (2 values)", "(4)"],
    );
}
