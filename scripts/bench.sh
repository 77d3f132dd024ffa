#!/usr/bin/env bash
# Builds the release binary, ensures the e2e venv and runs scripts/bench.py.
# Arguments go to bench.py: `scripts/bench.sh` (starts its own server on a temp store) or
# `scripts/bench.sh http://127.0.0.1:5000` (measures a running server; no start-up/RSS rows).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

# wrk is the load generator: C, not the bottleneck.  Debian packages it.
if ! command -v wrk >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1; then
        (apt-get update -qq && apt-get install -y -qq wrk) >/dev/null || echo "warning: cannot install wrk" >&2
    fi
fi

cargo build --release -p wasmflow-server
target_dir="$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
venv="$("$repo/scripts/e2e-venv.sh")"

WASMFLOW_BIN="${WASMFLOW_BIN:-$target_dir/release/wasmflow}" "$venv/bin/python" "$repo/scripts/bench.py" "$@"
