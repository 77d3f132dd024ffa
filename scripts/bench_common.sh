# shellcheck shell=bash
# The setup and teardown the wasmflow-vs-mlflow benchmarks share, sourced by bench_<name>.sh
# after it sets `bench=<name>`: runs scripts/bench_<name>.py with `--wasmflow` (a copy of the
# binary), `--out target/bench-<name>` and the script's own arguments.
#
#   bench_run "$@"
#       installs wrk (Debian's package) if it is missing; builds target/release/wasmflow unless
#       WASMFLOW_BIN names a binary; runs the Python side in the e2e venv (scripts/e2e-venv.sh);
#       on exit, stops it and kills every server process group it listed in $out/pgids.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
out="$repo/target/bench-$bench"
mkdir -p "$out"

work="$(mktemp -d)"
py_pid=""
cleanup() {
    local status=$?
    if [[ -n "$py_pid" ]] && kill -0 "$py_pid" 2>/dev/null; then
        kill -TERM "$py_pid" 2>/dev/null || true
        wait "$py_pid" 2>/dev/null || true
    fi
    # Each server runs in its own process group, listed by bench_$bench.py; kill any survivor.
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

bench_run() {
    if ! command -v wrk >/dev/null 2>&1; then
        echo "bench-$bench: installing wrk" >&2
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >&2
    fi

    if [[ -z "${WASMFLOW_BIN:-}" ]]; then
        cargo build --release -p wasmflow-server
        local target_dir
        target_dir="$(cargo metadata --format-version 1 --no-deps |
            python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
        WASMFLOW_BIN="$target_dir/release/wasmflow"
    fi
    # A copy: the build output may be replaced by a rebuild while the benchmark runs.
    cp "$WASMFLOW_BIN" "$work/wasmflow"
    echo "bench-$bench: wasmflow $("$work/wasmflow" --version | cut -d' ' -f2) ($(git rev-parse --short HEAD)$(git diff --quiet HEAD -- host plugins || echo ', with uncommitted changes'))" >&2

    local venv
    venv="$("$repo/scripts/e2e-venv.sh")"
    "$venv/bin/python" "$repo/scripts/bench_$bench.py" --wasmflow "$work/wasmflow" --out "$out" "$@" &
    py_pid=$!
    wait "$py_pid"
}
