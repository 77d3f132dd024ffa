//! A flavor for XGBoost models logged with `mlflow.xgboost.log_model`.
//!
//! MLflow saves the model with `save_model("model.ubj")` (UBJSON, MLflow's default) or as
//! `model.json`, and describes it in MLmodel as
//!
//! ```yaml
//! flavors:
//!   xgboost:
//!     data: model.ubj
//!     model_class: xgboost.core.Booster   # or xgboost.sklearn.XGBClassifier, ...
//!     model_format: ubj
//!     xgb_version: 3.2.0
//! ```
//!
//! The library crate `wasmflow-xgboost` (plugins/xgboost), re-exported here, does the work:
//! [`value`] reads both encodings into one document tree (our own UBJSON reader, bounded
//! against malformed files); [`model`] builds the booster from it and predicts in float32
//! exactly as XGBoost's CPU predictor does; [`predict`] adds what MLflow's pyfunc does around
//! it (a Booster's `predict(DMatrix)`, or the scikit-learn wrappers' `predict`, which answer class
//! labels for classifiers). All plain Rust, tested natively against real XGBoost's predictions
//! (`tests/`).
//!
//! The component glue (the `flavor-plugin` world's exports) is compiled for wasm32 only, with the
//! `component` feature (on by default).

pub use wasmflow_xgboost::{input, model, predict, value};

#[cfg(all(target_arch = "wasm32", feature = "component"))]
mod component;
