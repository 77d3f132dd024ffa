//! XGBoost models in plain Rust: [`value`] reads `model.ubj` (UBJSON, our own bounded reader)
//! and `model.json` into one document tree; [`model`] builds the booster and predicts in float32
//! exactly as XGBoost's CPU predictor does; [`predict`] adds what MLflow's xgboost pyfunc does
//! around it (a Booster's `predict(DMatrix)`, the scikit-learn wrappers' `predict` and
//! `predict_proba`); [`input`] maps columns to features.
//!
//! Used by the `xgboost` flavor plugin (`plugins/flavors/xgboost`) and by the `sklearn` plugin
//! for XGBoost's scikit-learn estimators inside skops files.

pub mod input;
pub mod model;
pub mod predict;
pub mod value;
