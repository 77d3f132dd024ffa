#!/usr/bin/env bash
# Builds {{name}}.wasm with componentize-py (pinned below; installed into .venv when missing).
# COMPONENTIZE_PY=/path/to/componentize-py uses an installed one instead.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
CPY=${COMPONENTIZE_PY:-}
if [[ -z $CPY ]]; then
  if [[ ! -x .venv/bin/componentize-py ]]; then
    python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check componentize-py==0.25.1
  fi
  CPY=.venv/bin/componentize-py
fi
python3 -m unittest -q test_model
PYTHONDONTWRITEBYTECODE=1 "$CPY" --wit-path wit --world flavor-plugin componentize app \
  --python-path . --output {{name}}.wasm.tmp >/dev/null
mv {{name}}.wasm.tmp {{name}}.wasm
echo "built $(pwd)/{{name}}.wasm"
