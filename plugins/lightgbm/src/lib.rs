//! LightGBM models in plain Rust: [`model`] parses LightGBM's text model format and predicts
//! like `booster.predict`; [`input`] maps a request's columns to the model's features;
//! [`sklearn`] reads `LGBMClassifier`/`LGBMRegressor`/`LGBMRanker` saved with skops and predicts
//! as their scikit-learn API does.
//!
//! Used by the `lightgbm` flavor plugin (`plugins/flavors/lightgbm`) and by the `sklearn` plugin
//! for LightGBM's scikit-learn estimators inside skops files.

pub mod input;
pub mod model;
pub mod sklearn;
