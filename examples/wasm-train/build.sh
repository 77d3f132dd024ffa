#!/usr/bin/env bash
# Builds train.wasm (a WASI component) into this directory, beside the MLproject that runs it.
# Usage: examples/wasm-train/build.sh [TARGET_DIR]   (default: <repo>/target/wasm-train)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
target="$(realpath -m "${1:-${CARGO_TARGET_DIR:-$repo/target}/wasm-train}")"
# rust-toolchain.toml (the repository's) applies from here.
cd "$here"
# The host's flags are not the guest's.
unset RUSTFLAGS CARGO_ENCODED_RUSTFLAGS CARGO_BUILD_RUSTFLAGS
cargo build --quiet --release --target wasm32-wasip2 --manifest-path "$here/Cargo.toml" --target-dir "$target"
cp "$target/wasm32-wasip2/release/train.wasm" "$here/train.wasm"
echo "$here/train.wasm"
