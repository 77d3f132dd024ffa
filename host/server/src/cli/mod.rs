//! Subcommands besides `server`.

mod model_source;
pub mod models;
pub mod plugins;
mod remote;
pub mod run;
mod server_plugins;
