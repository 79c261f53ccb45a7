#!/usr/bin/env python3
"""Driver of scripts/distill_bench.sh: teacher, student from scratch and
distilled student on Fashion-MNIST through the HTTP API, each model file then
measured in process with `kiln measure` (single thread).

    distill_bench.py KILN_URL TRAIN_ID TEST_ID WORK_DIR KILN_BIN TEST_NPZ
"""
import json
import os
import subprocess
import sys

from kiln_api import Kiln

URL, TRAIN, TEST, WORK, KILN_BIN, TEST_NPZ = sys.argv[1:7]
EPOCHS = int(os.environ.get("EPOCHS", "10"))
BATCH = int(os.environ.get("BATCH", "32"))
TEMPERATURE = float(os.environ.get("TEMPERATURE", "4"))
ALPHA = float(os.environ.get("ALPHA", "0.1"))
TEACHER_BATCH = int(os.environ.get("TEACHER_BATCH", str(BATCH)))
# "cosine" trains the teacher with cosine learning-rate decay (a stronger teacher, same epochs).
TEACHER_SCHEDULE = os.environ.get("TEACHER_SCHEDULE", "constant")
# More distill jobs on other seeds ("1,2,3"): each prints distilled vs baseline from the same job.
SEEDS = [int(v) for v in os.environ.get("SEEDS", "").split(",") if v.strip()]
TRAIN_PARAMS = {"epochs": EPOCHS, "batch_size": BATCH, "optimizer": {"name": "adam", "lr": 0.001}}
# The anchor, Keras 3 on this machine class (same settings).
KERAS = {"teacher": (0.876, 93.0), "student from scratch": (0.868, 11.0), "distilled student": (0.853, 98.0)}

TEACHER = {"input_dim": 784, "layers": [
    {"type": "dense", "units": 1200, "activation": "relu"},
    {"type": "dropout", "rate": 0.2},
    {"type": "dense", "units": 1200, "activation": "relu"},
    {"type": "dropout", "rate": 0.2},
    {"type": "dense", "units": 10, "activation": "softmax"},
]}
STUDENT = {"input_dim": 784, "layers": [
    {"type": "dense", "units": 64, "activation": "relu"},
    {"type": "dense", "units": 10, "activation": "softmax"},
]}

kiln = Kiln(URL, eval_dataset=TEST)
teacher0 = kiln.call("POST", "/v1/models", {"name": "teacher-1200x2", "architecture": TEACHER})["id"]
teacher_params = dict(TRAIN_PARAMS, batch_size=TEACHER_BATCH)
if TEACHER_SCHEDULE == "cosine":
    teacher_params["lr_schedule"] = {"type": "cosine", "t_max": EPOCHS}
elif TEACHER_SCHEDULE != "constant":
    sys.exit(f"TEACHER_SCHEDULE must be constant or cosine, not {TEACHER_SCHEDULE!r}")
t_secs, t_job = kiln.job("train", teacher0, teacher_params, TRAIN)
teacher = t_job["result"]["model_id"]

student0 = kiln.call("POST", "/v1/models", {"name": "student-64", "architecture": STUDENT})["id"]
s_secs, s_job = kiln.job("train", student0, TRAIN_PARAMS, TRAIN)
scratch = s_job["result"]["model_id"]

DISTILL_PARAMS = dict(TRAIN_PARAMS, student=STUDENT, temperature=TEMPERATURE, alpha=ALPHA, baseline=True)
d_secs, d_job = kiln.job("distill", teacher, DISTILL_PARAMS, TRAIN)
distilled = d_job["result"]["model_id"]
m = d_job["result"]["metrics"]
dist = m["distillation"]

measured = {}
for name, model_id in [("teacher", teacher), ("student from scratch", scratch), ("distilled student", distilled)]:
    path = os.path.join(WORK, f"{model_id}.model")
    kiln.download(model_id, path)
    out = subprocess.run([KILN_BIN, "measure", "--model", path, "--data", TEST_NPZ, "--calls", "2000"],
                         check=True, capture_output=True, text=True).stdout
    measured[name] = json.loads(out)

print(f"\nFashion-MNIST (10,000 test rows), {EPOCHS} epochs, batch {BATCH} (teacher {TEACHER_BATCH}, {TEACHER_SCHEDULE} lr), Adam 0.001; "
      f"T = {TEMPERATURE:g}, alpha = {ALPHA:g}; latency by `kiln measure` (one thread, in process)\n")
print("| model | accuracy | params | bytes | b1 latency (µs) | rows/s b1024 | wall (s) | Keras: accuracy, wall (s) |")
print("|---|---|---|---|---|---|---|---|")
walls = {"teacher": t_secs, "student from scratch": s_secs, "distilled student": d_secs}
for name, x in measured.items():
    ka, kw = KERAS[name]
    print(f"| {name} | {x['accuracy']:.4f} | {x['params']:,} | {x['size_bytes']:,} | {x['latency_us_b1']:.2f} | "
          f"{x['throughput_b1024']:,.0f} | {walls[name]:.1f} | {ka:.3f}, {kw:.0f} |")
b = d_job["result"]["baseline"]
print(f"\ndistill job: {d_secs:.1f} s from POST to succeeded ({KERAS['distilled student'][1] / d_secs:.1f}× "
      f"faster than Keras' {KERAS['distilled student'][1]:.0f} s); teacher soft targets {dist['teacher_outputs']} "
      f"({dist['teacher_cache_bytes']:,} bytes) in {dist['teacher_seconds']:.2f} s; distilled student trained in "
      f"{m['train_seconds']:.1f} s, the baseline in {b['train_seconds']:.1f} s on a second thread")
print(f"same job: distilled {m['accuracy']:.4f} vs baseline (same student, same initial weights, labels only) "
      f"{b['accuracy']:.4f}; agreement with the teacher {m['agreement_with_teacher']:.4f} vs "
      f"{b['agreement_with_teacher']:.4f}")
print("verdict:", m["verdict"]["summary"])
for seed in SEEDS:
    _, job = kiln.job("distill", teacher, dict(DISTILL_PARAMS, seed=seed), TRAIN)
    got, base = job["result"]["metrics"]["accuracy"], job["result"]["baseline"]["accuracy"]
    print(f"seed {seed}: distilled {got:.4f} vs baseline {base:.4f} ({100 * (got - base):+.2f} points)")
