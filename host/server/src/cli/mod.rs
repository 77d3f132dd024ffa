//! Subcommands besides `server`.

mod check;
mod model_source;
pub mod models;
mod plugin_new;
pub mod plugins;
mod remote;
pub mod run;
mod server_plugins;
