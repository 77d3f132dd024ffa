//! Subcommands besides `server`.

pub mod models;
pub mod plugins;
mod remote;
pub mod run;
