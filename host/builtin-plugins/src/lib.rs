//! The flavor plugins shipped inside the wasmflow binary, and the test components the
//! runtime's tests load. `build.rs` builds them from `plugins/` for wasm32-wasip2.

include!(concat!(env!("OUT_DIR"), "/plugins.rs"));
