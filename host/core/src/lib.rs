//! The I/O-free core of wasmflow: MLflow's tracking entities with their wire shapes, the validation
//! rules of MLflow's `validation.py`, page tokens, and the search-filter language.

pub mod entities;
pub mod error;
pub mod mlmodel;
pub mod mlproject;
pub mod paging;
pub mod pyjson;
pub mod search;
pub mod time;
pub mod validation;

pub use error::{Error, ErrorCode, Result};
