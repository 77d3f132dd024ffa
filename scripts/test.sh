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
# The flavor plugins (plugins/ workspace) are tested natively after the venv is made, against
# fixtures their Python scripts generate into <target>/flavor-fixtures/<crate>.
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

# The flavor plugins' native tests read fixtures (models saved by the real scikit-learn, skops,
# XGBoost and LightGBM, with their outputs) that their `tests/fixtures/make_*.py` scripts write
# into $WASMFLOW_FLAVOR_FIXTURES; nothing is committed, so they are made here with the venv.
# A script that does not read WASMFLOW_FLAVOR_FIXTURES regenerates fixtures committed in the source
# tree (lightgbm's make_fixtures.py): it is listed, not run.
flavor_fixtures="$target_dir/flavor-fixtures"
for crate in wasmflow-plugin-sdk wasmflow-skops wasmflow-flavor-sklearn wasmflow-flavor-xgboost wasmflow-flavor-lightgbm; do
    case "$crate" in
        wasmflow-plugin-sdk) dir="$repo/plugins/sdk" ;;
        wasmflow-skops) dir="$repo/plugins/skops" ;;
        wasmflow-flavor-*) dir="$repo/plugins/flavors/${crate#wasmflow-flavor-}" ;;
    esac
    if [[ ! -f "$dir/Cargo.toml" ]]; then
        echo "error: crate $crate not found at $dir" >&2
        exit 1
    fi
    out="$flavor_fixtures/$crate"
    rm -rf "$out"
    mkdir -p "$out"
    echo "==> $crate: fixtures into $out"
    ran=0
    while IFS= read -r script; do
        if grep -q WASMFLOW_FLAVOR_FIXTURES "$script"; then
            echo "    ${script#"$repo"/}"
            WASMFLOW_FLAVOR_FIXTURES="$out" "$venv/bin/python" "$script"
            ran=$((ran + 1))
        else
            echo "    ${script#"$repo"/}: not run (it rewrites the crate's committed fixtures)"
        fi
    done < <(find "$dir/tests" -path '*/fixtures/make_*.py' -type f 2>/dev/null | sort)
    [[ "$ran" -gt 0 ]] || echo "    (no fixture script for $crate: its tests need no generated fixtures)"
    echo "==> $crate: cargo test (native, release)"
    WASMFLOW_FLAVOR_FIXTURES="$out" cargo test --release --manifest-path "$repo/plugins/Cargo.toml" \
        --target x86_64-unknown-linux-gnu --target-dir "$target_dir/plugins-native" -p "$crate"
done

echo "==> pytest tests/e2e (WASMFLOW_BIN=$bin)"
# moto's S3 server comes with the venv (tests/requirements.txt) and the S3 tests start it
# themselves; here its absence is a failure, not a skip.
WASMFLOW_E2E_REQUIRE_S3=1 WASMFLOW_BIN="$bin" "$venv/bin/python" -m pytest tests/e2e -q -p no:cacheprovider "$@"

echo "==> browser suite (tests/browser/run.sh)"
WASMFLOW_BIN="$bin" WASMFLOW_VENV="$venv" CARGO_TARGET_DIR="$target_dir" bash "$repo/tests/browser/run.sh"
