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
#       --profile-seconds N    seconds of `perf record -g` on wasmflow at 1,000 rows, 8 conn (default 8; 0: none)
#   WASMFLOW_BIN=path  benchmark that binary instead of building target/release/wasmflow
#
# The load generator is wrk (Debian's package): C, epoll, a Lua script sets the POST body, and
# `--latency` gives p50/p99, so it does everything the benchmark needs without being the bottleneck
# (its CPU per request is in the table).
set -euo pipefail

bench=serving
# shellcheck source=scripts/bench_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench_common.sh"
bench_run "$@"
