#!/usr/bin/env bash
# The web UI's browser suite: starts wasmflow on a fresh store, seeds it with the official mlflow
# client (seed.py), then drives Debian's chromium with playwright-core (run.mjs) through every
# page. Screenshots go to <target>/browser/screenshots; with --update-screenshots the main ones
# are also copied to docs/screenshots/ (the README's). Last, mlflow_ui.sh drives MLflow's own UI
# against a fresh wasmflow.
#
# Environment:
#   WASMFLOW_BIN     the binary (default: <target>/release/wasmflow)
#   WASMFLOW_VENV    venv with mlflow (default: <repo>/target/e2e-venv, made by scripts/e2e-venv.sh)
#   CARGO_TARGET_DIR honoured for the default binary and the output directory
#   UI_BIG_RUNS      runs in the big experiment (default 10000)
#   CHROMIUM         the browser (default /usr/bin/chromium, apt-installed when absent)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
target_dir="${CARGO_TARGET_DIR:-$repo/target}"
bin="${WASMFLOW_BIN:-$target_dir/release/wasmflow}"
venv="${WASMFLOW_VENV:-$repo/target/e2e-venv}"
out="$target_dir/browser"
update_screenshots=0 prepare_only=0
[[ "${1:-}" == "--update-screenshots" ]] && update_screenshots=1
# --prepare installs chromium and the npm packages and exits: scripts/test.sh runs it in the
# background while cargo compiles, so the downloads cost no wall time later.
[[ "${1:-}" == "--prepare" ]] && prepare_only=1

prepare() {
    if [[ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]]; then
        echo "==> apt-get install chromium"
        local sudo=""
        [[ "$(id -u)" == 0 ]] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
    fi
    # npm ci deletes and rewrites node_modules: skipped when the lock file is what was installed.
    if ! cmp -s "$here/package-lock.json" "$here/node_modules/.package-lock.json.installed"; then
        echo "==> npm ci (tests/browser)"
        (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
        cp "$here/package-lock.json" "$here/node_modules/.package-lock.json.installed"
    fi
}
prepare
[[ "$prepare_only" == 1 ]] && exit 0

[[ -x "$bin" ]] || { echo "error: wasmflow binary not found at $bin (set WASMFLOW_BIN)" >&2; exit 1; }
[[ -x "$venv/bin/python" ]] || { echo "error: no venv at $venv (run scripts/e2e-venv.sh or set WASMFLOW_VENV)" >&2; exit 1; }

rm -rf "$out/store" "$out/screenshots"
mkdir -p "$out/store"
port="$("$venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
url="http://127.0.0.1:$port"
# The compiled-plugin cache survives runs: the first start compiles the ONNX plugin (~30 s).
WASMFLOW_PLUGIN_CACHE_DIR="$out/plugin-cache" "$bin" server --host 127.0.0.1 --port "$port" \
    --backend-store-uri "sqlite:///$out/store/mlflow.db" \
    --artifacts-destination "$out/store/artifacts" \
    --plugins-dir "$out/store/plugins" >"$out/server.log" 2>&1 &
server_pid=$!
trap 'kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true' EXIT

# No curl on a minimal Debian: the venv's python asks /health (urlopen raises unless it answers 2xx).
healthy() { "$venv/bin/python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$url/health" >/dev/null 2>&1; }
for _ in $(seq 1 240); do
    healthy && break
    kill -0 "$server_pid" 2>/dev/null || { echo "error: the server exited; log:" >&2; tail -20 "$out/server.log" >&2; exit 1; }
    sleep 0.5
done
healthy || { echo "error: the server did not answer /health in 120 s" >&2; exit 1; }

echo "==> seed $url with the mlflow client (${UI_BIG_RUNS:-10000} runs in the big experiment)"
"$venv/bin/python" "$here/seed.py" "$url" "$out/seed.json" "${UI_BIG_RUNS:-10000}" >"$out/seed.log" 2>&1 ||
    { tail -20 "$out/seed.log" >&2; exit 1; }

echo "==> chromium: every page"
node "$here/run.mjs" "$url" "$out/seed.json" "$out/screenshots"

if [[ "$update_screenshots" == 1 ]]; then
    mkdir -p "$repo/docs/screenshots"
    for name in experiments runs run artifacts compare model version plugins serving run-dark \
        run-charts experiment-charts experiment-charts-100 compare-charts; do
        cp "$out/screenshots/$name.png" "$repo/docs/screenshots/$name.png"
    done
    # editing.mjs's views.
    for name in run-editing experiment-about logged-model version-editing empty-runs run-editing-dark; do
        cp "$out/screenshots/$name.png" "$repo/docs/screenshots/$name.png"
    done
    # genai.mjs's views.
    for name in traces trace prompt trace-dark; do
        cp "$out/screenshots/$name.png" "$repo/docs/screenshots/$name.png"
    done
    # Screenshots of a UI have few colours: a 256-colour palette keeps them legible at about a
    # third of the size (Pillow comes with mlflow's dependencies; without it they stay as taken).
    "$venv/bin/python" - "$repo/docs/screenshots" <<'PY' || echo "(Pillow missing: screenshots left uncompressed)"
import pathlib, sys
from PIL import Image
for path in sorted(pathlib.Path(sys.argv[1]).glob("*.png")):
    image = Image.open(path)
    if image.mode != "P":
        image.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(path, optimize=True)
PY
    echo "copied the main screenshots to docs/screenshots/"
fi

echo "==> MLflow's own UI against wasmflow"
WASMFLOW_BIN="$bin" WASMFLOW_VENV="$venv" CARGO_TARGET_DIR="$target_dir" "$here/mlflow_ui.sh"
