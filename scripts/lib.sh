# shellcheck shell=bash
# Shared helpers for scripts/*.sh: HTTP calls against a kiln server and JSON
# field extraction with python3 (no jq needed). Source it; do not run it.
#
# Needs: curl, python3. Uses $KILN_URL (default http://127.0.0.1:8080).

# Whether the caller named a server (scripts that can start their own check this).
KILN_URL_GIVEN="${KILN_URL:+1}"
KILN_URL="${KILN_URL:-http://127.0.0.1:8080}"
KILN_URL="${KILN_URL%/}"
SCRIPTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPTS_DIR/.." && pwd)"

die() {
    echo "error: $*" >&2
    exit 1
}

# start_server WORK_DIR — builds the release binary and starts `kiln serve` on a
# free loopback port with its data in WORK_DIR/data; sets KILN_URL, KILN_BIN and
# server_pid. Pair with stop_server (e.g. in an EXIT trap).
server_pid=""
start_server() {
    local work="$1" deadline
    echo "building the release binary…" >&2
    (cd "$REPO_ROOT" && cargo build --release --locked -q --bin kiln)
    KILN_BIN="${KILN_BIN:-${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/kiln}"
    # Port 0: the OS picks a free port; `kiln serve` prints the address once it is ready.
    KILN_LISTEN=127.0.0.1:0 KILN_DATA_DIR="$work/data" KILN_WORKERS="${KILN_WORKERS:-1}" \
        "$KILN_BIN" serve >"$work/server.log" 2>&1 &
    server_pid=$!
    deadline=$((SECONDS + 60))
    KILN_URL=""
    while [[ -z "$KILN_URL" ]]; do
        if ! kill -0 "$server_pid" 2>/dev/null || ((SECONDS >= deadline)); then
            echo "error: the server did not come up; its log:" >&2
            cat "$work/server.log" >&2
            exit 1
        fi
        sleep 0.1
        KILN_URL="$(grep -o -m1 'kiln listening on http://[^[:space:]]*' "$work/server.log" | sed 's/^kiln listening on //' || true)"
    done
    export KILN_URL
    api GET /healthz >/dev/null
    echo "server on $KILN_URL (data in $work/data, pid $server_pid)" >&2
}

# stop_server — SIGTERM the server start_server started, SIGKILL after 5 s.
stop_server() {
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
}

# api METHOD PATH [curl arguments…] — prints the response body; on an HTTP
# status >= 400 prints the problem document to stderr and exits.
api() {
    local method="$1" path="$2"
    shift 2
    local out status body
    out="$(curl -sS -X "$method" -w '\n%{http_code}' "$@" "$KILN_URL$path")" ||
        die "$method $path: could not reach $KILN_URL"
    status="${out##*$'\n'}"
    body="${out%$'\n'*}"
    if ((status >= 400)); then
        echo "error: $method $path answered $status:" >&2
        echo "$body" >&2
        exit 1
    fi
    printf '%s\n' "$body"
}

# download PATH FILE — GET PATH into FILE; on an HTTP error prints the problem document and exits.
download() {
    local path="$1" file="$2" status
    status="$(curl -sS -w '%{http_code}' -o "$file" "$KILN_URL$path")" ||
        die "GET $path: could not reach $KILN_URL"
    if ((status >= 400)); then
        echo "error: GET $path answered $status:" >&2
        cat "$file" >&2
        echo >&2
        rm -f "$file"
        exit 1
    fi
}

# api_json METHOD PATH JSON — a JSON request body.
api_json() {
    api "$1" "$2" -H 'Content-Type: application/json' --data-binary "$3"
}

# jget PATH < json — one field by dotted path (`result.metrics.accuracy`,
# `items.0.id`); strings print raw, everything else as JSON, missing as "".
jget() {
    python3 -c '
import json, sys
text = sys.stdin.read()
if not text.strip():
    sys.exit(1)  # the request before us failed and said why
v = json.loads(text)
for part in sys.argv[1].split(".") if sys.argv[1] else []:
    if isinstance(v, list):
        v = v[int(part)] if part.isdigit() and int(part) < len(v) else None
    elif isinstance(v, dict):
        v = v.get(part)
    else:
        v = None
if v is None:
    print("")
elif isinstance(v, str):
    print(v)
else:
    print(json.dumps(v, sort_keys=True))
' "$1"
}

# jlines < json — a list (or the first list member of an object) one compact item per line.
jlines() {
    python3 -c '
import json, sys
text = sys.stdin.read()
if not text.strip():
    sys.exit(1)  # the request before us failed and said why
v = json.loads(text)
if isinstance(v, dict):
    v = next((x for x in v.values() if isinstance(x, list)), [v])
for item in v if isinstance(v, list) else [v]:
    print(json.dumps(item, sort_keys=True))
'
}

# jpretty < json — indented JSON.
jpretty() {
    python3 -c '
import json, sys
text = sys.stdin.read()
if not text.strip():
    sys.exit(1)
print(json.dumps(json.loads(text), indent=2, sort_keys=True))
'
}

# gen_data ARGS… — `kiln gen-data` to stdout: $KILN_BIN when set, else `cargo run --release`.
gen_data() {
    if [[ -n "${KILN_BIN:-}" ]]; then
        "$KILN_BIN" gen-data "$@"
    else
        (cd "$REPO_ROOT" && cargo run --release -q -- gen-data "$@")
    fi
}

# wait_job ID [QUIET] — polls GET /v1/jobs/ID until succeeded, failed or
# cancelled; prints the final job JSON; exits unless it succeeded.
wait_job() {
    local id="$1" quiet="${2:-}" job status progress last=""
    while :; do
        job="$(api GET "/v1/jobs/$id")"
        status="$(jget status <<<"$job")"
        case "$status" in
        succeeded) break ;;
        failed | cancelled)
            echo "error: job $id $status: $(jget error <<<"$job")" >&2
            exit 1
            ;;
        esac
        if [[ -z "$quiet" ]]; then
            progress="$(jget progress <<<"$job")"
            if [[ "$status $progress" != "$last" ]]; then
                echo "  job $id: $status, progress ${progress:-0}" >&2
                last="$status $progress"
            fi
        fi
        sleep 0.2
    done
    printf '%s\n' "$job"
}

# The seed model of the source document: Dense(64, relu) → Dense(32, relu) → Dense(1, sigmoid).
# shellcheck disable=SC2034 # used by the scripts that source this file
SEED_MODEL_JSON='{"name":"seed","architecture":{"input_dim":100,"layers":[{"type":"dense","units":64,"activation":"relu"},{"type":"dense","units":32,"activation":"relu"},{"type":"dense","units":1,"activation":"sigmoid"}]}}'

# train_job_json MODEL DATASET EVAL_DATASET — 10 epochs, batch 32, Adam 0.001, binary cross-entropy.
train_job_json() {
    printf '{"kind":"train","model":"%s","dataset":"%s","eval_dataset":"%s","params":{"epochs":10,"batch_size":32,"optimizer":{"name":"adam","lr":0.001},"loss":"binary_crossentropy"}}' \
        "$1" "$2" "$3"
}

# evaluate_job_json MODEL DATASET
evaluate_job_json() {
    printf '{"kind":"evaluate","model":"%s","dataset":"%s"}' "$1" "$2"
}

# fashion_mnist_session — for the Fashion-MNIST benchmarks: a work directory
# ($work, removed on exit), a server of our own unless KILN_URL was given, and
# the IDX files (IDX_DIR, default Debian's dataset-fashion-mnist) converted to
# $work/train.npz and $work/test.npz and uploaded; sets D and T to their ids.
fashion_mnist_session() {
    local idx="${IDX_DIR:-/usr/share/datasets/fashion-mnist}"
    [[ -f "$idx/train-images-idx3-ubyte.gz" ]] ||
        die "Fashion-MNIST not found in $idx (apt-get install dataset-fashion-mnist)"
    work="$(mktemp -d "${TMPDIR:-/tmp}/kiln-fashion.XXXXXX")"
    trap 'stop_server; rm -rf "$work"' EXIT
    if [[ -z "$KILN_URL_GIVEN" ]]; then
        start_server "$work"
    fi
    python3 "$SCRIPTS_DIR/fashion_mnist.py" "$work" "$idx"
    echo "uploading Fashion-MNIST…" >&2
    D="$(api POST /v1/datasets -F "file=@$work/train.npz" -F name=fashion-train | jget id)"
    T="$(api POST /v1/datasets -F "file=@$work/test.npz" -F name=fashion-test | jget id)"
}
