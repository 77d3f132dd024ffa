#!/usr/bin/env bash
# The project's test command: Rust unit + HTTP tests, then the end-to-end suite that drives the
# release binary with the official MLflow Python client (tests/e2e).  Extra arguments go to pytest,
# e.g. `scripts/test.sh -k artifacts -x`.
#
# Environment:
#   WASMFLOW_VENV            venv of the e2e suite (default: <repo>/target/e2e-venv)
#   WASMFLOW_PYTHON          interpreter to create it with (default: python3.11, else python3)
#   CARGO_TARGET_DIR         honoured when locating the binary
#   WASMFLOW_SKIP_CARGO_TEST=1  skip `cargo test` (e.g. when CI ran it separately)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

# The release profile for the tests too: its dependencies (wasmtime above all) are the ones the
# release binary below needs, so a clean machine compiles them once instead of twice.
if [[ "${WASMFLOW_SKIP_CARGO_TEST:-0}" != "1" ]]; then
    echo "==> cargo test --workspace --release"
    cargo test --workspace --release
fi

echo "==> cargo build --release -p wasmflow-server"
cargo build --release -p wasmflow-server

target_dir="$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
bin="$target_dir/release/wasmflow"
if [[ ! -x "$bin" ]]; then
    echo "error: release binary not found at $bin" >&2
    exit 1
fi

echo "==> example plugins in Python, JavaScript and C (examples/plugins/build.sh)"
example_plugins="$target_dir/example-plugins/out"
bash "$repo/examples/plugins/build.sh" "$example_plugins"
export WASMFLOW_EXAMPLE_PLUGINS="$example_plugins"
# The test components (hostile plugins) that the cargo build above made.
export WASMFLOW_TEST_PLUGINS="$target_dir/wasm-plugins/wasm32-wasip2/release"

echo "==> examples/wasm-train (the WASI training program tests/e2e/test_projects.py runs)"
bash "$repo/examples/wasm-train/build.sh" "$target_dir/wasm-train"
# Virtual environments the projects suite's `virtualenv` runs create, kept between runs.
export WASMFLOW_PROJECTS_CACHE="$target_dir/projects-cache"

echo "==> python venv"
venv="$("$repo/scripts/e2e-venv.sh")"

echo "==> pytest tests/e2e (WASMFLOW_BIN=$bin)"
WASMFLOW_BIN="$bin" "$venv/bin/python" -m pytest tests/e2e -q -p no:cacheprovider "$@"

echo "==> browser suite (tests/browser/run.sh)"
WASMFLOW_BIN="$bin" WASMFLOW_VENV="$venv" CARGO_TARGET_DIR="$target_dir" bash "$repo/tests/browser/run.sh"
