//! Subcommands besides `server`.

mod check;
pub mod db;
pub mod gc;
pub mod import;
mod model_source;
pub mod models;
pub mod output;
mod plugin_new;
pub mod plugins;
mod remote;
pub mod run;
mod server_plugins;
mod storage;
pub mod tracking;

use std::sync::OnceLock;

/// Runs an artifact repository's future from the synchronous commands. One runtime for the
/// process: the object stores' clients are cached per bucket (`wasmflow_artifacts::open_object`)
/// and keep their pooled connections on the runtime that opened them.
pub(crate) fn block_on<F: std::future::Future>(future: F) -> anyhow::Result<F::Output> {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    let runtime = match RUNTIME.get() {
        Some(runtime) => runtime,
        None => {
            let built = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            RUNTIME.get_or_init(|| built)
        }
    };
    Ok(runtime.block_on(future))
}
