#!/usr/bin/env bash
# Issue 4's figures: LeNet-300-100 on Fashion-MNIST, fp32 vs int8 dynamic /
# static / QAT (quantize jobs through the HTTP API), each model file then
# measured in process by `kiln measure` (accuracy on the 10,000 test rows,
# bytes, batch-1 latency as the median of 2,000 calls, batch-1024 throughput,
# one thread).
#
#   scripts/quantize_bench.sh      # needs dataset-fashion-mnist, numpy, curl
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
fashion_mnist_session
KILN_BIN="${KILN_BIN:-${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/kiln}"

python3 "$SCRIPTS_DIR/quantize_bench.py" "$KILN_URL" "$D" "$T" "$work" "$KILN_BIN" "$work/test.npz"
