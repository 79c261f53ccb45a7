"""kiln's ONNX exports in ONNX Runtime: an imported scikit-learn classifier is
optimized in kiln (magnitude and neuron pruning, weight sharing, int8 static and
dynamic) and every result is downloaded with ?format=onnx, checked by
onnx.checker (full_check) and run in ONNX Runtime. fp32 outputs agree with kiln's
own predictions within 1e-5; int8 graphs pick the same class on ≥ 99.5 % of rows
and score the same accuracy to 0.1 point."""
import numpy as np
import onnx
import pytest

from conftest import max_abs_diff, ort_run
from test_import import blobs

FP32_TOL = 1e-5


@pytest.fixture(scope="module")
def base(kiln):
    """A 10-class scikit-learn MLP imported through skl2onnx, with its train and test sets in kiln."""
    from sklearn.neural_network import MLPClassifier
    from skl2onnx import to_onnx

    x, y = blobs(6000, 32, 10, seed=11)
    clf = MLPClassifier(hidden_layer_sizes=(128, 64), max_iter=60, random_state=0).fit(x[:4000], y[:4000])
    model = kiln.upload_model(to_onnx(clf, x[:1]).SerializeToString(), "sk-mlp-10.onnx")
    train = kiln.upload_dataset(x[:4000], y[:4000], "export-train")
    test_x, test_y = x[4000:], y[4000:]
    return {"model": model, "train": train, "x": test_x, "y": test_y}


def exported(kiln, model_id, source):
    data = kiln.download_onnx(model_id)
    m = onnx.load_from_string(data)
    onnx.checker.check_model(m, full_check=True)
    assert m.producer_name == "kiln"
    assert [i.name for i in m.graph.input] == [source["input_name"]]
    assert [o.name for o in m.graph.output] == [source["output_name"]]
    return data, m


def derived(kiln, base, params, kind):
    job = kiln.job(kind, base["model"]["id"], base["train"]["id"], params)
    return kiln.call("GET", f"/v1/models/{job['result']['model_id']}")


FP32_JOBS = [
    ("as imported", None, None),
    ("magnitude-pruned", "prune", {"method": "magnitude", "sparsity": 0.8}),
    ("neuron-pruned", "prune", {"method": "neurons", "sparsity": 0.5}),
    ("compressed", "compress", {"bits": 5}),
]


@pytest.mark.parametrize("what,kind,params", FP32_JOBS, ids=[c[0] for c in FP32_JOBS])
def test_fp32_exports_run_in_onnx_runtime_to_kilns_outputs(kiln, base, what, kind, params):
    model = base["model"] if kind is None else derived(kiln, base, params, kind)
    assert model["source"] == base["model"]["source"], "derived models keep where they came from"
    data, m = exported(kiln, model["id"], model["source"])
    if what == "magnitude-pruned":
        zeros = sum(int((onnx.numpy_helper.to_array(t) == 0).sum()) for t in m.graph.initializer)
        # Every weight the job pruned is a stored zero in the dense initializers.
        assert zeros >= model["params"] - model["nonzero_params"] > 0.7 * model["params"]
    if what == "neuron-pruned":
        assert model["params"] < base["model"]["params"] * 0.6
    outs, _ = ort_run(data, base["x"])
    got = kiln.predict(model["id"], base["x"])
    assert max_abs_diff(list(outs.values())[0], got) <= FP32_TOL


INT8_JOBS = [
    ("static per-channel", {"mode": "static", "granularity": "per_channel",
                            "calibration": {"method": "minmax", "samples": 1000}}),
    ("static per-tensor asymmetric", {"mode": "static", "granularity": "per_tensor", "scheme": "asymmetric",
                                      "calibration": {"method": "percentile", "percentile": 99.99, "samples": 1000}}),
    ("dynamic", {"mode": "dynamic"}),
]


@pytest.mark.parametrize("what,params", INT8_JOBS, ids=[c[0] for c in INT8_JOBS])
def test_int8_exports_run_in_onnx_runtime_with_kilns_classes_and_accuracy(kiln, base, what, params):
    model = derived(kiln, base, params, "quantize")
    assert model["dtype"] == "int8"
    data, m = exported(kiln, model["id"], model["source"])
    ops = {n.op_type for n in m.graph.node}
    assert "DequantizeLinear" in ops and "MatMul" in ops, ops
    assert ("DynamicQuantizeLinear" if params["mode"] == "dynamic" else "QuantizeLinear") in ops, ops
    outs, _ = ort_run(data, base["x"])
    ort_classes = np.argmax(list(outs.values())[0], axis=1)
    kiln_classes = np.argmax(kiln.predict(model["id"], base["x"]), axis=1)
    agreement = float(np.mean(ort_classes == kiln_classes))
    assert agreement >= 0.995, f"{what}: the same class on {agreement:.2%} of rows"
    acc_ort = float(np.mean(ort_classes == base["y"]))
    acc_kiln = float(np.mean(kiln_classes == base["y"]))
    assert abs(acc_ort - acc_kiln) <= 0.001 + 1e-12, f"{what}: accuracy {acc_ort:.4f} in ORT vs {acc_kiln:.4f} in kiln"
