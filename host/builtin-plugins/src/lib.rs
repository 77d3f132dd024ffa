//! The flavor plugins shipped inside the wasmflow binary, and the test components the
//! runtime's tests load. `build.rs` builds them from `plugins/` for wasm32-wasip2.

/// A component shipped inside the binary.
pub struct Component {
    /// The crate's short name (`onnx`, `local`, ...).
    pub name: &'static str,
    pub wasm: &'static [u8],
    /// Of `wasm`, computed at build time so that a start does not hash 17 MB again.
    pub sha256: &'static str,
    /// What the component's `info` reports, recorded at build time from the package's Cargo
    /// metadata: the host chooses a plugin for a flavor without compiling one.
    pub version: &'static str,
    /// The flavors it loads (`[package.metadata.wasmflow] loads`); empty for executors.
    pub loads: &'static [&'static str],
    /// `[package.metadata.wasmflow] description`, else the package's description.
    pub description: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/plugins.rs"));
