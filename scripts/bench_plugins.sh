#!/usr/bin/env bash
# The plugin benchmark: ONNX predictions (1 and 1,000 rows) inside the builtin onnx plugin
# versus the same tract code run natively, and cold versus cached compiles of each builtin
# plugin.  Builds host/bench (its own workspace) in release mode, generates the MLP model with
# the e2e venv's onnx into a temp dir, and prints markdown tables.
# Arguments go to plugin-bench: --iters-1 N (default 200), --iters-1000 N (50), --compile-runs N (3; 0 skips
# the compile table). MLP_SIZES=20,64,32,1 benchmarks an MLP of those layer widths instead of
# 64,256,256,10 (20,64,32,1 is the serving benchmark's).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
# Share the root workspace's target dir (and so its compiled dependencies and wasm plugins).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/target}"

cargo build --release --manifest-path host/bench/Cargo.toml
venv="$("$repo/scripts/e2e-venv.sh")"

model="$(mktemp -d)"
trap 'rm -rf "$model"' EXIT
sizes="${MLP_SIZES:-64,256,256,10}"
"$venv/bin/python" host/bench/make_mlp.py "$model" "$sizes"

echo "machine: $(nproc) cores, $(uptime | sed 's/.*load average/load average/')" >&2
cargo run --quiet --release --manifest-path host/bench/Cargo.toml -- "$model" --features "${sizes%%,*}" "$@"
echo "machine after the run: $(uptime | sed 's/.*load average/load average/')" >&2
