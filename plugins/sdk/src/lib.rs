//! Bindings and small helpers for writing wasmflow flavor plugins in Rust.
//!
//! A plugin implements [`Guest`] (the plugin's `info`) and [`GuestModel`] (load, signature,
//! predict) and registers them with [`export_flavor!`]:
//!
//! ```ignore
//! struct Plugin;
//! impl wasmflow_plugin_sdk::Guest for Plugin { type Model = MyModel; fn info() -> PluginInfo { .. } }
//! wasmflow_plugin_sdk::export_flavor!(Plugin);
//! ```
//!
//! Beside the bindings, the helpers every plugin needs: [`LoadConfig`] (the MLmodel flavor
//! section as a typed value), [`parse_params`], [`Data::match_features`] and
//! [`Data::to_matrix_f64`] / [`Data::to_matrix_f32`] / [`Data::to_matrix_with`] (request columns
//! matched to the model's features by name or position, as a dense row-major [`Matrix`], NaN
//! for missing, text columns through an encoder), and the single-output builders
//! [`Data::single_column`], [`Data::single_vector`] and [`Data::single_tensor`].
//!
//! The WIT package (`wit/`, `wasmflow:plugin@0.1.0`) ships inside this crate: it is the one copy
//! the wasmflow host and every plugin are built from. `wasmflow plugins new NAME --lang rust`
//! makes a project that depends on this crate; `plugins/flavors/linear` in wasmflow's repository
//! is an annotated built-in example.

mod config;
pub mod features;
mod matrix;
mod output;

pub use config::{LoadConfig, parse_params};
pub use features::Naming;
pub use matrix::{Float, Matrix};

wit_bindgen::generate!({
    path: "wit",
    world: "flavor-plugin",
    pub_export_macro: true,
    export_macro_name: "export_flavor",
    default_bindings_module: "wasmflow_plugin_sdk",
    // So that plugins can compare requests and answers in their native unit tests.
    additional_derives: [PartialEq],
});

pub use exports::wasmflow::plugin::flavor::{Guest, GuestModel, Model, PluginInfo};
pub use wasmflow::plugin::host::{Level, log};
/// The host's native tensor kernels (`wasmflow:plugin/tensor`): dense layers whose products run
/// outside the sandbox's slower SIMD. A plugin that never calls them does not import them.
pub use wasmflow::plugin::tensor;
pub use wasmflow::plugin::types::{Column, Data, Error, ErrorKind, Tensor, Values};

impl Error {
    /// The request's data does not fit the model.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Error {
            kind: ErrorKind::InvalidInput,
            message: message.into(),
        }
    }

    /// The model's files are missing or inconsistent.
    pub fn invalid_model(message: impl Into<String>) -> Self {
        Error {
            kind: ErrorKind::InvalidModel,
            message: message.into(),
        }
    }

    /// The model or request needs something the plugin does not implement.
    pub fn unsupported(message: impl Into<String>) -> Self {
        Error {
            kind: ErrorKind::Unsupported,
            message: message.into(),
        }
    }

    /// Something unexpected inside the plugin.
    pub fn internal(message: impl Into<String>) -> Self {
        Error {
            kind: ErrorKind::Internal,
            message: message.into(),
        }
    }
}

impl Values {
    /// The number of values.
    pub fn len(&self) -> usize {
        match self {
            Values::Float64(v) => v.len(),
            Values::Float32(v) => v.len(),
            Values::Int64(v) => v.len(),
            Values::Int32(v) => v.len(),
            Values::Boolean(v) => v.len(),
            Values::Text(v) => v.len(),
            Values::Binary(v) => v.len(),
        }
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values as 64-bit floats, when they are numbers or booleans.
    pub fn to_f64(&self) -> Option<Vec<f64>> {
        Some(match self {
            Values::Float64(v) => v.clone(),
            Values::Float32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            Values::Int64(v) => v.iter().map(|&x| x as f64).collect(),
            Values::Int32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            Values::Boolean(v) => v.iter().map(|&x| f64::from(u8::from(x))).collect(),
            Values::Text(_) | Values::Binary(_) => return None,
        })
    }

    /// The values as 32-bit floats, when they are numbers or booleans.
    pub fn to_f32(&self) -> Option<Vec<f32>> {
        Some(match self {
            Values::Float32(v) => v.clone(),
            other => other.to_f64()?.into_iter().map(|x| x as f32).collect(),
        })
    }

    /// The name of the values' type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Values::Float64(_) => "float64",
            Values::Float32(_) => "float32",
            Values::Int64(_) => "int64",
            Values::Int32(_) => "int32",
            Values::Boolean(_) => "boolean",
            Values::Text(_) => "text",
            Values::Binary(_) => "binary",
        }
    }
}

/// Reads a whole file from the model directory, which the host mounts read-only at `/model`.
pub fn read_model_file(relative: &str) -> Result<Vec<u8>, Error> {
    let path = format!("/model/{relative}");
    std::fs::read(&path).map_err(|e| Error::invalid_model(format!("cannot read '{path}': {e}")))
}

/// Writes a message to the server's log at info level.
pub fn info(message: &str) {
    log(Level::Info, message);
}
