#!/usr/bin/env python3
"""Driver of scripts/quantize_bench.sh: trains LeNet-300-100, quantizes it three
ways through the HTTP API, and measures every model file in process with
`kiln measure` (single thread, median of 2,000 batch-1 calls).

    quantize_bench.py KILN_URL TRAIN_ID TEST_ID WORK_DIR KILN_BIN TEST_NPZ
"""
import json
import os
import subprocess
import sys

from kiln_api import LENET, Kiln

URL, TRAIN, TEST, WORK, KILN_BIN, TEST_NPZ = sys.argv[1:7]
EPOCHS = int(os.environ.get("EPOCHS", "10"))
# `kiln measure` runs per model, interleaved across models; the median run is reported.
RUNS = int(os.environ.get("MEASURE_RUNS", "3"))
kiln = Kiln(URL, eval_dataset=TEST)

model = kiln.call("POST", "/v1/models", {"name": "lenet-300-100", "architecture": LENET})["id"]
_, train = kiln.job("train", model, {"epochs": EPOCHS, "batch_size": 128,
                                     "optimizer": {"name": "adam", "lr": 0.001}}, TRAIN)
fp32 = train["result"]["model_id"]
runs = [("fp32", fp32, None)]
calibration = {"method": "percentile", "percentile": 99.99, "samples": 2000}
for name, params in [
    ("int8 dynamic", {"mode": "dynamic"}),
    ("int8 static", {"mode": "static", "calibration": dict(calibration, compare=True)}),
    ("int8 QAT", {"mode": "qat", "calibration": calibration,
                  "fine_tune": {"epochs": 1, "batch_size": 128, "optimizer": {"name": "adam", "lr": 0.0001}}}),
]:
    secs, j = kiln.job("quantize", fp32, params, TRAIN)
    runs.append((name, j["result"]["model_id"], (secs, j["result"]["metrics"])))

paths = []
for name, model_id, job in runs:
    path = os.path.join(WORK, f"{model_id}.model")
    kiln.download(model_id, path)
    paths.append(path)
measured = [[] for _ in runs]
for _ in range(RUNS):
    for i, path in enumerate(paths):
        out = subprocess.run([KILN_BIN, "measure", "--model", path, "--data", TEST_NPZ, "--calls", "2000"],
                             check=True, capture_output=True, text=True).stdout
        measured[i].append(json.loads(out))
rows = []
for (name, _, job), ms in zip(runs, measured):
    ms.sort(key=lambda m: m["throughput_b1024"])
    m = dict(ms[len(ms) // 2])
    m["latency_us_b1"] = sorted(x["latency_us_b1"] for x in ms)[len(ms) // 2]
    m["throughputs"] = [round(x["throughput_b1024"]) for x in ms]
    rows.append((name, m, job))

base = rows[0][1]
print("\nLeNet-300-100 on Fashion-MNIST (10,000 test rows); `kiln measure`, one thread, in process\n")
print("| model | accuracy | bytes | × smaller | latency b1 (µs, median of 2,000) | rows/s b1024 | vs fp32 | job (s) |")
print("|---|---|---|---|---|---|---|---|")
for name, m, job in rows:
    print(f"| {name} | {m['accuracy']:.4f} | {m['size_bytes']:,} | {base['size_bytes'] / m['size_bytes']:.2f} | "
          f"{m['latency_us_b1']:.2f} | {m['throughput_b1024']:,.0f} | "
          f"{m['throughput_b1024'] / base['throughput_b1024']:.2f}× | {'' if job is None else f'{job[0]:.1f}'} |")
print(f"\n(medians of {RUNS} interleaved `kiln measure` runs; batch-1024 rows/s of every run:",
      "; ".join(f"{n}: {m['throughputs']}" for n, m, _ in rows) + ")")
static = rows[2][2][1]
print("\nisa:", rows[1][1].get("isa"), "| static float layers:", static.get("float_layers"))
print("calibration comparison (static):")
for c in static.get("calibration_comparison", []):
    print(f"  {c['method']:>18} samples {c['samples']:>5}: accuracy {c['main_metric']:.4f}")
