#!/usr/bin/env bash
# Ensures the Python venv of the end-to-end suite and prints its path.
# Reused while its recorded hash of tests/requirements.txt (and the Python version) still matches;
# otherwise it is rebuilt from scratch with pip.  Override the location with WASMFLOW_VENV and the
# interpreter with WASMFLOW_PYTHON (default: python3.11 if present, else python3).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
req="$repo/tests/requirements.txt"
venv="${WASMFLOW_VENV:-$repo/target/e2e-venv}"

if [[ -n "${WASMFLOW_PYTHON:-}" ]]; then
    python="$WASMFLOW_PYTHON"
elif command -v python3.11 >/dev/null 2>&1; then
    python=python3.11
else
    python=python3
fi

want="$( (sha256sum "$req" | cut -d' ' -f1; "$python" -c 'import sys; print(sys.version)') | sha256sum | cut -d' ' -f1)"
stamp="$venv/.requirements.sha256"

if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    echo "$venv"
    exit 0
fi

echo "e2e venv: (re)installing $venv from tests/requirements.txt" >&2
if [[ -e "$venv" && ! -f "$venv/pyvenv.cfg" ]]; then
    echo "error: $venv exists and is not a venv; refusing to replace it" >&2
    exit 1
fi
rm -rf "$venv"
mkdir -p "$(dirname "$venv")"
"$python" -m venv "$venv" >&2
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req" >&2
echo "$want" >"$stamp"
echo "$venv"
