//! The one place that generates host bindings from `wit/`.

wasmtime::component::bindgen!({
    path: "../../plugins/sdk/wit",
    world: "flavor-plugin",
    additional_derives: [PartialEq],
    // `apply` traps (rather than returns) when the call's deadline passes mid-product, so that
    // the call ends as a timeout and the instance is replaced, as for a guest's own loop.
    imports: { "wasmflow:plugin/tensor": trappable },
    with: { "wasmflow:plugin/tensor.dense": crate::tensor::DenseLayer },
});

pub use exports::wasmflow::plugin::flavor::PluginInfo;
pub use wasmflow::plugin::host::Level;
pub use wasmflow::plugin::types::{Column, Data, Error as GuestError, ErrorKind, Tensor, Values};

/// The project executors' world, in a module of its own so that the flavor bindings above stay
/// as they are. The `host` interface is the flavor world's, so one implementation serves both.
pub mod executor {
    wasmtime::component::bindgen!({
        path: "../../plugins/sdk/wit",
        world: "executor-plugin",
        with: {
            "wasmflow:plugin/host": crate::bindings::wasmflow::plugin::host,
            "wasmflow:plugin/process.child": crate::executor::ChildProcess,
        },
    });

    pub use exports::wasmflow::plugin::executor::{ExecutorInfo, Job, Outcome};
}

/// A project's own `.wasm` entry point: a WASI command that imports `tracking`, the same
/// interface the executors import.
pub mod program {
    wasmtime::component::bindgen!({
        path: "../../plugins/sdk/wit",
        world: "training-program",
        with: {
            "wasmflow:plugin/tracking": crate::bindings::executor::wasmflow::plugin::tracking,
        },
    });
}
