//! Subcommands besides `server`.

mod check;
pub mod import;
mod model_source;
pub mod models;
mod plugin_new;
pub mod plugins;
mod remote;
pub mod run;
mod server_plugins;
