#!/usr/bin/env bash
# Builds the example flavor plugins written in Python, JavaScript and C into one directory:
#
#     examples/plugins/build.sh [OUT_DIR]      # default: $TARGET/example-plugins/out
#
# with TARGET = ${CARGO_TARGET_DIR:-<repo>/target}.  Output: OUT_DIR/py_knn.wasm,
# OUT_DIR/js_tree.wasm, OUT_DIR/c_logistic.wasm (each a component of wasmflow's `flavor-plugin`
# world, named after the MLmodel flavor it loads).
#
# On a fresh Debian machine with Rust, Python 3 and Node/npm it installs what it needs, each only
# when missing:
#   - C: clang-19, lld-19, wasi-libc, libclang-rt-19-dev-wasm32 (apt-get, as root), and
#     wit-bindgen-cli $WIT_BINDGEN_VERSION (cargo install into $TARGET/example-plugins/tools);
#     the component is linked by the wasm-component-ld that ships with the Rust toolchain.
#   - Python: a venv in $TARGET/example-plugins/venv with python/requirements-build.txt
#     (componentize-py, and wasmtime for smoke.py).
#   - JavaScript: `npm ci` in javascript/ (jco + ComponentizeJS, pinned in package-lock.json).
# Each component is rebuilt only when its inputs (sources, WIT, tool versions) changed, so a
# second run takes a second or two.  Set EXAMPLE_PLUGINS_JOBS=1 to build one at a time.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
TARGET=$(realpath -m "${CARGO_TARGET_DIR:-$REPO/target}")
CACHE="$TARGET/example-plugins"
OUT=$(realpath -m "${1:-$CACHE/out}")
WIT_BINDGEN_VERSION=0.46.0
APT_PACKAGES=(clang-19 lld-19 wasi-libc libclang-rt-19-dev-wasm32)

log() { printf '[example-plugins] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

mkdir -p "$CACHE" "$OUT"

# A digest of the given files' contents and names plus any extra strings (tool versions); a
# component whose digest matches the one stored beside it is up to date.
digest() {
  local extra=$1
  shift
  { printf '%s\n' "$extra"; for f in "$@"; do printf '%s\n' "$f"; cat "$f"; done; } | sha256sum | cut -d' ' -f1
}
up_to_date() { [[ -f "$OUT/$1" && -f "$OUT/.$1.inputs" && "$(cat "$OUT/.$1.inputs")" == "$2" ]]; }
mark_built() { printf '%s\n' "$2" > "$OUT/.$1.inputs"; }

# ---- tools ------------------------------------------------------------------------------------

WASI_SYSROOT_LIB=/usr/lib/wasm32-wasi
ensure_c_toolchain() {
  local missing=()
  command -v clang-19 >/dev/null || missing+=(clang-19)
  command -v wasm-ld-19 >/dev/null || missing+=(lld-19)
  [[ -f $WASI_SYSROOT_LIB/libc.a ]] || missing+=(wasi-libc)
  compgen -G "/usr/lib/llvm-19/lib/clang/19/lib/wasi/libclang_rt.builtins-wasm32.a" >/dev/null ||
    missing+=(libclang-rt-19-dev-wasm32)
  ((${#missing[@]} == 0)) && return
  log "installing ${missing[*]} with apt-get"
  local sudo=()
  if [[ $(id -u) != 0 ]]; then
    command -v sudo >/dev/null || die "need root (or sudo) to apt-get install ${APT_PACKAGES[*]}"
    sudo=(sudo)
  fi
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${APT_PACKAGES[@]}" >/dev/null
}

WIT_BINDGEN="$CACHE/tools/bin/wit-bindgen"
ensure_wit_bindgen() {
  if [[ -x $WIT_BINDGEN ]] && [[ $("$WIT_BINDGEN" --version) == *" $WIT_BINDGEN_VERSION"* ]]; then
    return
  fi
  log "cargo install wit-bindgen-cli $WIT_BINDGEN_VERSION (C generator only) into $CACHE/tools"
  # Its own target dir: no lock contention with the workspace builds, and removed afterwards.
  # Unoptimised: it generates the bindings in milliseconds either way, and compiles in a third
  # of the time.
  (cd "$REPO" && CARGO_PROFILE_RELEASE_OPT_LEVEL=0 CARGO_PROFILE_RELEASE_DEBUG=false \
    CARGO_PROFILE_RELEASE_CODEGEN_UNITS=256 CARGO_PROFILE_RELEASE_LTO=false \
    cargo install wit-bindgen-cli --version "$WIT_BINDGEN_VERSION" --locked --quiet \
    --no-default-features --features c --root "$CACHE/tools" --target-dir "$CACHE/tools-build")
  rm -rf "$CACHE/tools-build"
}

wasm_component_ld() {
  local host sysroot
  host=$(cd "$REPO" && rustc -vV | sed -n 's/^host: //p')
  sysroot=$(cd "$REPO" && rustc --print sysroot)
  local ld="$sysroot/lib/rustlib/$host/bin/wasm-component-ld"
  [[ -x $ld ]] || die "no wasm-component-ld in the Rust toolchain ($ld); Rust 1.82 or newer ships it"
  printf '%s\n' "$ld"
}

VENV="$CACHE/venv"
ensure_venv() {
  local req="$HERE/python/requirements-build.txt"
  if [[ -x $VENV/bin/componentize-py ]] && cmp -s "$req" "$VENV/.requirements-build.txt"; then
    return
  fi
  log "creating the Python venv $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$req"
  cp "$req" "$VENV/.requirements-build.txt"
}

JS_DIR="$HERE/javascript"
ensure_node_modules() {
  if [[ -f $JS_DIR/node_modules/.wasmflow-package-lock.json ]] &&
    cmp -s "$JS_DIR/package-lock.json" "$JS_DIR/node_modules/.wasmflow-package-lock.json"; then
    return
  fi
  log "npm ci in $JS_DIR"
  (cd "$JS_DIR" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  cp "$JS_DIR/package-lock.json" "$JS_DIR/node_modules/.wasmflow-package-lock.json"
}

# ---- components -------------------------------------------------------------------------------

build_python() {
  local name=py_knn.wasm dir="$HERE/python" version inputs
  version=$("$VENV/bin/componentize-py" --version)
  inputs=$(digest "$version" "$REPO/plugins/sdk/wit/plugin.wit" "$dir"/*.py)
  up_to_date $name "$inputs" && { log "$name is up to date"; return; }
  log "building $name ($version)"
  # Keep the source tree clean of __pycache__ (componentize-py imports the app to check it).
  (cd "$dir" && PYTHONDONTWRITEBYTECODE=1 "$VENV/bin/componentize-py" --wit-path "$REPO/plugins/sdk/wit" \
    --world flavor-plugin componentize app --python-path . --output "$OUT/$name.tmp" >/dev/null)
  mv "$OUT/$name.tmp" "$OUT/$name"
  mark_built $name "$inputs"
}

build_javascript() {
  local name=js_tree.wasm inputs wit="$CACHE/js-wit"
  inputs=$(digest "" "$REPO/plugins/sdk/wit/plugin.wit" "$JS_DIR/wit/world.wit" "$JS_DIR/src/plugin.js" \
    "$JS_DIR/package-lock.json")
  up_to_date $name "$inputs" && { log "$name is up to date"; return; }
  log "building $name (jco componentize)"
  # The world file plus its dependencies: wasmflow's package and the WASI packages that jco ships.
  local wasi="$JS_DIR/node_modules/@bytecodealliance/jco/lib/wit/builtin/0.2.12"
  rm -rf "$wit"
  mkdir -p "$wit/deps/plugin"
  cp "$JS_DIR/wit/world.wit" "$wit/"
  cp "$REPO/plugins/sdk/wit/plugin.wit" "$wit/deps/plugin/"
  for pkg in io clocks filesystem; do
    mkdir -p "$wit/deps/$pkg"
    cp "$wasi/wasi-$pkg/package.wit" "$wit/deps/$pkg/"
  done
  # No HTTP, no fetch event, no clocks or randomness: the plugin uses none of them, and every
  # feature left out is a WASI import fewer.
  (cd "$JS_DIR" && node_modules/.bin/jco componentize src/plugin.js --wit "$wit" \
    --world-name js-flavor-plugin --disable http fetch-event random clocks \
    --out "$OUT/$name.tmp" >/dev/null)
  mv "$OUT/$name.tmp" "$OUT/$name"
  mark_built $name "$inputs"
}

build_c() {
  local name=c_logistic.wasm dir="$HERE/c" gen="$CACHE/c-bindings" ld versions inputs
  ld=$(wasm_component_ld)
  versions="$("$WIT_BINDGEN" --version) $(clang-19 --version | head -1) $("$ld" --version)"
  inputs=$(digest "$versions" "$REPO/plugins/sdk/wit/plugin.wit" "$dir"/*.c "$dir"/*.h)
  up_to_date $name "$inputs" && { log "$name is up to date"; return; }
  log "building $name (wit-bindgen c, clang-19, wasm-component-ld)"
  rm -rf "$gen"
  local out
  out=$("$WIT_BINDGEN" c "$REPO/plugins/sdk/wit" --world flavor-plugin --out-dir "$gen" 2>&1) ||
    die "wit-bindgen c failed: $out"
  # A WASI preview 1 reactor module (Debian's wasi-libc), made into a component by
  # wasm-component-ld with the preview 1 -> preview 2 adapter built into it.
  clang-19 --target=wasm32-wasi -mexec-model=reactor -O2 -Wall -Wextra -Werror \
    -I "$gen" -I "$dir" -fuse-ld="$ld" -Wl,--wasi-adapter=reactor -Wl,--strip-all \
    -o "$OUT/$name.tmp" "$dir/logistic.c" "$dir/json.c" "$gen/flavor_plugin.c" \
    "$gen/flavor_plugin_component_type.o"
  mv "$OUT/$name.tmp" "$OUT/$name"
  mark_built $name "$inputs"
}

# ---- main -------------------------------------------------------------------------------------

start=$SECONDS
ensure_c_toolchain
# The slowest step on a fresh machine is compiling wit-bindgen; the Python and JavaScript
# components (mostly network and single-threaded work) build meanwhile.
ensure_wit_bindgen &
wit_bindgen_pid=$!
ensure_venv
ensure_node_modules
if [[ ${EXAMPLE_PLUGINS_JOBS:-2} == 1 ]]; then
  build_python
  build_javascript
else
  build_python &
  py_pid=$!
  build_javascript
  wait $py_pid || die "building the Python plugin failed"
fi
wait $wit_bindgen_pid || die "installing wit-bindgen-cli failed"
build_c
log "done in $((SECONDS - start))s: $(cd "$OUT" && ls -1 py_knn.wasm js_tree.wasm c_logistic.wasm | tr '\n' ' ')-> $OUT"
