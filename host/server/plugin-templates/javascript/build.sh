#!/usr/bin/env bash
# Builds {{name}}.wasm: npm install (pinned in package.json) when node_modules is missing, the
# unit tests, one ES module bundled by rolldown, then `jco componentize` against build/wit
# (wit/world.wit, wit/deps/plugin and the WASI packages that ship with jco).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
[[ -d node_modules/@bytecodealliance/jco ]] || npm install --no-audit --no-fund --loglevel=error
node --test test/ >/dev/null
rm -rf build
mkdir -p build/wit/deps
cp wit/world.wit build/wit/
cp -r wit/deps/plugin build/wit/deps/
wasi=node_modules/@bytecodealliance/jco/lib/wit/builtin/0.2.12
for pkg in io clocks filesystem; do
  mkdir -p "build/wit/deps/$pkg"
  cp "$wasi/wasi-$pkg/package.wit" "build/wit/deps/$pkg/"
done
node_modules/.bin/rolldown src/plugin.js --format esm --file build/plugin.js \
  --external 'wasmflow:plugin/host@0.1.0' --external 'wasi:filesystem/preopens@0.2.12' >/dev/null
# No HTTP, fetch event, clocks or randomness: every feature left out is a WASI import fewer.
node_modules/.bin/jco componentize build/plugin.js --wit build/wit --world-name plugin \
  --disable http fetch-event random clocks --out build/{{name}}.wasm >/dev/null
mv build/{{name}}.wasm {{name}}.wasm
echo "built $(pwd)/{{name}}.wasm"
