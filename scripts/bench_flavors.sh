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

bench=flavors
# shellcheck source=scripts/bench_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench_common.sh"
bench_run "$@"
