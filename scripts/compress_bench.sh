#!/usr/bin/env bash
# End-to-end benchmark of issue 3 on Fashion-MNIST through the HTTP API:
# LeNet-300-100 (784 → 300 relu → 100 relu → 10 softmax) trained dense, then
# magnitude-pruned with a gradual schedule and fine-tuned, then weight-shared
# (k-means codebooks) and entropy coded by a compress job; the compressed file
# is downloaded, uploaded again and evaluated. Prints the table of BENCHMARKS.md.
#
#   scripts/compress_bench.sh            # needs dataset-fashion-mnist, numpy, curl
#
# Knobs (environment): EPOCHS (dense training, 10), SPARSITY (0.95),
# PRUNE_EPOCHS (fine-tuning while pruning, 6), BITS (5).
# Without KILN_URL it builds the release binary and starts its own server on a
# free loopback port with one worker and a temporary data directory.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
fashion_mnist_session

python3 "$SCRIPTS_DIR/compress_bench.py" "$KILN_URL" "$D" "$T" "$work"
