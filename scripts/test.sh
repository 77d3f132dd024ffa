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
#   WASMFLOW_TEST_POSTGRES_URI  a PostgreSQL server (superuser) for the store tests; when unset,
#                            PostgreSQL is installed if missing and a throwaway cluster is started
#                            in <target>/test-postgres (scripts/test-postgres.sh)
# The flavor plugins (plugins/ workspace) are tested natively after the venv is made, against
# fixtures their Python scripts generate into <target>/flavor-fixtures/<crate>.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

# Each phase's wall time, printed as it ends and summed up at exit: CI has a time limit, and this
# says where the time goes.
phase_name="" phase_start=$SECONDS timings=""
phase() {
    if [[ -n "$phase_name" ]]; then
        timings+="$(printf '%6ds  %s' $((SECONDS - phase_start)) "$phase_name")"$'\n'
    fi
    phase_name="$1" phase_start=$SECONDS
    [[ -n "$1" ]] && echo "==> $1"
    return 0
}
report_timings() {
    local status=$?
    phase ""
    printf '\n==> time per phase (exit %s, %ds in all)\n%s' "$status" "$SECONDS" "$timings"
}
# Background jobs (their pids), stopped with their children if the script ends first.
prep_pid="" native_pid="" fixtures_pid="" browser_pid=""
on_exit() {
    report_timings
    for pid in $prep_pid $native_pid $fixtures_pid $browser_pid; do
        pkill -P "$pid" 2>/dev/null || true
        kill "$pid" 2>/dev/null || true
    done
    if declare -F stop_test_postgres >/dev/null; then stop_test_postgres; fi
}
trap on_exit EXIT

target_dir="$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"

# The store tests run against every backend: SQLite, and PostgreSQL on a throwaway cluster.
# shellcheck source=scripts/test-postgres.sh
source "$repo/scripts/test-postgres.sh"
phase "PostgreSQL for the store tests"
start_test_postgres "$target_dir/test-postgres"

# Waits for a background job; on failure prints the tail of its log and stops the script.
wait_background() {
    local pid="$1" log="$2" what="$3" status=0
    wait "$pid" || status=$?
    if [[ "$status" != 0 ]]; then
        echo "error: $what failed (exit $status); $log:" >&2
        tail -40 "$log" >&2
        exit 1
    fi
    cat "$log"
}

# Downloads that need nothing compiled — the e2e venv (pip) and the browser suite's chromium and
# npm packages — run in the background while cargo keeps both cores busy; they are waited for
# before the next apt-get (the example plugins' C toolchain: apt takes one lock) and before any use.
prep_log="$target_dir/test-prepare.log"
mkdir -p "$target_dir"
(
    "$repo/scripts/e2e-venv.sh" >"$target_dir/test-prepare.venv"
    bash "$repo/tests/browser/run.sh" --prepare
) >"$prep_log" 2>&1 &
prep_pid=$!

# The release profile for the tests too: its dependencies (wasmtime above all) are the ones the
# release binary below needs, so a clean machine compiles them once instead of twice.
if [[ "${WASMFLOW_SKIP_CARGO_TEST:-0}" != "1" ]]; then
    phase "cargo test --workspace --release"
    cargo test --workspace --release
fi

phase "cargo build --release -p wasmflow-server"
cargo build --release -p wasmflow-server

bin="$target_dir/release/wasmflow"
if [[ ! -x "$bin" ]]; then
    echo "error: release binary not found at $bin" >&2
    exit 1
fi

# The flavor plugins' native tests read fixtures (models saved by the real scikit-learn, skops,
# XGBoost and LightGBM, with their outputs) that their `tests/fixtures/make_*.py` scripts write
# into $WASMFLOW_FLAVOR_FIXTURES; nothing is committed, so they are made here with the venv.
# A script that does not read WASMFLOW_FLAVOR_FIXTURES regenerates fixtures committed in the source
# tree (lightgbm's make_fixtures.py): it is listed, not run.
flavor_fixtures="$target_dir/flavor-fixtures"
flavor_crates=(wasmflow-plugin-sdk wasmflow-skops wasmflow-flavor-sklearn wasmflow-flavor-xgboost
    wasmflow-flavor-lightgbm wasmflow-flavor-onnx)
crate_dir() {
    case "$1" in
        wasmflow-plugin-sdk) echo "$repo/plugins/sdk" ;;
        wasmflow-skops) echo "$repo/plugins/skops" ;;
        wasmflow-flavor-*) echo "$repo/plugins/flavors/${1#wasmflow-flavor-}" ;;
    esac
}
for crate in "${flavor_crates[@]}"; do
    if [[ ! -f "$(crate_dir "$crate")/Cargo.toml" ]]; then
        echo "error: crate $crate not found at $(crate_dir "$crate")" >&2
        exit 1
    fi
done
# Their native test binaries build in the background, beside the waits and the examples' builds
# below, which leave a core idle much of the time. The plugins workspace's release profile is the
# shipped plugins' (fat LTO, one codegen unit: a minute's link per test binary here); the tests
# need only optimised code, so LTO is off for this target directory alone.
native_log="$target_dir/plugins-native-build.log"
native_cargo=(env CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
    cargo test --release --manifest-path "$repo/plugins/Cargo.toml"
    --target x86_64-unknown-linux-gnu --target-dir "$target_dir/plugins-native")
# One crate a call, as they run below: cargo unifies features across the packages of one call, so
# a build of them all at once would leave some test binaries to rebuild for their own run.
(for crate in "${flavor_crates[@]}"; do "${native_cargo[@]}" --no-run -p "$crate" || exit; done) \
    >"$native_log" 2>&1 &
native_pid=$!

phase "waiting for the venv and browser packages (started with cargo)"
wait_background "$prep_pid" "$prep_log" "preparing the venv / browser packages"
prep_pid=""
venv="$(cat "$target_dir/test-prepare.venv")"

# The fixtures (Python training models, one core) are made in the background too, beside the
# examples' builds.
make_fixtures() {
    local crate dir out ran script
    for crate in "${flavor_crates[@]}"; do
        dir="$(crate_dir "$crate")"
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
    done
}
fixtures_log="$target_dir/flavor-fixtures.log"
(set -e; make_fixtures) >"$fixtures_log" 2>&1 &
fixtures_pid=$!

phase "example plugins in Python, JavaScript and C (examples/plugins/build.sh)"
example_plugins="$target_dir/example-plugins/out"
bash "$repo/examples/plugins/build.sh" "$example_plugins"
export WASMFLOW_EXAMPLE_PLUGINS="$example_plugins"
# The test components (hostile plugins) that the cargo build above made.
export WASMFLOW_TEST_PLUGINS="$target_dir/wasm-plugins/wasm32-wasip2/release"

phase "examples/wasm-train (the WASI training program tests/e2e/test_projects.py runs)"
bash "$repo/examples/wasm-train/build.sh" "$target_dir/wasm-train"
# Virtual environments the projects suite's `virtualenv` runs create, kept between runs.
export WASMFLOW_PROJECTS_CACHE="$target_dir/projects-cache"

phase "flavor plugins: waiting for their fixtures and native test build (in the background)"
wait_background "$fixtures_pid" "$fixtures_log" "making the flavor plugins' fixtures"
fixtures_pid=""
wait_background "$native_pid" "$native_log" "building the flavor plugins' native tests"
native_pid=""
for crate in "${flavor_crates[@]}"; do
    phase "$crate: cargo test (native, release without LTO)"
    WASMFLOW_FLAVOR_FIXTURES="$flavor_fixtures/$crate" "${native_cargo[@]}" -p "$crate"
done

# The suite runs in several processes (pytest-xdist): most of a test's time is spent waiting on a
# server or a subprocess, so even 2 cores run 3 files at once faster than one after another.
# `--dist loadfile` keeps each file in one process, so module- and session-scoped fixtures are made
# once per file as when run alone. WASMFLOW_E2E_WORKERS=0 runs it in this process.
# moto's S3 server comes with the venv (tests/requirements.txt) and the S3 tests start it
# themselves (one per worker); here its absence is a failure, not a skip.
e2e_workers="${WASMFLOW_E2E_WORKERS:-3}"
phase "pytest tests/e2e with $e2e_workers workers (WASMFLOW_BIN=$bin)"
xdist=()
[[ "$e2e_workers" != 0 ]] && xdist=(-n "$e2e_workers" --dist loadfile)
WASMFLOW_E2E_REQUIRE_S3=1 WASMFLOW_BIN="$bin" "$venv/bin/python" -m pytest tests/e2e -q -p no:cacheprovider "${xdist[@]}" "$@"

# The client's tests of what the store keeps, again on PostgreSQL (each server on a database of its
# own on the throwaway cluster started above): the same answers from either backend. Plugins too:
# on PostgreSQL, installed ones live in the database.
pg_files=(test_experiments.py test_runs.py test_registry.py test_prompts.py test_traces.py
    test_traces_sessions.py test_eval_datasets.py test_webhooks.py test_auth.py test_errors.py test_bulk_interval.py
    test_replicas.py test_plugins.py
    # The import into a PostgreSQL store, from MLflow's PostgreSQL store (the readers of MLflow's
    # other stores are the same code, run on SQLite above).
    test_import.py::test_import_mlflow_store)
# The browser suite (a server and chromium of its own) runs beside the PostgreSQL phase: both
# mostly wait on their servers, and each alone leaves a core idle.
phase "pytest tests/e2e on PostgreSQL (${#pg_files[@]} files, $e2e_workers workers), the browser suite beside it"
browser_log="$target_dir/browser-suite.log"
WASMFLOW_BIN="$bin" WASMFLOW_VENV="$venv" CARGO_TARGET_DIR="$target_dir" \
    bash "$repo/tests/browser/run.sh" >"$browser_log" 2>&1 &
browser_pid=$!
WASMFLOW_E2E_BACKEND=postgres WASMFLOW_BIN="$bin" "$venv/bin/python" -m pytest \
    "${pg_files[@]/#/tests/e2e/}" -q -p no:cacheprovider "${xdist[@]}"

phase "browser suite (tests/browser/run.sh, started with the PostgreSQL phase)"
wait_background "$browser_pid" "$browser_log" "the browser suite"
browser_pid=""
