#!/usr/bin/env python3
"""Checks ONNX files kiln exported: onnx.checker (full_check, with shape inference) and a run in
ONNX Runtime. With FILE.input.npy next to FILE.onnx, runs it on those rows; with FILE.kiln.npy
too, compares with kiln's own predictions (same argmax share, largest absolute difference).

    python3 scripts/interop/export_check.py /tmp/kiln-export/*.onnx

The files come from the ignored Rust test `writes_sample_exports_for_the_python_check`, which
scripts/interop/run.sh runs before this check (by hand:)
    KILN_EXPORT_DIR=/tmp/kiln-export cargo test --lib formats::onnx::export -- --ignored
"""

import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort


def check(path: Path) -> bool:
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    ops = sorted({n.op_type for n in model.graph.node})
    options = ort.SessionOptions()
    # ORT's default level fuses QDQ pairs into integer kernels (QLinearMatMul, MatMulInteger).
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.optimized_model_filepath = str(path.with_suffix(".ort-optimized.onnx"))
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    fused = sorted({n.op_type for n in onnx.load(options.optimized_model_filepath).graph.node})
    inp = session.get_inputs()[0]
    out = session.get_outputs()[0]
    x_path = path.with_suffix(".input.npy")
    x = np.load(x_path) if x_path.exists() else np.random.default_rng(0).uniform(-1, 1, (8, inp.shape[1])).astype(np.float32)
    y = session.run([out.name], {inp.name: x})[0]
    line = f"{path.name}: checker ok; ops {ops}; ORT ran {inp.name}{list(x.shape)} -> {out.name}{list(y.shape)}; ORT graph {fused}"
    ok = bool(np.isfinite(y).all())
    k_path = path.with_suffix(".kiln.npy")
    if k_path.exists():
        kiln = np.load(k_path)
        same = float((kiln.argmax(1) == y.argmax(1)).mean())
        diff = float(np.abs(kiln - y).max())
        line += f"; argmax agrees on {same:.2%} of rows, max |ort - kiln| {diff:.3g}"
        # The sample networks are untrained, with near ties between classes where a code's
        # rounding flips the argmax: the bound on the difference is the tight check, as in the
        # Rust test (INT8_MAX_ABS_DIFF); a trained model's ≥ 99.5 % is test_export.py's.
        ok = ok and same >= 0.99 and diff <= 0.03
    print(line)
    return ok


def main() -> int:
    paths = [Path(p) for p in sys.argv[1:] if not p.endswith(".ort-optimized.onnx")]
    if not paths:
        print(__doc__)
        return 2
    results = [check(p) for p in paths]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
