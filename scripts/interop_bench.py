"""Driver of scripts/interop_bench.sh (see there).

    interop_bench.py KILN_URL TRAIN_ID TEST_ID WORK_DIR KILN_BIN TEST_NPZ
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnxruntime as ort

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "interop"))
from conftest import Kiln  # noqa: E402
from kiln_api import LENET  # noqa: E402

URL, TRAIN, TEST, WORK, KILN_BIN, TEST_NPZ = sys.argv[1:7]
EPOCHS = int(os.environ.get("EPOCHS", "10"))
RUNS = int(os.environ.get("RUNS", "5"))

kiln = Kiln(URL)
test = np.load(TEST_NPZ)
x, y = test["x"].astype(np.float32), test["y"]


def job(kind, model, params):
    t0 = time.perf_counter()
    j = kiln.job(kind, model, TRAIN, params, timeout=3600)
    print(f"{kind}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return j["result"]["model_id"]


model = kiln.call("POST", "/v1/models", {"name": "lenet-300-100", "architecture": LENET})["id"]
fp32 = job("train", model, {"epochs": EPOCHS, "batch_size": 128, "optimizer": {"name": "adam", "lr": 0.001}})
int8 = job("quantize", fp32, {"mode": "static", "calibration": {"method": "percentile", "percentile": 99.99,
                                                                "samples": 2000}})
files = {}
for name, mid in [("fp32", fp32), ("int8", int8)]:
    path = os.path.join(WORK, f"{name}.safetensors")
    with open(path, "wb") as f:
        f.write(kiln.call("GET", f"/v1/models/{mid}/download"))
    files[name] = (path, kiln.download_onnx(mid))


def ort_measure(onnx_bytes):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(onnx_bytes, opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    out = np.concatenate([sess.run(None, {name: x[i:i + 1024]})[0] for i in range(0, len(x), 1024)])
    batches, rows, t0 = 0, 0, time.perf_counter()
    while batches < 20 or time.perf_counter() - t0 < 1.0:
        start = (batches * 1024) % (len(x) - 1024)
        sess.run(None, {name: x[start:start + 1024]})
        batches, rows = batches + 1, rows + 1024
    throughput = rows / (time.perf_counter() - t0)
    for i in range(100):
        sess.run(None, {name: x[i:i + 1]})
    lat = []
    for i in range(2000):
        row = x[i % len(x): i % len(x) + 1]
        t = time.perf_counter()
        sess.run(None, {name: row})
        lat.append((time.perf_counter() - t) * 1e6)
    return {"throughput_b1024": throughput, "latency_us_b1": statistics.median(lat),
            "classes": out.argmax(axis=1)}


def kiln_measure(path):
    out = subprocess.run([KILN_BIN, "measure", "--model", path, "--data", TEST_NPZ, "--calls", "2000"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


results = {k: [] for k in ["kiln fp32", "ORT fp32 (kiln's export)", "kiln int8", "ORT int8 (kiln's QDQ export)"]}
for _ in range(RUNS):
    results["kiln fp32"].append(kiln_measure(files["fp32"][0]))
    results["ORT fp32 (kiln's export)"].append(ort_measure(files["fp32"][1]))
    results["kiln int8"].append(kiln_measure(files["int8"][0]))
    results["ORT int8 (kiln's QDQ export)"].append(ort_measure(files["int8"][1]))

kiln_int8_classes = kiln.predict(int8, x).argmax(axis=1)
print(f"\nLeNet-300-100 on Fashion-MNIST (10,000 test rows), one thread each, medians of {RUNS} interleaved runs\n")
print("| runtime | accuracy | rows/s b1024 | µs b1 (median of 2,000) | rows/s of every run |")
print("|---|---|---|---|---|")
for name, ms in results.items():
    tp = sorted(m["throughput_b1024"] for m in ms)
    lat = sorted(m["latency_us_b1"] for m in ms)
    acc = ms[0]["accuracy"] if "accuracy" in ms[0] else float(np.mean(ms[0]["classes"] == y))
    print(f"| {name} | {acc:.4f} | {tp[len(tp) // 2]:,.0f} | {lat[len(lat) // 2]:.2f} | "
          f"{', '.join(f'{t / 1000:.0f}k' for t in sorted(m['throughput_b1024'] for m in ms))} |")
ort_classes = results["ORT int8 (kiln's QDQ export)"][0]["classes"]
print(f"\nint8: ORT and kiln pick the same class on {np.mean(ort_classes == kiln_int8_classes):.2%} of rows")
median = {k: statistics.median(m["throughput_b1024"] for m in ms) for k, ms in results.items()}
names = list(results)
print(f"kiln int8 / ORT int8 at batch 1024: {median[names[2]] / median[names[3]]:.2f}x; "
      f"kiln fp32 / ORT fp32: {median[names[0]] / median[names[1]]:.2f}x")

# Import (upload) time: kiln's LeNet ONNX export and a LeNet .keras saved by Keras.
import keras  # noqa: E402

keras.utils.set_random_seed(0)
km = keras.Sequential([keras.Input(shape=(784,)), keras.layers.Dense(300, activation="relu"),
                       keras.layers.Dense(100, activation="relu"), keras.layers.Dense(10, activation="softmax")])
kpath = os.path.join(tempfile.mkdtemp(), "lenet.keras")
km.save(kpath)
with open(kpath, "rb") as f:
    keras_bytes = f.read()
print("\nUpload (import) of a LeNet-300-100 file, POST /v1/models round trip on loopback, median of 20:\n")
print("| file | bytes | ms |")
print("|---|---|---|")
for name, content in [("ONNX (kiln's fp32 export)", files["fp32"][1]), (".keras (Keras 3, numpy backend)", keras_bytes)]:
    times = []
    for i in range(20):
        t = time.perf_counter()
        kiln.upload_model(content, f"import-{i}.{'onnx' if 'ONNX' in name else 'keras'}")
        times.append((time.perf_counter() - t) * 1000)
    print(f"| {name} | {len(content):,} | {statistics.median(times):.1f} |")
