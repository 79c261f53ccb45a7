#!/usr/bin/env bash
# The interop stage: installs numpy, onnx, onnxruntime, scikit-learn, skl2onnx, keras and
# h5py from PyPI into a virtual environment inside the clone (.ci/.venv, no pip cache),
# starts the release binary on a free loopback port, runs the pytest suite in this folder
# against it and stops the server. Usage: scripts/interop/run.sh [pytest args…]
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

VENV="$REPO_ROOT/.ci/.venv"
if [[ ! -x "$VENV/bin/python" ]]; then
    python3 -m venv "$VENV"
fi
PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    "$VENV/bin/pip" install -q -r "$SCRIPTS_DIR/interop/requirements.txt"

work="$(mktemp -d "${TMPDIR:-/tmp}/kiln-interop.XXXXXX")"
trap 'stop_server; rm -rf "$work"' EXIT
KILN_WORKERS=2 start_server "$work"
cd "$SCRIPTS_DIR/interop"
KERAS_BACKEND=numpy "$VENV/bin/python" -m pytest -q -p no:cacheprovider "$@"

# Every activation and int8 configuration, exported in process by the (otherwise ignored) Rust
# test, through onnx.checker and ONNX Runtime against kiln's own outputs.
cd "$REPO_ROOT"
# The workspace's own selection (not `-p kiln-formats`), so the build `cargo test` left is reused:
# one package alone resolves its dependencies' features anew and compiles them again.
KILN_EXPORT_DIR="$work/exports" cargo test --locked --lib -q \
    onnx::export::tests::writes_sample_exports_for_the_python_check -- --ignored
"$VENV/bin/python" "$SCRIPTS_DIR/interop/export_check.py" "$work"/exports/*.onnx
