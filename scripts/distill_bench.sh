#!/usr/bin/env bash
# Issue 5's figures: Fashion-MNIST, teacher 784-1200-1200-10 (dropout 0.2),
# student 784-64-10, T = 4, alpha = 0.1, 10 epochs each (batch 32, Adam 0.001,
# Keras' defaults). Through the HTTP API: train the teacher; train the student
# from scratch (a train job); distill it (a distill job with `baseline: true`,
# so the from-scratch student is also trained inside the same job). Every
# model file is then measured in process by `kiln measure`.
#
#   scripts/distill_bench.sh      # needs dataset-fashion-mnist, numpy, curl
#   EPOCHS=2 scripts/distill_bench.sh   # a quicker look
#   TEACHER_BATCH=128 TEACHER_SCHEDULE=cosine SEEDS=1,2,3 scripts/distill_bench.sh
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
fashion_mnist_session
KILN_BIN="${KILN_BIN:-${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/kiln}"

python3 "$SCRIPTS_DIR/distill_bench.py" "$KILN_URL" "$D" "$T" "$work" "$KILN_BIN" "$work/test.npz"
