//! The plugin runtime: runs flavor plugins (WebAssembly components implementing
//! `wasmflow:plugin/flavor-plugin`) in a sandbox with a deadline and a memory cap per call,
//! caches their compiled code on disk, and keeps track of the plugins installed.

mod bindings;
mod cache;
mod data;
mod error;
mod instance;
mod manager;
mod runtime;
mod sandbox;

pub use bindings::{Column, Data, PluginInfo, Tensor, Values};
pub use error::{PluginError, PluginErrorKind};
pub use instance::{ModelPool, ModelSource};
pub use manager::{InstalledPlugin, ManagerError, PluginManager, PluginRecord};
pub use runtime::{CacheStats, CompiledPlugin, Runtime, RuntimeConfig};
