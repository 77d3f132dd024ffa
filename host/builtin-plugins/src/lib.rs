//! The flavor plugins shipped inside the wasmflow binary, and the test components the
//! runtime's tests load. `build.rs` builds them from `plugins/` for wasm32-wasip2.

/// A component shipped inside the binary.
pub struct Component {
    /// The crate's short name (`onnx`, `local`, ...).
    pub name: &'static str,
    pub wasm: &'static [u8],
    /// Of `wasm`, computed at build time so that a start does not hash 17 MB again.
    pub sha256: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/plugins.rs"));
