"""Models made outside kiln — scikit-learn through skl2onnx, graphs shaped as
torch.onnx.export writes them (built with onnx.helper), and .keras files saved by
Keras itself — are uploaded over HTTP, evaluated in kiln and compared with ONNX
Runtime's (or Keras') outputs on the same rows: max abs diff ≤ 1e-5."""
import os
import tempfile

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import max_abs_diff, ort_run, zipmap_to_array

TOL = 1e-5
RNG = np.random.default_rng(7)


def blobs(n, features, classes, seed=0):
    """A classification problem: gaussian blobs with overlap."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=2.0, size=(classes, features))
    y = rng.integers(0, classes, size=n)
    x = centers[y] + rng.normal(size=(n, features))
    return x.astype(np.float32), y


# ---- scikit-learn through skl2onnx ----

@pytest.mark.parametrize("classes", [2, 3])
def test_sklearn_mlp_classifier_matches_onnx_runtime_and_scores_the_same(kiln, classes):
    from sklearn.neural_network import MLPClassifier
    from skl2onnx import to_onnx

    x, y = blobs(600, 12, classes, seed=classes)
    clf = MLPClassifier(hidden_layer_sizes=(32, 16), max_iter=300, random_state=0).fit(x[:400], y[:400])
    onx = to_onnx(clf, x[:1])
    model = kiln.upload_model(onx.SerializeToString(), f"sk-mlp-{classes}.onnx")
    src = model["source"]
    assert src["format"] == "onnx" and src["input_name"] == "X"
    assert src["producer_name"] == "skl2onnx"
    assert any("output_label" in n for n in src["notes"]), src["notes"]
    assert model["task"] == ("binary" if classes == 2 else "multiclass")

    outs, _ = ort_run(onx.SerializeToString(), x[400:])
    probs = zipmap_to_array(outs["output_probability"])
    got = kiln.predict(model["id"], x[400:])
    want = probs[:, 1:] if classes == 2 else probs
    assert max_abs_diff(got, want) <= TOL

    # The same model evaluated by a kiln job scores what scikit-learn scores.
    ds = kiln.upload_dataset(x[400:], y[400:], f"sk-test-{classes}")
    job = kiln.job("evaluate", model["id"], ds["id"], {})
    assert abs(job["result"]["metrics"]["accuracy"] - clf.score(x[400:], y[400:])) < 1e-9


def test_a_standard_scaler_pipeline_folds_into_kilns_first_layer(kiln):
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from skl2onnx import to_onnx

    x, y = blobs(500, 8, 3, seed=11)
    x = x * np.array([1, 10, 100, 0.1, 1, 5, 50, 2], dtype=np.float32) + 3.0
    pipe = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(16,), max_iter=400,
                                                         random_state=0)).fit(x[:400], y[:400])
    onx = to_onnx(pipe, x[:1], options={id(pipe.steps[-1][1]): {"zipmap": False}})
    model = kiln.upload_model(onx.SerializeToString(), "sk-pipe.onnx")
    assert any("Scaler" in n for n in model["source"]["notes"]), model["source"]["notes"]
    outs, _ = ort_run(onx.SerializeToString(), x[400:])
    assert max_abs_diff(kiln.predict(model["id"], x[400:]), outs["probabilities"]) <= TOL


def test_sklearn_mlp_regressor_matches_onnx_runtime(kiln):
    from sklearn.neural_network import MLPRegressor
    from skl2onnx import to_onnx

    x = RNG.normal(size=(300, 6)).astype(np.float32)
    t = np.sin(x[:, 0]) + x[:, 1] * x[:, 2]
    reg = MLPRegressor(hidden_layer_sizes=(24,), activation="tanh", max_iter=400, random_state=0).fit(x, t)
    onx = to_onnx(reg, x[:1])
    model = kiln.upload_model(onx.SerializeToString(), "sk-reg.onnx")
    outs, _ = ort_run(onx.SerializeToString(), x)
    assert max_abs_diff(kiln.predict(model["id"], x), outs["variable"]) <= TOL


# ---- graphs shaped as torch.onnx.export writes them ----

def init(name, array):
    return numpy_helper.from_array(np.asarray(array, dtype=np.float32), name)


def torch_graph(opset, form, widths, acts, gelu="erf"):
    """A torch.nn.Sequential of Linear layers as the exporter writes it: `Gemm(transB=1)` with
    PyTorch's [out, in] weights (form "gemm"), or `MatMul` with the transposed weight then `Add`
    (form "matmul"); GELU as torch's Erf decomposition or, at opset 20, the Gelu op."""
    nodes, inits = [], []
    cur = "input"
    for i, (k, n) in enumerate(zip(widths, widths[1:])):
        w = RNG.normal(scale=1 / np.sqrt(k), size=(n, k)).astype(np.float32)
        b = RNG.normal(scale=0.1, size=(n,)).astype(np.float32)
        out = f"/{i}/Gemm_output_0"
        if form == "gemm":
            inits += [init(f"{i}.weight", w), init(f"{i}.bias", b)]
            nodes.append(helper.make_node("Gemm", [cur, f"{i}.weight", f"{i}.bias"], [out],
                                          name=f"/{i}/Gemm", alpha=1.0, beta=1.0, transB=1))
        else:
            inits += [init(f"onnx::MatMul_{i}", w.T), init(f"{i}.bias", b)]
            nodes.append(helper.make_node("MatMul", [cur, f"onnx::MatMul_{i}"], [f"/{i}/MatMul_output_0"],
                                          name=f"/{i}/MatMul"))
            nodes.append(helper.make_node("Add", [f"{i}.bias", f"/{i}/MatMul_output_0"], [out], name=f"/{i}/Add"))
        cur = out
        act = acts[i]
        if act is None:
            continue
        a = f"/act{i}/output_0"
        if act == "gelu" and gelu == "erf":
            nodes += [
                helper.make_node("Constant", [], [f"/act{i}/c_sqrt2"], value=numpy_helper.from_array(np.array(1.4142135381698608, dtype=np.float32))),
                helper.make_node("Div", [cur, f"/act{i}/c_sqrt2"], [f"/act{i}/div"], name=f"/act{i}/Div"),
                helper.make_node("Erf", [f"/act{i}/div"], [f"/act{i}/erf"], name=f"/act{i}/Erf"),
                helper.make_node("Constant", [], [f"/act{i}/c_one"], value=numpy_helper.from_array(np.array(1.0, dtype=np.float32))),
                helper.make_node("Add", [f"/act{i}/erf", f"/act{i}/c_one"], [f"/act{i}/add"], name=f"/act{i}/Add"),
                helper.make_node("Mul", [cur, f"/act{i}/add"], [f"/act{i}/mul"], name=f"/act{i}/Mul"),
                helper.make_node("Constant", [], [f"/act{i}/c_half"], value=numpy_helper.from_array(np.array(0.5, dtype=np.float32))),
                helper.make_node("Mul", [f"/act{i}/mul", f"/act{i}/c_half"], [a], name=f"/act{i}/Mul_1"),
            ]
        elif act == "gelu":
            nodes.append(helper.make_node("Gelu", [cur], [a], name=f"/act{i}/Gelu", approximate=gelu))
        elif act == "leaky_relu":
            nodes.append(helper.make_node("LeakyRelu", [cur], [a], name=f"/act{i}/LeakyRelu", alpha=0.01))
        elif act == "softmax":
            nodes.append(helper.make_node("Softmax", [cur], [a], name=f"/act{i}/Softmax", axis=1))
        else:
            nodes.append(helper.make_node(act, [cur], [a], name=f"/act{i}/{act}"))
        cur = a
    nodes.append(helper.make_node("Identity", [cur], ["output"], name="/Identity"))
    graph = helper.make_graph(
        nodes, "main_graph",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch_size", widths[0]])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch_size", widths[-1]])],
        inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="pytorch",
                          producer_version="2.5.0")
    m.ir_version = 7 if opset < 15 else 8 if opset < 19 else 9 if opset < 21 else 10
    onnx.checker.check_model(m, full_check=True)
    return m


CASES = [
    (11, "gemm", [10, 16, 8, 3], ["Relu", "Tanh", "softmax"], "erf"),
    (13, "matmul", [10, 16, 8, 1], ["gelu", "leaky_relu", "Sigmoid"], "erf"),
    (17, "gemm", [10, 32, 4], ["gelu", None], "erf"),
    (20, "matmul", [10, 16, 16, 2], ["gelu", "gelu", None], "tanh"),
    (20, "gemm", [10, 16, 2], ["gelu", "softmax"], "none"),
]


@pytest.mark.parametrize("opset,form,widths,acts,gelu", CASES)
def test_torch_shaped_graphs_match_onnx_runtime(kiln, opset, form, widths, acts, gelu):
    m = torch_graph(opset, form, widths, acts, gelu)
    model = kiln.upload_model(m.SerializeToString(), f"torch-{form}-{opset}.onnx")
    assert model["source"]["opset"] == opset and model["source"]["producer_name"] == "pytorch"
    x = RNG.normal(size=(64, widths[0])).astype(np.float32)
    outs, _ = ort_run(m.SerializeToString(), x)
    assert max_abs_diff(kiln.predict(model["id"], x), outs["output"]) <= TOL

    # The export gives the names back, and ONNX Runtime runs it to the same outputs.
    exported = kiln.download_onnx(model["id"])
    onnx.checker.check_model(onnx.load_from_string(exported), full_check=True)
    again, sess = ort_run(exported, x)
    assert [i.name for i in sess.get_inputs()] == ["input"]
    assert [o.name for o in sess.get_outputs()] == ["output"]
    assert max_abs_diff(again["output"], outs["output"]) <= TOL


# ---- .keras files saved by Keras ----

def keras_file(model):
    path = os.path.join(tempfile.mkdtemp(), "m.keras")
    model.save(path)
    with open(path, "rb") as f:
        return f.read()


def test_the_source_documents_keras_sequential_matches_keras(kiln):
    import keras

    keras.utils.set_random_seed(3)
    m = keras.Sequential([
        keras.Input(shape=(100,)),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(1, activation="sigmoid"),
    ])
    m.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    model = kiln.upload_model(keras_file(m), "seq.keras")
    assert model["params"] == 8577
    assert model["source"]["format"] == "keras"
    x = RNG.normal(size=(128, 100)).astype(np.float32)
    assert max_abs_diff(kiln.predict(model["id"], x), m.predict(x, verbose=0)) <= TOL


def test_a_functional_keras_chain_with_flatten_dropout_and_activations_matches_keras(kiln):
    import keras

    keras.utils.set_random_seed(4)
    inp = keras.Input(shape=(2, 5), name="pixels")
    h = keras.layers.Flatten()(inp)
    h = keras.layers.Dense(24, activation="gelu")(h)
    h = keras.layers.Dropout(0.3)(h)
    h = keras.layers.Dense(16)(h)
    h = keras.layers.Activation("tanh")(h)
    out = keras.layers.Dense(4, activation="softmax", name="probs")(h)
    m = keras.Model(inp, out)
    model = kiln.upload_model(keras_file(m), "functional.keras")
    assert model["source"]["input_name"] == "pixels"
    x = RNG.normal(size=(64, 2, 5)).astype(np.float32)
    got = kiln.predict(model["id"], x.reshape(64, 10))
    assert max_abs_diff(got, m.predict(x, verbose=0)) <= TOL

    # Exported to ONNX, the Keras model runs in ONNX Runtime to Keras' outputs.
    outs, _ = ort_run(kiln.download_onnx(model["id"]), x.reshape(64, 10))
    assert max_abs_diff(list(outs.values())[0], m.predict(x, verbose=0)) <= TOL


def test_the_source_documents_exact_keras_code_with_input_dim_and_activation_layers(kiln):
    """`Dense(64, activation='relu', input_dim=100)` as the source document writes it (no Input),
    and the ReLU / Softmax layer classes after linear Dense layers."""
    import warnings

    import keras

    keras.utils.set_random_seed(5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = keras.Sequential([
            keras.layers.Dense(64, activation="relu", input_dim=100),
            keras.layers.Dense(32),
            keras.layers.ReLU(),
            keras.layers.Dense(3),
            keras.layers.Softmax(),
        ])
    model = kiln.upload_model(keras_file(m), "source-doc.keras")
    assert model["architecture"]["input_dim"] == 100
    assert [l.get("activation") for l in model["architecture"]["layers"]] == ["relu", "relu", "softmax"]
    x = RNG.normal(size=(50, 100)).astype(np.float32)
    assert max_abs_diff(kiln.predict(model["id"], x), m.predict(x, verbose=0)) <= TOL
