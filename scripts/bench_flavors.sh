#!/usr/bin/env bash
# The flavors benchmark (issue 12): `wasmflow models serve` vs `mlflow models serve` on the same
# MLflow model directories (a random forest, a HistGradientBoosting model, a one-hot + logistic
# regression pipeline, all as skops, and an XGBoost model as UBJSON), in one run, with 1-row and
# 1,000-row requests through wrk, and the predict time in Wasm against the framework's own
# `predict`; prints a markdown report and writes it to target/bench-flavors/report.md.
#
#   scripts/bench_flavors.sh [bench_flavors.py options]
#       --seconds N            seconds of load per cell (default 3)
#       --connections 1,8      wrk connections (default 1,8)
#       --models rf,hgb,pipeline,xgb
#   WASMFLOW_BIN=path  benchmark that binary instead of building target/release/wasmflow
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
out="$repo/target/bench-flavors"
mkdir -p "$out"

work="$(mktemp -d)"
py_pid=""
cleanup() {
    local status=$?
    if [[ -n "$py_pid" ]] && kill -0 "$py_pid" 2>/dev/null; then
        kill -TERM "$py_pid" 2>/dev/null || true
        wait "$py_pid" 2>/dev/null || true
    fi
    # Each server runs in its own process group, listed by bench_flavors.py; kill any survivor.
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
    echo "bench-flavors: installing wrk" >&2
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
echo "bench-flavors: wasmflow $("$work/wasmflow" --version | cut -d' ' -f2) ($(git rev-parse --short HEAD)$(git diff --quiet HEAD -- host plugins || echo ', with uncommitted changes'))" >&2

venv="$("$repo/scripts/e2e-venv.sh")"
"$venv/bin/python" "$repo/scripts/bench_flavors.py" --wasmflow "$work/wasmflow" --out "$out" "$@" &
py_pid=$!
wait "$py_pid"
