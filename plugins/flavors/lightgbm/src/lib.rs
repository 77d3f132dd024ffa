//! A flavor for LightGBM boosters logged with `mlflow.lightgbm.log_model(booster, ...)`.
//!
//! MLflow saves an `lgb.Booster` with `booster.save_model("model.lgb")`, LightGBM's own text
//! format, and describes it in MLmodel as
//!
//! ```yaml
//! flavors:
//!   lightgbm:
//!     data: model.lgb
//!     lgb_version: 4.6.0
//!     model_class: lightgbm.basic.Booster
//! ```
//!
//! The library crate `wasmflow-lightgbm` (plugins/lightgbm), re-exported here, does the work:
//! [`model`] parses that format and predicts like `booster.predict` (transformed outputs:
//! probabilities for binary and multiclass objectives); [`input`] maps a request's columns to
//! the model's features. Both are plain Rust, tested natively against predictions of real
//! LightGBM (`tests/fixtures`). Models of the scikit-learn API (`LGBMClassifier`, ...), which
//! MLflow 3 saves with skops (`model.skops`), are read by [`sklearn`] with the `wasmflow-skops`
//! reader; pickled ones (`serialization_format: pickle|cloudpickle`) are refused, since loading a
//! pickle runs code.
//!
//! The component glue (the `flavor-plugin` world's exports) is compiled for wasm32 only, with the
//! `component` feature (on by default).

pub use wasmflow_lightgbm::{input, model, sklearn};

#[cfg(all(target_arch = "wasm32", feature = "component"))]
mod component;
