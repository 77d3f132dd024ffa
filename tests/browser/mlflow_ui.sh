#!/usr/bin/env bash
# MLflow's own UI against wasmflow: serves the UI shipped in the venv's mlflow package in front of
# a fresh wasmflow (mlflow_ui_proxy.py, as MLflow's server serves it), seeds it with the official
# client (mlflow_ui_seed.py) and drives chromium through MLflow's pages (mlflow_ui.mjs).
# Screenshots go to <target>/browser/mlflow-ui. Called by run.sh; runs alone with the same
# environment (WASMFLOW_BIN, WASMFLOW_VENV, CARGO_TARGET_DIR, CHROMIUM) once chromium and
# playwright-core are installed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
target_dir="${CARGO_TARGET_DIR:-$repo/target}"
bin="${WASMFLOW_BIN:-$target_dir/release/wasmflow}"
venv="${WASMFLOW_VENV:-$repo/target/e2e-venv}"
out="$target_dir/browser/mlflow-ui"

rm -rf "$out"
mkdir -p "$out/store"
free_port() { "$venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port="$(free_port)"
ui_port="$(free_port)"
url="http://127.0.0.1:$port"
ui_url="http://127.0.0.1:$ui_port"
"$bin" server --host 127.0.0.1 --port "$port" \
    --backend-store-uri "sqlite:///$out/store/mlflow.db" \
    --artifacts-destination "$out/store/artifacts" \
    --plugins-dir "$out/store/plugins" >"$out/server.log" 2>&1 &
server_pid=$!
"$venv/bin/python" "$here/mlflow_ui_proxy.py" "$ui_port" "$url" "$out/failed-requests.jsonl" >"$out/proxy.log" 2>&1 &
proxy_pid=$!
trap 'kill "$server_pid" "$proxy_pid" 2>/dev/null || true; wait "$server_pid" "$proxy_pid" 2>/dev/null || true' EXIT

healthy() { "$venv/bin/python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$1" >/dev/null 2>&1; }
for _ in $(seq 1 120); do
    healthy "$ui_url/health" && break
    kill -0 "$server_pid" 2>/dev/null || { echo "error: the server exited; log:" >&2; tail -20 "$out/server.log" >&2; exit 1; }
    sleep 0.5
done
healthy "$ui_url/health" || { echo "error: wasmflow behind the UI proxy did not answer /health in 60 s" >&2; exit 1; }

echo "==> seed $url for MLflow's UI"
"$venv/bin/python" "$here/mlflow_ui_seed.py" "$url" "$out/seed.json" >"$out/seed.log" 2>&1 ||
    { tail -20 "$out/seed.log" >&2; exit 1; }

echo "==> chromium: MLflow's own UI ($("$venv/bin/python" -c 'import mlflow; print(mlflow.__version__)')) against wasmflow"
node "$here/mlflow_ui.mjs" "$ui_url" "$out/seed.json" "$out/screenshots" "$out/failed-requests.jsonl"
