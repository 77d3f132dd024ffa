#!/usr/bin/env bash
# Builds {{name}}.wasm: the native unit test (cc), the bindings (`wit-bindgen c`), then a WASI
# reactor module compiled by clang-19 against wasi-libc and made a component by the
# wasm-component-ld that ships with Rust. On Debian:
#   apt-get install clang-19 lld-19 wasi-libc libclang-rt-19-dev-wasm32
#   cargo install wit-bindgen-cli --version 0.46.0 --no-default-features --features c
# WIT_BINDGEN, CLANG and WASM_COMPONENT_LD override where the tools are found.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
WIT_BINDGEN=${WIT_BINDGEN:-wit-bindgen}
CLANG=${CLANG:-clang-19}
if [[ -z ${WASM_COMPONENT_LD:-} ]]; then
  WASM_COMPONENT_LD="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/wasm-component-ld"
fi
mkdir -p build
cc -std=c11 -Wall -Wextra -Werror -o build/test_linear test_linear.c linear.c json.c
build/test_linear >/dev/null
"$WIT_BINDGEN" c wit --world flavor-plugin --out-dir build/bindings >/dev/null
"$CLANG" --target=wasm32-wasi -mexec-model=reactor -O2 -Wall -Wextra -Werror \
  -I build/bindings -I . -fuse-ld="$WASM_COMPONENT_LD" -Wl,--wasi-adapter=reactor -Wl,--strip-all \
  -o {{name}}.wasm plugin.c linear.c json.c build/bindings/flavor_plugin.c \
  build/bindings/flavor_plugin_component_type.o
echo "built $(pwd)/{{name}}.wasm"
