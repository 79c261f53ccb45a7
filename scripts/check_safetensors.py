#!/usr/bin/env python3
"""Open a kiln model file with Python's `safetensors` package and run it in numpy.

Independent check of kiln's model files (DESIGN §3): the file must open with the
reference `safetensors` reader, and a forward pass written here from the
`architecture` in the header's `__metadata__` must give kiln's predictions.

Requirements (not part of kiln; install them once):

    pip install safetensors numpy

Usage:

    scripts/check_safetensors.py model.safetensors                 # tensors and metadata only
    scripts/check_safetensors.py model.safetensors data.csv        # + predictions as CSV on stdout
    scripts/check_safetensors.py model.safetensors data.csv --compare kiln_predictions.json

The CSV has a header; the features are every column except the label column
(`--label-column NAME`, default: the last column; `--no-label` when the file
has no label column). Predictions are the network's outputs (probabilities for
a sigmoid or softmax output), one row per input row, columns `p0..p{k-1}`.

`--compare FILE` reads reference predictions (JSON: a list of numbers, a list
of lists, or an object with a `predictions`/`outputs`/`probabilities` list;
CSV: numeric columns, header optional), reports the largest absolute
difference and exits with status 1 when it exceeds `--tolerance` (1e-4).

Everything descriptive goes to stderr, so stdout holds only predictions.

Tensor layout kiln writes: `layers.{i}.weight` with shape [in, out] and
`layers.{i}.bias` with shape [out], where i is the index of the layer in the
architecture's `layers` list (dropout layers have no tensors and are the
identity at inference).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from typing import NoReturn

import numpy as np
from safetensors import safe_open

# ---------------------------------------------------------------------------
# Conventions that MUST match kiln's crates/kiln-nn/src/layers/activation.rs (frameworks differ):
#   * leaky_relu negative slope: LEAKY_RELU_SLOPE = 0.01 (PyTorch's default;
#     Keras' LeakyReLU uses 0.3, tf.nn.leaky_relu 0.2).
#   * gelu: the tanh approximation 0.5·z·(1 + tanh(√(2/π)(z + 0.044715 z³)))
#     (PyTorch approximate="tanh", Keras approximate=True), not the erf form.
# ---------------------------------------------------------------------------
LEAKY_RELU_SLOPE = 0.01
GELU_APPROXIMATION = "tanh"  # "tanh" or "erf"


def sigmoid(z: np.ndarray) -> np.ndarray:
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    e = np.exp(z[~pos])
    out[~pos] = e / (1.0 + e)
    return out


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def gelu(z: np.ndarray) -> np.ndarray:
    if GELU_APPROXIMATION == "tanh":
        return 0.5 * z * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (z + 0.044715 * z**3)))
    erf = np.vectorize(math.erf, otypes=[z.dtype])
    return 0.5 * z * (1.0 + erf(z / math.sqrt(2.0)))


ACTIVATIONS = {
    "linear": lambda z: z,
    "relu": lambda z: np.maximum(z, 0.0),
    "relu6": lambda z: np.clip(z, 0.0, 6.0),
    "leaky_relu": lambda z: np.where(z > 0, z, LEAKY_RELU_SLOPE * z),
    "sigmoid": sigmoid,
    "tanh": np.tanh,
    "softmax": softmax,
    "gelu": gelu,
}


def fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def find_architecture(metadata: dict[str, str]) -> dict:
    """The architecture object from `__metadata__`.

    Prefers the key `architecture` (a JSON string); otherwise looks through every
    JSON-valued entry for an `architecture` member or an object that is itself an
    architecture (`input_dim` and `layers`).
    """

    def is_arch(v) -> bool:
        return isinstance(v, dict) and "input_dim" in v and "layers" in v

    def search(v):
        if is_arch(v):
            return v
        if isinstance(v, dict):
            if is_arch(v.get("architecture")):
                return v["architecture"]
            for inner in v.values():
                found = search(inner)
                if found is not None:
                    return found
        return None

    ordered = sorted(metadata.items(), key=lambda kv: kv[0] != "architecture")
    for _, raw in ordered:
        try:
            value = json.loads(raw)
        except (TypeError, ValueError):
            continue
        found = search(value)
        if found is not None:
            return found
    fail("no architecture (an object with input_dim and layers) in the file's __metadata__")


def load_model(path: str):
    try:
        f = safe_open(path, framework="numpy")
    except Exception as e:  # the reader's own error says what is wrong
        fail(f"{path} does not open as safetensors: {e}")
    with f:
        metadata = f.metadata() or {}
        tensors = {name: f.get_tensor(name) for name in f.keys()}
    return metadata, tensors


def describe(path: str, metadata: dict[str, str], tensors: dict[str, np.ndarray]) -> None:
    err = sys.stderr
    print(f"{path}: {len(tensors)} tensors", file=err)
    for name in sorted(tensors, key=natural_key):
        t = tensors[name]
        print(f"  {name:<24} {str(t.dtype):<8} {list(t.shape)}", file=err)
    print("metadata:", file=err)
    for key in sorted(metadata):
        raw = metadata[key]
        try:
            shown = json.dumps(json.loads(raw), sort_keys=True)
        except (TypeError, ValueError):
            shown = raw
        if len(shown) > 400:
            shown = shown[:400] + "…"
        print(f"  {key}: {shown}", file=err)


def natural_key(name: str):
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in name.split(".")]


def build_layers(arch: dict, tensors: dict[str, np.ndarray]):
    """Checks tensor names and shapes against the architecture; returns (kind, W, b, act) steps."""
    width = int(arch["input_dim"])
    steps = []
    used = set()
    for i, layer in enumerate(arch["layers"]):
        kind = layer.get("type")
        if kind == "dropout":
            continue
        if kind != "dense":
            fail(f"layers[{i}]: layer type {kind!r} is not supported by this checker")
        units = int(layer["units"])
        act = layer.get("activation", "linear")
        if act not in ACTIVATIONS:
            fail(f"layers[{i}]: unknown activation {act!r}")
        wname, bname = f"layers.{i}.weight", f"layers.{i}.bias"
        if wname not in tensors:
            fail(f"missing tensor {wname}")
        w = tensors[wname]
        if w.dtype.kind != "f":
            fail(f"{wname} has dtype {w.dtype}; only float model files are supported here")
        if tuple(w.shape) != (width, units):
            fail(f"{wname} has shape {list(w.shape)}, expected [{width}, {units}]")
        used.add(wname)
        b = None
        if layer.get("use_bias", True):
            if bname not in tensors:
                fail(f"missing tensor {bname}")
            b = tensors[bname]
            if tuple(b.shape) != (units,):
                fail(f"{bname} has shape {list(b.shape)}, expected [{units}]")
            used.add(bname)
        steps.append((w.astype(np.float64), None if b is None else b.astype(np.float64), act))
        width = units
    extra = sorted(set(tensors) - used)
    if extra:
        print(f"note: tensors not used by the forward pass: {', '.join(extra)}", file=sys.stderr)
    return steps


def forward(steps, x: np.ndarray) -> np.ndarray:
    a = x.astype(np.float64)
    for w, b, act in steps:
        z = a @ w
        if b is not None:
            z = z + b
        a = ACTIVATIONS[act](z)
    return a


def read_features(path: str, label_column: str | None, no_label: bool, input_dim: int) -> np.ndarray:
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader)
        except StopIteration:
            fail(f"{path} is empty")
        header = [h.strip() for h in header]
        if no_label:
            keep = list(range(len(header)))
        else:
            if label_column is None:
                label_idx = len(header) - 1
            elif label_column in header:
                label_idx = header.index(label_column)
            else:
                fail(f"{path}: no column named {label_column!r} (columns: {', '.join(header)})")
            keep = [j for j in range(len(header)) if j != label_idx]
        rows = []
        for line_no, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(header):
                fail(f"{path}:{line_no}: {len(row)} fields, the header has {len(header)}")
            try:
                rows.append([float(row[j]) for j in keep])
            except ValueError as e:
                fail(f"{path}:{line_no}: {e}")
    x = np.asarray(rows, dtype=np.float32).reshape(len(rows), len(keep))
    if x.shape[1] != input_dim:
        fail(f"{path} has {x.shape[1]} feature columns, the model's input_dim is {input_dim}")
    return x


def read_reference(path: str) -> np.ndarray:
    if path.endswith(".json"):
        with open(path) as fh:
            data = json.load(fh)
        if isinstance(data, dict):
            for key in ("predictions", "outputs", "probabilities", "y_pred"):
                if key in data:
                    data = data[key]
                    break
            else:
                fail(f"{path}: expected a list or an object with a 'predictions' list")
        ref = np.asarray(data, dtype=np.float64)
    else:
        with open(path, newline="") as fh:
            rows = [r for r in csv.reader(fh) if r]
        if rows:
            try:
                [float(v) for v in rows[0]]
            except ValueError:
                rows = rows[1:]  # a header
        ref = np.asarray([[float(v) for v in r] for r in rows], dtype=np.float64)
    if ref.ndim == 1:
        ref = ref.reshape(-1, 1)
    return ref


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="a kiln model file (.safetensors)")
    p.add_argument("csv", nargs="?", help="CSV with a header: features and (by default) a label column")
    p.add_argument("--label-column", help="name of the label column (default: the last column)")
    p.add_argument("--no-label", action="store_true", help="the CSV has only feature columns")
    p.add_argument("--compare", metavar="FILE", help="reference predictions (JSON or CSV) to compare against")
    p.add_argument("--tolerance", type=float, default=1e-4, help="largest accepted abs difference (default 1e-4)")
    args = p.parse_args()

    metadata, tensors = load_model(args.model)
    describe(args.model, metadata, tensors)
    arch = find_architecture(metadata)
    steps = build_layers(arch, tensors)
    params = sum(w.size + (0 if b is None else b.size) for w, b, _ in steps)
    print(f"architecture: input_dim {arch['input_dim']}, {len(arch['layers'])} layers, {params} parameters",
          file=sys.stderr)
    if args.csv is None:
        return 0

    x = read_features(args.csv, args.label_column, args.no_label, int(arch["input_dim"]))
    pred = forward(steps, x)
    print(f"forward pass: {x.shape[0]} rows → outputs of shape {list(pred.shape)}", file=sys.stderr)

    if args.compare is None:
        out = csv.writer(sys.stdout, lineterminator="\n")
        out.writerow([f"p{k}" for k in range(pred.shape[1])])
        for row in pred:
            out.writerow([repr(float(v)) for v in row])
        return 0

    ref = read_reference(args.compare)
    if ref.shape != pred.shape:
        fail(f"{args.compare} has shape {list(ref.shape)}, the forward pass gives {list(pred.shape)}")
    diff = np.abs(ref - pred)
    worst = np.unravel_index(int(np.argmax(diff)), diff.shape)
    max_diff = float(diff.max()) if diff.size else 0.0
    print(f"max abs difference: {max_diff:.3g} (row {worst[0]}, output {worst[1]}); "
          f"tolerance {args.tolerance:g}")
    if pred.shape[1] == 1:
        agree = float(np.mean((pred[:, 0] >= 0.5) == (ref[:, 0] >= 0.5)))
    else:
        agree = float(np.mean(pred.argmax(axis=1) == ref.argmax(axis=1)))
    print(f"predicted classes agree on {agree:.4%} of rows")
    if not (max_diff <= args.tolerance):
        print("MISMATCH", file=sys.stderr)
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
