"""A round of malformed model files, made with the real tools and then broken the way
files break: each is a 422 problem document that names the node or layer and why."""
import io
import os
import tempfile
import zipfile

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import ApiError


def good_graph():
    w1 = numpy_helper.from_array(np.ones((4, 3), np.float32), "w1")
    w2 = numpy_helper.from_array(np.ones((3, 2), np.float32), "w2")
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"], name="fc1"),
        helper.make_node("Relu", ["h"], ["a"], name="relu1"),
        helper.make_node("MatMul", ["a", "w2"], ["y"], name="fc2"),
    ]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])], [w1, w2])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def rejected(kiln, content, name):
    with pytest.raises(ApiError) as e:
        kiln.upload_model(content, name)
    assert e.value.status == 422, e.value.body
    body = e.value.body
    text = body["detail"] + " ".join(err["message"] for err in body.get("errors", []))
    return text


def test_the_good_graph_is_accepted(kiln):
    assert kiln.upload_model(good_graph().SerializeToString(), "good.onnx")["params"] == 18


def test_a_truncated_protobuf_is_rejected(kiln):
    data = good_graph().SerializeToString()
    assert "truncated" in rejected(kiln, data[: len(data) // 2], "cut.onnx").lower()


def test_an_unsupported_op_is_named_with_its_node(kiln):
    m = good_graph()
    m.graph.node[1].op_type = "Conv"
    text = rejected(kiln, m.SerializeToString(), "conv.onnx")
    assert "relu1" in text and "Conv" in text


def test_a_cycle_is_named(kiln):
    m = good_graph()
    m.graph.node[0].input[0] = "y"  # fc1 now reads fc2's output
    text = rejected(kiln, m.SerializeToString(), "cycle.onnx")
    assert "cycle" in text.lower()


def test_a_shape_that_does_not_chain_names_the_node(kiln):
    m = good_graph()
    m.graph.initializer[1].CopyFrom(numpy_helper.from_array(np.ones((5, 2), np.float32), "w2"))
    text = rejected(kiln, m.SerializeToString(), "chain.onnx")
    assert "fc2" in text


def test_weights_of_the_wrong_length_name_the_tensor(kiln):
    m = good_graph()
    m.graph.initializer[0].raw_data = m.graph.initializer[0].raw_data[:-4]
    text = rejected(kiln, m.SerializeToString(), "short.onnx")
    assert "w1" in text


def test_a_tensor_claiming_2_gb_in_a_small_file_is_rejected_without_allocating(kiln):
    m = good_graph()
    m.graph.initializer[0].dims[:] = [4, 134217728]  # 4 × 2^27 floats = 2 GiB
    text = rejected(kiln, m.SerializeToString(), "huge.onnx")
    assert "w1" in text


def test_external_data_is_refused_with_a_clear_message(kiln):
    m = good_graph()
    path = os.path.join(tempfile.mkdtemp(), "ext.onnx")
    onnx.save_model(m, path, save_as_external_data=True, all_tensors_to_one_file=True,
                    location="ext.data", size_threshold=0)
    with open(path, "rb") as f:
        text = rejected(kiln, f.read(), "ext.onnx")
    assert "external" in text.lower()


def keras_zip(config=None, with_weights=True):
    import keras

    os.environ.setdefault("KERAS_BACKEND", "numpy")
    m = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(2, name="d")])
    path = os.path.join(tempfile.mkdtemp(), "m.keras")
    m.save(path)
    out = io.BytesIO()
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w") as dst:
        for item in src.infolist():
            if item.filename == "model.weights.h5" and not with_weights:
                continue
            data = src.read(item.filename)
            if item.filename == "config.json" and config is not None:
                data = config(data.decode()).encode()
            dst.writestr(item, data)
    return out.getvalue()


def test_a_keras_file_without_weights_is_rejected(kiln):
    text = rejected(kiln, keras_zip(with_weights=False), "noweights.keras")
    assert "model.weights.h5" in text


def test_a_keras_layer_kiln_does_not_support_is_named(kiln):
    import keras

    m = keras.Sequential([keras.Input(shape=(8, 8, 1)), keras.layers.Conv2D(2, 3, name="conv"),
                          keras.layers.Flatten(), keras.layers.Dense(1)])
    path = os.path.join(tempfile.mkdtemp(), "conv.keras")
    m.save(path)
    with open(path, "rb") as f:
        text = rejected(kiln, f.read(), "conv.keras")
    assert "conv" in text and "Conv2D" in text
