#!/usr/bin/env python3
"""Driver of scripts/compress_bench.sh: runs the jobs and prints the table.

    compress_bench.py KILN_URL TRAIN_DATASET_ID TEST_DATASET_ID WORK_DIR
"""
import json
import os
import sys

from kiln_api import LENET, Kiln

URL, TRAIN, TEST, WORK = sys.argv[1:5]
EPOCHS = int(os.environ.get("EPOCHS", "10"))
SPARSITY = float(os.environ.get("SPARSITY", "0.95"))
PRUNE_EPOCHS = int(os.environ.get("PRUNE_EPOCHS", "6"))
BITS = int(os.environ.get("BITS", "5"))

kiln = Kiln(URL, eval_dataset=TEST)
call = kiln.call


def job(kind, model, params, dataset=TRAIN):
    return kiln.job(kind, model, params, dataset)


fine_tune = {"epochs": PRUNE_EPOCHS, "batch_size": 128, "optimizer": {"name": "adam", "lr": 0.0005}}
model = call("POST", "/v1/models", {"name": "lenet-300-100", "architecture": LENET})["id"]
t_train, train = job("train", model, {"epochs": EPOCHS, "batch_size": 128,
                                      "optimizer": {"name": "adam", "lr": 0.001}})
dense = train["result"]["metrics"]
t_prune, prune = job("prune", train["result"]["model_id"], {
    "method": "magnitude", "sparsity": SPARSITY, "scope": "global",
    "schedule": {"type": "polynomial"}, "fine_tune": fine_tune})
pruned = prune["result"]["metrics"]
pruned_id = prune["result"]["model_id"]
t_share, shared_job = job("compress", pruned_id, {"bits": BITS, "coder": "none",
                                                  "fine_tune": {"epochs": 1, "batch_size": 128,
                                                                "optimizer": {"name": "adam", "lr": 0.0001}}})
shared = shared_job["result"]["metrics"]
t_coded, coded_job = job("compress", pruned_id, {"bits": BITS, "coder": "auto",
                                                 "fine_tune": {"epochs": 1, "batch_size": 128,
                                                               "optimizer": {"name": "adam", "lr": 0.0001}}})
coded = coded_job["result"]["metrics"]

# The compressed artifact travels: download it, upload it again, evaluate it.
path = os.path.join(WORK, "lenet.kilnz")
kiln.download(coded_job['result']['model_id'], path)
again = kiln.upload_model(path, "lenet-compressed")
_, ev = job("evaluate", again["id"], {}, dataset=TEST)
reread = ev["result"]["metrics"]

# Network compaction of the dense model: dead units, duplicates, low rank within 0.5 points.
t_compact, compact = job("compact", train["result"]["model_id"],
                         {"low_rank": {"max_accuracy_drop": 0.005}})
compacted = compact["result"]["metrics"]

base = dense["size_bytes"]
rows = [
    ("dense fp32 (train)", dense, t_train),
    (f"pruned {SPARSITY:.0%} (prune, {PRUNE_EPOCHS} epochs)", pruned, t_prune),
    (f"+ shared weights, {BITS} bits (compress, coder none)", shared, t_share),
    (f"+ entropy coded (compress, coder {coded.get('coder', '?')})", coded, t_coded),
    ("compressed file uploaded again (evaluate)", reread, None),
    ("compact of the dense model (low rank, ≤ 0.5 points)", compacted, t_compact),
]
print(f"\nLeNet-300-100 on Fashion-MNIST (test set, 10,000 rows); kiln {URL}\n")
print("| stage | accuracy | non-zeros | bytes | × smaller | latency b1 (µs) | rows/s b1024 | job time (s) |")
print("|---|---|---|---|---|---|---|---|")
for name, m, t in rows:
    print(f"| {name} | {m['accuracy']:.4f} | {m['nonzero_params']:,} | {m['size_bytes']:,} | "
          f"{base / m['size_bytes']:.1f} | {m['latency_us_b1']:.1f} | {m['throughput_b1024']:,.0f} | "
          f"{'' if t is None else f'{t:.1f}'} |")
print(f"\naccuracy change dense → entropy coded: {100 * (coded['accuracy'] - dense['accuracy']):+.2f} points")
print(f"prune + compress jobs: {t_prune + t_coded:.1f} s")
print("kernels of the pruned model:", json.dumps(pruned.get("kernels")))
print("compact actions:", json.dumps([{k: a[k] for k in ("kind", "layer", "detail", "params_before", "params_after", "metric_after")}
                                      for a in compacted.get("actions", [])]))
print("layouts of the compressed model:", json.dumps(coded.get("layouts")))
