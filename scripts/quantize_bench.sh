#!/usr/bin/env bash
# Issue 4's figures: LeNet-300-100 on Fashion-MNIST, fp32 vs int8 dynamic /
# static / QAT (quantize jobs through the HTTP API), each model file then
# measured in process by `kiln measure` (accuracy on the 10,000 test rows,
# bytes, batch-1 latency as the median of 2,000 calls, batch-1024 throughput,
# one thread).
#
#   scripts/quantize_bench.sh      # needs dataset-fashion-mnist, numpy, curl
set -euo pipefail

own_server=0
[[ -n "${KILN_URL:-}" ]] || own_server=1

# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

IDX_DIR="${IDX_DIR:-/usr/share/datasets/fashion-mnist}"
[[ -f "$IDX_DIR/train-images-idx3-ubyte.gz" ]] ||
    die "Fashion-MNIST not found in $IDX_DIR (apt-get install dataset-fashion-mnist)"

work="$(mktemp -d "${TMPDIR:-/tmp}/kiln-quantize.XXXXXX")"
trap 'stop_server; rm -rf "$work"' EXIT
if ((own_server)); then
    start_server "$work"
fi
KILN_BIN="${KILN_BIN:-$REPO_ROOT/target/release/kiln}"

python3 "$SCRIPTS_DIR/fashion_mnist.py" "$work" "$IDX_DIR"
echo "uploading Fashion-MNIST…" >&2
D="$(api POST /v1/datasets -F "file=@$work/train.npz" -F name=fashion-train | jget id)"
T="$(api POST /v1/datasets -F "file=@$work/test.npz" -F name=fashion-test | jget id)"
rm -f "$work/train.npz"

python3 "$SCRIPTS_DIR/quantize_bench.py" "$KILN_URL" "$D" "$T" "$work" "$KILN_BIN" "$work/test.npz"
