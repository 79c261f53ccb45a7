//! Building ONNX graphs in tests, in the spirit of `onnx.helper`, and the networks the
//! converters write.

use ndarray::Array2;
use prost::Message;

use crate::onnx::proto::attribute_proto::AttributeType;
use crate::onnx::proto::tensor_proto::DataType;
use crate::onnx::proto::tensor_shape_proto::Dimension;
use crate::onnx::proto::tensor_shape_proto::dimension::Value as Dim;
use crate::onnx::proto::type_proto::{Tensor, Value as TypeValue};
use crate::onnx::proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};

pub fn encode(m: &ModelProto) -> Vec<u8> {
    m.encode_to_vec()
}

pub fn node(
    op: &str,
    name: &str,
    inputs: &[&str],
    outputs: &[&str],
    attribute: Vec<AttributeProto>,
) -> NodeProto {
    NodeProto {
        op_type: Some(op.into()),
        name: Some(name.into()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute,
        ..Default::default()
    }
}

pub fn ml_node(op: &str, name: &str, inputs: &[&str], outputs: &[&str]) -> NodeProto {
    NodeProto {
        domain: Some("ai.onnx.ml".into()),
        ..node(op, name, inputs, outputs, vec![])
    }
}

pub(in crate::onnx) use crate::onnx::export::graph::{
    attr_float as float, attr_int as int, attr_string as string, attribute,
};

pub fn tensor_attr(name: &str, t: TensorProto) -> AttributeProto {
    AttributeProto {
        t: Some(t),
        ..attribute(name, AttributeType::Tensor)
    }
}

/// A float tensor, in `raw_data` or in the typed `float_data` field.
pub fn floats(name: &str, dims: &[i64], values: &[f32], raw: bool) -> TensorProto {
    let mut t = TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(DataType::Float as i32),
        ..Default::default()
    };
    if raw {
        t.raw_data = Some(values.iter().flat_map(|v| v.to_le_bytes()).collect());
    } else {
        t.float_data = values.to_vec();
    }
    t
}

pub fn ints(name: &str, dims: &[i64], values: &[i64]) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(DataType::Int64 as i32),
        int64_data: values.to_vec(),
        ..Default::default()
    }
}

pub fn typed(name: &str, elem: DataType, dims: &[Option<i64>]) -> ValueInfoProto {
    let dim = |d: &Option<i64>| Dimension {
        value: Some(match d {
            Some(v) => Dim::DimValue(*v),
            None => Dim::DimParam("N".into()),
        }),
        ..Default::default()
    };
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(TypeValue::TensorType(Tensor {
                elem_type: Some(elem as i32),
                shape: Some(TensorShapeProto {
                    dim: dims.iter().map(dim).collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn input_dims(name: &str, dims: &[Option<i64>]) -> ValueInfoProto {
    typed(name, DataType::Float, dims)
}

/// A float `[N, width]` input with a symbolic batch.
pub fn input(name: &str, width: i64) -> ValueInfoProto {
    input_dims(name, &[None, Some(width)])
}

/// A model at opset 17, IR 8, from pytorch 2.9.0; outputs untyped.
pub fn model(
    nodes: Vec<NodeProto>,
    initializer: Vec<TensorProto>,
    input: ValueInfoProto,
    outputs: &[&str],
) -> ModelProto {
    let graph = GraphProto {
        name: Some("main_graph".into()),
        node: nodes,
        initializer,
        input: vec![input],
        output: outputs
            .iter()
            .map(|o| ValueInfoProto {
                name: Some(o.to_string()),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let mut m = ModelProto {
        producer_name: Some("pytorch".into()),
        producer_version: Some("2.9.0".into()),
        graph: Some(graph),
        ..Default::default()
    };
    set_versions(&mut m, 17, 8);
    m
}

pub fn set_versions(m: &mut ModelProto, opset: i64, ir: i64) {
    m.ir_version = Some(ir);
    m.opset_import = vec![OperatorSetIdProto {
        domain: Some(String::new()),
        version: Some(opset),
    }];
}

/// Deterministic, sign-varied values in `[-scale, scale]`.
pub fn pattern(rows: usize, cols: usize, scale: f32) -> Array2<f32> {
    Array2::from_shape_fn((rows, cols), |(i, j)| {
        let k = (i * 7 + j * 13 + 3) % 17;
        scale * (k as f32 / 8.0 - 1.0)
    })
}

pub fn flat(a: &Array2<f32>) -> Vec<f32> {
    a.iter().copied().collect()
}

/// torch.onnx.export of Linear(4,5)+Tanh, Linear(5,4,bias=False)+LeakyReLU, Linear(4,3)+Softmax:
/// MatMul + Add, a bare MatMul and a Gemm with transB; input `features`, output `probs`.
pub fn torch_mlp() -> (ModelProto, Array2<f32>) {
    let (w0, w1, w2) = (pattern(4, 5, 0.8), pattern(5, 4, 0.6), pattern(3, 4, 0.9));
    let m = model(
        vec![
            node(
                "MatMul",
                "/fc1/MatMul",
                &["features", "fc1.weight_T"],
                &["/fc1/MatMul_output_0"],
                vec![],
            ),
            node(
                "Add",
                "/fc1/Add",
                &["fc1.bias", "/fc1/MatMul_output_0"],
                &["/fc1/Add_output_0"],
                vec![],
            ),
            node(
                "Tanh",
                "/act1/Tanh",
                &["/fc1/Add_output_0"],
                &["/act1/Tanh_output_0"],
                vec![],
            ),
            node(
                "MatMul",
                "/fc2/MatMul",
                &["/act1/Tanh_output_0", "fc2.weight_T"],
                &["/fc2/MatMul_output_0"],
                vec![],
            ),
            node(
                "LeakyRelu",
                "/act2/LeakyRelu",
                &["/fc2/MatMul_output_0"],
                &["/act2/LeakyRelu_output_0"],
                vec![float("alpha", 0.01)],
            ),
            node(
                "Gemm",
                "/fc3/Gemm",
                &["/act2/LeakyRelu_output_0", "fc3.weight", "fc3.bias"],
                &["/fc3/Gemm_output_0"],
                vec![int("transB", 1)],
            ),
            node(
                "Softmax",
                "/softmax/Softmax",
                &["/fc3/Gemm_output_0"],
                &["probs"],
                vec![int("axis", -1)],
            ),
        ],
        vec![
            floats("fc1.weight_T", &[4, 5], &flat(&w0), true),
            floats("fc1.bias", &[5], &[0.1, -0.1, 0.2, 0.0, -0.3], true),
            floats("fc2.weight_T", &[5, 4], &flat(&w1), false),
            floats("fc3.weight", &[3, 4], &flat(&w2), true),
            floats("fc3.bias", &[3], &[0.05, 0.0, -0.05], false),
        ],
        input("features", 4),
        &["probs"],
    );
    (m, pattern(6, 4, 1.3))
}

/// Gemm(x[N,3], W[3,4], b) then GELU in one of the forms converters write, output `y`.
pub fn gelu_network(form: &str) -> (ModelProto, Array2<f32>) {
    let w = pattern(3, 4, 1.1);
    let mut inits = vec![
        floats("W", &[3, 4], &flat(&w), true),
        floats("b", &[4], &[0.3, -0.2, 0.0, 0.1], true),
        floats("sqrt2", &[], &[std::f32::consts::SQRT_2], false),
        floats("inv_sqrt2", &[], &[std::f32::consts::FRAC_1_SQRT_2], false),
        floats("one", &[], &[1.0], false),
        floats("half", &[], &[0.5], false),
    ];
    let gemm = node("Gemm", "fc", &["x", "W", "b"], &["z"], vec![]);
    let tail = match form {
        "erf_mul_first" => vec![
            node("Div", "div", &["z", "sqrt2"], &["d"], vec![]),
            node("Erf", "erf", &["d"], &["e"], vec![]),
            node("Add", "plus1", &["e", "one"], &["a"], vec![]),
            node("Mul", "times_x", &["z", "a"], &["m"], vec![]),
            node("Mul", "halve", &["m", "half"], &["y"], vec![]),
        ],
        "erf_half_first" => vec![
            node("Div", "div", &["z", "sqrt2"], &["d"], vec![]),
            node("Erf", "erf", &["d"], &["e"], vec![]),
            node("Add", "plus1", &["one", "e"], &["a"], vec![]),
            node("Mul", "halve", &["a", "half"], &["h"], vec![]),
            node("Mul", "times_x", &["z", "h"], &["y"], vec![]),
        ],
        "erf_half_last" => vec![
            node("Mul", "scale", &["inv_sqrt2", "z"], &["d"], vec![]),
            node("Erf", "erf", &["d"], &["e"], vec![]),
            node("Add", "plus1", &["e", "one"], &["a"], vec![]),
            node("Mul", "halve", &["z", "half"], &["h"], vec![]),
            node("Mul", "times", &["h", "a"], &["y"], vec![]),
        ],
        "gelu_none" => vec![node("Gelu", "gelu", &["z"], &["y"], vec![])],
        _ => vec![node(
            "Gelu",
            "gelu",
            &["z"],
            &["y"],
            vec![string("approximate", "tanh")],
        )],
    };
    if form.starts_with("gelu") {
        inits.truncate(2);
    }
    let mut nodes = vec![gemm];
    nodes.extend(tail);
    let mut m = model(nodes, inits, input("x", 3), &["y"]);
    set_versions(&mut m, 20, 9);
    (m, pattern(7, 3, 2.5))
}

/// skl2onnx's MLPClassifier (binary) over a double input: Cast, two dense layers, then the
/// tails `[1 − p, p]`, ArgMax → Cast labels and ZipMap probabilities. Also returns the chain
/// alone (output `p`) as the reference.
pub fn sklearn_binary() -> (ModelProto, ModelProto) {
    let (w0, w1) = (pattern(4, 3, 0.7), pattern(3, 1, 1.2));
    let chain = vec![
        node(
            "Cast",
            "cast_in",
            &["X"],
            &["xf"],
            vec![int("to", DataType::Float as i64)],
        ),
        node(
            "MatMul",
            "MatMul",
            &["xf", "coefficient"],
            &["mul_result"],
            vec![],
        ),
        node(
            "Add",
            "Add",
            &["mul_result", "intercepts"],
            &["add_result"],
            vec![],
        ),
        node(
            "Relu",
            "Relu",
            &["add_result"],
            &["next_activations"],
            vec![],
        ),
        node(
            "MatMul",
            "MatMul1",
            &["next_activations", "coefficient1"],
            &["mul_result1"],
            vec![],
        ),
        node(
            "Add",
            "Add1",
            &["mul_result1", "intercepts1"],
            &["add_result1"],
            vec![],
        ),
        node("Sigmoid", "Sigmoid", &["add_result1"], &["p"], vec![]),
    ];
    let inits = vec![
        floats("coefficient", &[4, 3], &flat(&w0), true),
        floats("intercepts", &[1, 3], &[0.1, 0.2, -0.1], true),
        floats("coefficient1", &[3, 1], &flat(&w1), true),
        floats("intercepts1", &[1, 1], &[-0.05], true),
    ];
    let mut full_nodes = chain.clone();
    full_nodes.extend([
        node(
            "Sub",
            "Sub",
            &["unity", "p"],
            &["negative_class_proba"],
            vec![],
        ),
        node(
            "Concat",
            "Concat",
            &["negative_class_proba", "p"],
            &["probabilities"],
            vec![int("axis", 1)],
        ),
        node(
            "ArgMax",
            "ArgMax",
            &["probabilities"],
            &["label_idx"],
            vec![int("axis", 1)],
        ),
        node(
            "Cast",
            "Cast",
            &["label_idx"],
            &["output_label"],
            vec![int("to", DataType::Int64 as i64)],
        ),
        ml_node(
            "ZipMap",
            "ZipMap",
            &["probabilities"],
            &["output_probability"],
        ),
    ]);
    let mut full_inits = inits.clone();
    full_inits.push(floats("unity", &[], &[1.0], false));
    let mut full = model(
        full_nodes,
        full_inits,
        typed("X", DataType::Double, &[None, Some(4)]),
        &[],
    );
    if let Some(g) = full.graph.as_mut() {
        g.output = vec![
            typed("output_label", DataType::Int64, &[None]),
            ValueInfoProto {
                name: Some("output_probability".into()),
                ..Default::default()
            },
        ];
    }
    full.producer_name = Some("skl2onnx".into());
    full.opset_import.push(OperatorSetIdProto {
        domain: Some("ai.onnx.ml".into()),
        version: Some(1),
    });
    let chain_only = model(chain, inits, input("X", 4), &["p"]);
    (full, chain_only)
}

pub fn ints_attr(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        ints: v.to_vec(),
        ..attribute(name, AttributeType::Ints)
    }
}

pub fn floats_attr(name: &str, v: &[f32]) -> AttributeProto {
    AttributeProto {
        floats: v.to_vec(),
        ..attribute(name, AttributeType::Floats)
    }
}
