//! Subcommands besides `server`.

mod check;
mod model_source;
pub mod models;
pub mod plugins;
mod remote;
pub mod run;
