"""Shared pieces of the interop tests: a kiln client that raises on errors, and helpers to
run ONNX files in ONNX Runtime. The server comes from $KILN_URL (scripts/interop/run.sh starts one)."""
import io
import os
import sys
import time
import uuid

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from kiln_api import ApiError, request  # noqa: E402,F401  (ApiError is the tests' too)

os.environ.setdefault("KERAS_BACKEND", "numpy")


class Kiln:
    """The interop tests' client: errors raise ApiError (from scripts/kiln_api.py) so a test can
    assert on a refusal's status and problem document."""

    def __init__(self, url):
        self.url = url.rstrip("/")

    def call(self, method, path, body=None, raw=None, headers=None):
        return request(self.url, method, path, body, raw, headers)

    def upload(self, path, content, name, fields=None):
        boundary = uuid.uuid4().hex
        parts = b""
        for k, v in (fields or {}).items():
            parts += f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n".encode()
        parts += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
                  "Content-Type: application/octet-stream\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()
        return self.call("POST", path, raw=parts,
                         headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})

    def upload_model(self, content, name):
        return self.upload("/v1/models", content, name, {"name": name})

    def upload_dataset(self, x, y, name):
        buf = io.BytesIO()
        np.savez(buf, x=np.asarray(x, dtype=np.float32), y=np.asarray(y))
        return self.upload("/v1/datasets", buf.getvalue(), f"{name}.npz", {"name": name})

    def predict(self, model_id, x):
        out = []
        x = np.asarray(x, dtype=np.float32)
        # JSON bodies are capped at 2 MB (axum's default); a float32 printed by Python takes up to
        # ~22 bytes.
        step = max(1, 1_500_000 // (24 * x.shape[1]))
        for start in range(0, len(x), step):
            chunk = x[start:start + step]
            out.extend(self.call("POST", f"/v1/models/{model_id}/predict", {"inputs": chunk.tolist()})["outputs"])
        return np.asarray(out, dtype=np.float32)

    def job(self, kind, model, dataset, params, timeout=600):
        j = self.call("POST", "/v1/jobs", {"kind": kind, "model": model, "dataset": dataset, "params": params})
        deadline = time.time() + timeout
        while j["status"] not in ("succeeded", "failed", "cancelled"):
            assert time.time() < deadline, f"{kind} job {j['id']} did not finish in {timeout} s"
            time.sleep(0.05)
            j = self.call("GET", f"/v1/jobs/{j['id']}")
        assert j["status"] == "succeeded", f"{kind} job {j['id']} {j['status']}: {j.get('error')}"
        return j

    def download_onnx(self, model_id):
        return self.call("GET", f"/v1/models/{model_id}/download?format=onnx")


@pytest.fixture(scope="session")
def kiln():
    url = os.environ.get("KILN_URL")
    if not url:
        pytest.fail("KILN_URL is not set: run scripts/interop/run.sh, which starts a server")
    return Kiln(url)


def ort_run(model_bytes, x):
    """Runs an ONNX model on x with one thread; returns {output name: value}."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    values = sess.run(None, {sess.get_inputs()[0].name: np.asarray(x, dtype=np.float32)})
    return dict(zip(names, values)), sess


def zipmap_to_array(maps):
    """ZipMap's list of {class: probability} dicts as a [rows, classes] array, classes sorted."""
    keys = sorted(maps[0])
    return np.asarray([[m[k] for k in keys] for m in maps], dtype=np.float32)


def max_abs_diff(a, b):
    a = np.asarray(a, dtype=np.float64).reshape(len(a), -1)
    b = np.asarray(b, dtype=np.float64).reshape(len(b), -1)
    assert a.shape == b.shape, f"shapes differ: {a.shape} vs {b.shape}"
    return float(np.max(np.abs(a - b)))
