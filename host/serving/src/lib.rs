//! Serving models with MLflow's scoring protocol, without HTTP and without the store:
//!
//! - [`model`]: a model directory turned into a pool of plugin instances (MLmodel, the choice of
//!   plugin, the signature), and one request scored on it;
//! - [`scoring`]: the protocol itself: request bodies (JSON's four forms and CSV) parsed and cast
//!   to the signature, predictions written as MLflow's scoring server writes them;
//! - [`served`]: the models a server keeps loaded, by name and version, under a memory budget,
//!   found through a [`served::ModelLocator`] that the caller implements (the registry);
//! - [`metrics`]: the serving metrics in Prometheus's text format.
//!
//! `wasmflow server`'s `/serving/...`, `wasmflow models serve` and `wasmflow models predict` are
//! callers of this crate; each turns a [`Refused`] into its own kind of answer.

pub mod metrics;
pub mod model;
mod pyjson;
pub mod scoring;
pub mod served;

pub use metrics::{ModelLabels, ServingMetrics};
pub use model::{
    LoadedModel, OtherPlugins, PluginOrigin, Refused, ScoreFailure, ServingPlugin, SharedModel,
    default_instances, load, load_with, load_with_plugin,
};
pub use scoring::{DEFAULT_MAX_ROWS, set_max_rows};
pub use served::{Located, ModelLocator, ServedModels};
