//! The one place that generates host bindings from `wit/`.

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "flavor-plugin",
    additional_derives: [PartialEq],
});

pub use exports::wasmflow::plugin::flavor::PluginInfo;
pub use wasmflow::plugin::host::Level;
pub use wasmflow::plugin::types::{Column, Data, Error as GuestError, ErrorKind, Tensor, Values};
