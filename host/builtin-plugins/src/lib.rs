//! The flavor plugins shipped inside the wasmflow binary, and the test components the
//! runtime's tests load. `build.rs` builds them from `plugins/` for wasm32-wasip2.

/// A component shipped inside the binary.
pub struct Component {
    /// The crate's short name (`onnx`, `local`, ...).
    pub name: &'static str,
    /// The component's wasm, zlib-deflated at build time: a quarter of the size in the binary
    /// (the ONNX plugin: 17 MB → 4 MB), inflated only when the plugin must be compiled.
    pub deflated: &'static [u8],
    /// The length of the wasm.
    pub size: usize,
    /// Of the (inflated) wasm, computed at build time so that a start does not hash 17 MB
    /// again; the compile cache's key.
    pub sha256: &'static str,
    /// What the component's `info` reports, recorded at build time from the package's Cargo
    /// metadata: the host chooses a plugin for a flavor without compiling one.
    pub version: &'static str,
    /// The flavors it loads (`[package.metadata.wasmflow] loads`); empty for executors.
    pub loads: &'static [&'static str],
    /// `[package.metadata.wasmflow] description`, else the package's description.
    pub description: &'static str,
}

impl Component {
    /// The component's wasm: about 0.1 s of CPU to inflate the ONNX plugin's 17 MB, next to
    /// the tens of seconds its compile takes.
    pub fn wasm(&self) -> Vec<u8> {
        let mut wasm = vec![0; self.size];
        // zlib's Adler-32 is checked, so bytes damaged in the binary fail here instead of
        // reaching the compiler.
        let inflated = miniz_oxide::inflate::decompress_slice_iter_to_slice(
            &mut wasm,
            std::iter::once(self.deflated),
            true,
            false,
        );
        match inflated {
            Ok(n) if n == self.size => wasm,
            other => panic!(
                "the built-in component '{}' does not inflate to its {} bytes: {other:?}",
                self.name, self.size
            ),
        }
    }
}

include!(concat!(env!("OUT_DIR"), "/plugins.rs"));
