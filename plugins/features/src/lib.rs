//! The flavor libraries' name for the SDK's feature matching: the code lives in
//! [`wasmflow_plugin_sdk::features`], so that built-in flavors and third-party plugins share one
//! implementation.

pub use wasmflow_plugin_sdk::features::*;
