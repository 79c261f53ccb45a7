#!/usr/bin/env bash
# The README's quickstart as a script: the source document's Keras example
# (Dense 64 relu → Dense 32 relu → Dense 1 sigmoid, Adam, binary cross-entropy,
# 10 epochs, batch 32) trained and evaluated through kiln's HTTP API.
#
#   cargo run --release            # in one terminal: the server on 127.0.0.1:8080
#   scripts/quickstart.sh          # in another
#
# Environment: KILN_URL (default http://127.0.0.1:8080); KILN_BIN to generate
# the data with a built binary instead of `cargo run --release`; MODEL_OUT
# (default model.safetensors) for the downloaded model; DATA_DIR (default /tmp)
# for the generated CSV files. Needs curl and python3.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

DATA_DIR="${DATA_DIR:-/tmp}"
MODEL_OUT="${MODEL_OUT:-model.safetensors}"
TRAIN_CSV="$DATA_DIR/kiln-train.csv"
TEST_CSV="$DATA_DIR/kiln-test.csv"

api GET /healthz >/dev/null

echo "1. generating data: 16000 × 100 (seed 42) for training, 4000 × 100 (seed 7) for testing"
gen_data --rows 16000 --features 100 --seed 42 >"$TRAIN_CSV"
gen_data --rows 4000 --features 100 --seed 7 >"$TEST_CSV"

echo "2. uploading the datasets"
train_ds="$(api POST /v1/datasets -F "file=@$TRAIN_CSV" -F name=train)"
test_ds="$(api POST /v1/datasets -F "file=@$TEST_CSV" -F name=test)"
D="$(jget id <<<"$train_ds")"
T="$(jget id <<<"$test_ds")"
echo "   train $D: $(jget rows <<<"$train_ds") rows, $(jget features <<<"$train_ds") features, task $(jget task <<<"$train_ds")"
echo "   test  $T: $(jget rows <<<"$test_ds") rows"

echo "3. creating the untrained seed model"
model="$(api_json POST /v1/models "$SEED_MODEL_JSON")"
M="$(jget id <<<"$model")"
echo "   model $M: $(jget params <<<"$model") parameters"

echo "4. training: 10 epochs, batch 32, Adam lr 0.001"
job="$(api_json POST /v1/jobs "$(train_job_json "$M" "$D" "$T")")"
J="$(jget id <<<"$job")"
job="$(wait_job "$J")"
TRAINED="$(jget result.model_id <<<"$job")"
echo "   job $J succeeded; trained model $TRAINED; metrics:"
jget result.metrics <<<"$job" | jpretty | sed 's/^/   /'
echo "   per-epoch history (GET /v1/jobs/$J/metrics):"
api GET "/v1/jobs/$J/metrics" | jlines | sed 's/^/   /'

echo "5. downloading the trained model to $MODEL_OUT"
download "/v1/models/$TRAINED/download" "$MODEL_OUT"
echo "   $(wc -c <"$MODEL_OUT") bytes"

echo "6. evaluating the trained model on the test set"
job="$(api_json POST /v1/jobs "$(evaluate_job_json "$TRAINED" "$T")")"
E="$(jget id <<<"$job")"
job="$(wait_job "$E")"
echo "   job $E succeeded; metrics:"
jget result.metrics <<<"$job" | jpretty | sed 's/^/   /'
echo "test accuracy: $(jget result.metrics.accuracy <<<"$job")"

echo "7. pruning to 95 % with a gradual schedule while fine-tuning"
job="$(api_json POST /v1/jobs '{"kind": "prune", "model": "'"$TRAINED"'", "dataset": "'"$D"'", "eval_dataset": "'"$T"'",
  "params": {"method": "magnitude", "sparsity": 0.95, "schedule": {"type": "polynomial"},
             "fine_tune": {"epochs": 6, "batch_size": 128, "optimizer": {"name": "adam", "lr": 0.0005}}}}')"
job="$(wait_job "$(jget id <<<"$job")")"
PRUNED="$(jget result.model_id <<<"$job")"
for k in accuracy nonzero_params size_bytes latency_us_b1; do
    echo "   $k: $(jget "result.before.$k" <<<"$job") → $(jget "result.metrics.$k" <<<"$job")"
done

echo "8. sharing weights (5-bit codebooks) and entropy coding"
job="$(api_json POST /v1/jobs '{"kind": "compress", "model": "'"$PRUNED"'", "dataset": "'"$D"'", "eval_dataset": "'"$T"'",
  "params": {"bits": 5, "fine_tune": {"epochs": 1, "optimizer": {"name": "adam", "lr": 0.0001}}}}')"
job="$(wait_job "$(jget id <<<"$job")")"
SMALL="$(jget result.model_id <<<"$job")"
echo "   accuracy $(jget result.metrics.accuracy <<<"$job"), $(jget result.metrics.size_bytes <<<"$job") bytes," \
    "$(jget result.metrics.compression_ratio_vs_dense <<<"$job")× smaller than dense fp32 (coder $(jget result.metrics.coder <<<"$job"))"

echo "9. downloading the compressed artifact and uploading it again"
download "/v1/models/$SMALL/download" "${MODEL_OUT%.*}.kilnz"
again="$(api POST /v1/models -F "file=@${MODEL_OUT%.*}.kilnz" -F name=small-again)"
echo "   model $(jget id <<<"$again"): dtype $(jget dtype <<<"$again"), $(jget size_bytes <<<"$again") bytes"

echo "10. distilling the trained model into a student a quarter as wide, with a same-job baseline"
job="$(api_json POST /v1/jobs '{"kind": "distill", "model": "'"$TRAINED"'", "dataset": "'"$D"'", "eval_dataset": "'"$T"'",
  "params": {"shrink": 0.25, "temperature": 4, "alpha": 0.1, "baseline": true}}')"
job="$(wait_job "$(jget id <<<"$job")")"
for who in teacher student baseline; do
    echo "   $who: accuracy $(jget "result.metrics.comparison.$who.accuracy" <<<"$job"), params $(jget "result.metrics.comparison.$who.params" <<<"$job")"
done
echo "   $(jget result.metrics.verdict.summary <<<"$job")"
