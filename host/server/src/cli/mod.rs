//! Subcommands besides `server`.

mod model_source;
pub mod models;
mod plugin_new;
pub mod plugins;
mod remote;
pub mod run;
