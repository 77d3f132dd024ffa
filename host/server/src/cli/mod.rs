//! Subcommands besides `server`.

pub mod models;
