use super::*;
use crate::model_file::{ModelFile, ModelMeta};
use crate::onnx::export::to_model_proto;
use kiln_nn::Sequential;
use kiln_nn::spec::Architecture;

/// A model kiln writes: Gemm → Relu → Gemm → Gelu(tanh) → MatMul → Softmax.
fn good() -> ModelProto {
    let a: Architecture = serde_json::from_value(serde_json::json!({"input_dim": 4, "layers": [
        {"type": "dense", "units": 3, "activation": "relu"},
        {"type": "dense", "units": 3, "activation": "gelu"},
        {"type": "dense", "units": 2, "activation": "softmax", "use_bias": false}]}))
    .expect("architecture");
    let model = Sequential::new(&a, 1);
    let meta = ModelMeta::new(a);
    to_model_proto(&ModelFile { model, meta }).expect("builds")
}

fn graph(m: &mut ModelProto) -> &mut GraphProto {
    m.graph.as_mut().expect("graph")
}

/// The check's error for `m`, which must be rejected.
fn rejected(m: &ModelProto) -> String {
    check(m)
        .expect_err("the broken model must be rejected")
        .to_string()
}

#[test]
fn the_model_kiln_writes_passes() {
    assert_eq!(check(&good()), Ok(()));
}

#[test]
fn a_node_reading_a_value_nobody_defines_is_named() {
    let mut m = good();
    graph(&mut m).node[1].input[0] = "nowhere".into();
    let err = rejected(&m);
    assert!(
        err.starts_with("node \"layers.0.relu\" (Relu): input \"nowhere\""),
        "{err}"
    );
    assert!(
        err.contains("not a graph input, an initializer or an earlier node's output"),
        "{err}"
    );
}

#[test]
fn nodes_out_of_topological_order_are_rejected() {
    let mut m = good();
    graph(&mut m).node.swap(0, 1);
    let err = rejected(&m);
    assert!(
        err.starts_with("node \"layers.0.relu\" (Relu): input \"layers.0.linear\""),
        "{err}"
    );
}

#[test]
fn a_name_produced_twice_is_rejected() {
    let mut m = good();
    let first = graph(&mut m).node[0].output[0].clone();
    graph(&mut m).node[2].output[0] = first;
    let err = rejected(&m);
    assert_eq!(
        err,
        "node \"layers.1.linear\" (Gemm): the name \"layers.0.linear\" is produced twice \
         (first by node \"layers.0.linear\" (Gemm))"
    );

    let mut m = good();
    graph(&mut m).node[0].output[0] = "layers.1.weight".into();
    assert!(rejected(&m).contains("produced twice (first by initializer \"layers.1.weight\")"));

    let mut m = good();
    graph(&mut m).initializer[0].name = Some("input".into());
    assert!(
        rejected(&m).starts_with("initializer \"input\": the name \"input\" is produced twice")
    );
}

#[test]
fn an_initializer_whose_data_does_not_match_its_dims_is_rejected() {
    let mut m = good();
    let w = &mut graph(&mut m).initializer[0];
    w.raw_data.as_mut().expect("raw").truncate(44);
    assert_eq!(
        rejected(&m),
        "initializer \"layers.0.weight\": raw_data holds 44 bytes; dims [4, 3] of FLOAT need 48"
    );

    let mut m = good();
    let w = &mut graph(&mut m).initializer[0];
    w.raw_data = None;
    w.float_data = vec![0.0; 11];
    assert!(rejected(&m).ends_with("the tensor holds 11 values; dims [4, 3] need 12"));

    let mut m = good();
    graph(&mut m).initializer[0].dims = vec![4, -3];
    assert!(rejected(&m).contains("negative"));

    let mut m = good();
    graph(&mut m).initializer[0].dims = vec![i64::MAX, i64::MAX];
    assert!(rejected(&m).contains("overflow"));

    let mut m = good();
    graph(&mut m).initializer[0].data_type = Some(DataType::String as i32);
    assert!(rejected(&m).contains("data type 8 (STRING) is not one kiln writes"));

    let mut m = good();
    graph(&mut m).initializer[0].int64_data = vec![1];
    assert!(rejected(&m).contains("a field that does not hold FLOAT data"));
}

#[test]
fn a_graph_output_no_node_produces_is_rejected() {
    let mut m = good();
    graph(&mut m).node.pop();
    assert_eq!(
        rejected(&m),
        "graph output #0 \"output\": no node produces this output"
    );

    let mut m = good();
    let out = graph(&mut m).output[0].clone();
    graph(&mut m).output.push(out);
    assert!(rejected(&m).contains("lists this output twice"));

    let mut m = good();
    graph(&mut m).output.clear();
    assert!(rejected(&m).contains("no output"));
}

#[test]
fn inputs_and_outputs_need_tensor_types_with_shapes() {
    let mut m = good();
    graph(&mut m).input[0].r#type = None;
    assert_eq!(
        rejected(&m),
        "graph input #0 \"input\": the value is not typed as a tensor"
    );

    let mut m = good();
    if let Some(TypeValue::TensorType(t)) = graph(&mut m).output[0]
        .r#type
        .as_mut()
        .and_then(|t| t.value.as_mut())
    {
        t.shape = None;
    }
    assert_eq!(
        rejected(&m),
        "graph output #0 \"output\": the tensor has no shape"
    );

    let mut m = good();
    if let Some(TypeValue::TensorType(t)) = graph(&mut m).input[0]
        .r#type
        .as_mut()
        .and_then(|t| t.value.as_mut())
    {
        t.elem_type = None;
    }
    assert!(rejected(&m).contains("element type 0 is not valid"));

    let mut m = good();
    if let Some(TypeValue::TensorType(t)) = graph(&mut m).input[0]
        .r#type
        .as_mut()
        .and_then(|t| t.value.as_mut())
        && let Some(s) = t.shape.as_mut()
    {
        s.dim[0].value = None;
    }
    assert!(rejected(&m).contains("dimension 0 has neither a size nor a name"));
}

#[test]
fn an_op_kiln_does_not_write_is_named_with_the_ops_it_does() {
    let mut m = good();
    graph(&mut m).node[1].op_type = Some("LSTM".into());
    let err = rejected(&m);
    assert!(
        err.starts_with(
            "node \"layers.0.relu\" (LSTM): op type \"LSTM\" is not one kiln writes (Gemm, MatMul"
        ),
        "{err}"
    );

    let mut m = good();
    graph(&mut m).node[1].domain = Some("com.microsoft".into());
    assert!(rejected(&m).contains("domain \"com.microsoft\""));

    let mut m = good();
    graph(&mut m).node[1].input.push("input".into());
    assert_eq!(
        rejected(&m),
        "node \"layers.0.relu\" (Relu): inputs: 2 given; Relu takes 1"
    );
}

#[test]
fn attributes_must_be_known_and_of_the_right_type() {
    let gelu = |m: &mut ModelProto| -> usize {
        graph(m)
            .node
            .iter()
            .position(|n| n.op_type() == "Gelu")
            .expect("gelu")
    };
    let mut m = good();
    let i = gelu(&mut m);
    graph(&mut m).node[i].attribute[0].s = Some(b"fast".to_vec());
    assert_eq!(
        rejected(&m),
        "node \"layers.1.gelu\" (Gelu): approximate must be \"none\" or \"tanh\"; found \"fast\""
    );

    let mut m = good();
    let i = gelu(&mut m);
    graph(&mut m).node[i].attribute[0] = crate::onnx::proto::AttributeProto {
        name: Some("approximate".into()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(1),
        ..Default::default()
    };
    assert!(rejected(&m).contains("attribute \"approximate\" must be a STRING (found type INT)"));

    let mut m = good();
    let i = gelu(&mut m);
    let extra = graph(&mut m).node[i].attribute[0].clone();
    graph(&mut m).node[i].attribute.push(extra);
    assert!(rejected(&m).contains("attribute \"approximate\" is given twice"));

    let mut m = good();
    let softmax = graph(&mut m).node.len() - 1;
    graph(&mut m).node[softmax].attribute[0].name = Some("axes".into());
    assert!(rejected(&m).contains("attribute \"axes\" is not one Softmax takes"));

    let mut m = good();
    let softmax = graph(&mut m).node.len() - 1;
    graph(&mut m).node[softmax].attribute[0].i = None;
    assert!(rejected(&m).contains("attribute \"axis\" must be a INT"));
}

#[test]
fn ir_version_and_opset_must_be_present_and_new_enough() {
    let mut m = good();
    m.ir_version = None;
    assert_eq!(rejected(&m), "model: ir_version is missing");

    let mut m = good();
    m.ir_version = Some(3);
    assert!(rejected(&m).contains("ir_version 3 is older than 7"));

    let mut m = good();
    m.opset_import.clear();
    assert_eq!(
        rejected(&m),
        "model: no default-domain (ai.onnx) opset is imported"
    );

    let mut m = good();
    let again = m.opset_import[0].clone();
    m.opset_import.push(again);
    assert!(rejected(&m).contains("imported more than once"));

    let mut m = good();
    m.opset_import[0].version = Some(19);
    assert_eq!(
        rejected(&m),
        "node \"layers.1.gelu\" (Gelu): Gelu needs opset 20 or newer; the model imports opset 19"
    );

    let mut m = good();
    m.graph = None;
    assert_eq!(rejected(&m), "model: the model has no graph");
}

#[test]
fn an_empty_or_default_message_is_rejected_without_panicking() {
    assert!(check(&ModelProto::default()).is_err());
    let mut m = good();
    graph(&mut m).node[0] = NodeProto::default();
    assert!(rejected(&m).starts_with("node #0 (): op type \"\""));
}
