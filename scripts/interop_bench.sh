#!/usr/bin/env bash
# Issue 11's figures: LeNet-300-100 trained on Fashion-MNIST and quantized (int8
# static) through the HTTP API, then its ONNX export (?format=onnx, QDQ) run in ONNX
# Runtime beside kiln's own int8 network (`kiln measure`) in the same run, one
# thread each: rows/s at batch 1024, µs at batch 1, accuracy and class agreement.
# Also the time to upload (import) a LeNet-300-100 ONNX file and a .keras file.
#
#   scripts/interop_bench.sh   # needs dataset-fashion-mnist and the packages of
#                              # scripts/interop/requirements.txt (the CI venv has them)
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
fashion_mnist_session
KILN_BIN="${KILN_BIN:-${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/kiln}"
PY="${PYTHON:-python3}"
[[ -x "$REPO_ROOT/.ci/.venv/bin/python" ]] && PY="$REPO_ROOT/.ci/.venv/bin/python"

KERAS_BACKEND=numpy "$PY" "$SCRIPTS_DIR/interop_bench.py" "$KILN_URL" "$D" "$T" "$work" "$KILN_BIN" "$work/test.npz"
