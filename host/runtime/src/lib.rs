//! The plugin runtime: runs flavor plugins (WebAssembly components implementing
//! `wasmflow:plugin/flavor-plugin`) in a sandbox with a deadline and a memory cap per call,
//! caches their compiled code on disk, and keeps track of the plugins installed; and runs
//! project executors (`wasmflow:plugin/executor-plugin`) with the capabilities its policy grants.

mod bindings;
mod cache;
mod data;
mod error;
mod executor;
mod instance;
mod kernel;
mod lazy;
mod manager;
mod runtime;
mod sandbox;
mod tensor;
mod trim;
mod wasi_calls;

pub use bindings::executor::{ExecutorInfo, Job, Outcome};
pub use bindings::{Column, Data, PluginInfo, Tensor, Values};
pub use cache::{default_compile_cache_dir, user_cache_dir};
pub use error::{PluginError, PluginErrorKind};
pub use executor::{
    Cancel, CompiledExecutor, ExecutorHost, Grants, JobSetup, OUTPUT_MOUNT, PROJECT_MOUNT, Tracking,
};
pub use instance::{ModelPool, ModelSource};
pub use manager::{
    CheckedPlugin, InstalledPlugin, ManagerError, PluginManager, PluginRecord, SHARED_RECHECK,
    SharedPlugins, choose,
};
pub use runtime::{CacheStats, CompiledPlugin, Runtime, RuntimeConfig, Wasm, is_core_module};
pub use trim::{
    Allocator, limit_malloc_arenas, release_file_pages, release_free_memory, resident_bytes,
    use_mimalloc,
};
