#!/usr/bin/env bash
# The serving benchmark (issue 5): `wasmflow models serve` vs `mlflow models serve` on the same
# MLflow ONNX model directory, in one run; prints a markdown table and writes it to
# target/bench-serving/report.md.  Needs only Rust, Python and apt (for wrk).
#
#   scripts/bench_serving.sh [bench_serving.py options]
#       --seconds N            seconds of load per case (default 10)
#       --starts N             timed starts per server (default 5)
#       --mlflow-workers 1,2   mlflow `-w` values to measure (default 1,2; 1 is mlflow's default)
#       --wasmflow-workers W   wasmflow `--workers` (default: its own default, one instance per core)
#   WASMFLOW_BIN=path  benchmark that binary instead of building target/release/wasmflow
#
# The load generator is wrk (Debian's package): C, epoll, a Lua script sets the POST body, and
# `--latency` gives p50/p99, so it does everything the benchmark needs without being the bottleneck
# (its CPU per request is in the table).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
out="$repo/target/bench-serving"
mkdir -p "$out"

work="$(mktemp -d)"
py_pid=""
cleanup() {
    local status=$?
    if [[ -n "$py_pid" ]] && kill -0 "$py_pid" 2>/dev/null; then
        kill -TERM "$py_pid" 2>/dev/null || true
        wait "$py_pid" 2>/dev/null || true
    fi
    # Each server runs in its own process group, listed by bench_serving.py; kill any survivor.
    if [[ -f "$out/pgids" ]]; then
        while read -r pgid; do
            [[ -n "$pgid" ]] && kill -KILL -- "-$pgid" 2>/dev/null || true
        done <"$out/pgids"
    fi
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if ! command -v wrk >/dev/null 2>&1; then
    echo "bench-serving: installing wrk" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >&2
fi

if [[ -z "${WASMFLOW_BIN:-}" ]]; then
    cargo build --release -p wasmflow-server
    target_dir="$(cargo metadata --format-version 1 --no-deps |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
    WASMFLOW_BIN="$target_dir/release/wasmflow"
fi
# A copy: the build output may be replaced by a rebuild while the benchmark runs.
cp "$WASMFLOW_BIN" "$work/wasmflow"
echo "bench-serving: wasmflow $("$work/wasmflow" --version | cut -d' ' -f2) ($(git rev-parse --short HEAD)$(git diff --quiet HEAD -- host plugins || echo ', with uncommitted changes'))" >&2

venv="$("$repo/scripts/e2e-venv.sh")"
"$venv/bin/python" "$repo/scripts/bench_serving.py" --wasmflow "$work/wasmflow" --out "$out" "$@" &
py_pid=$!
wait "$py_pid"
