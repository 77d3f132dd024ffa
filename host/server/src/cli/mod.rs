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
