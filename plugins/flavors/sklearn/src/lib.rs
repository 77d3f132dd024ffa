//! A flavor for scikit-learn estimators logged with `mlflow.sklearn.log_model`, which MLflow
//! saves with skops (`model.skops`, MLflow's default `serialization_format`).
//!
//! The file is read as data by [`wasmflow_skops`]; nothing is executed. [`estimator::build`]
//! turns the saved object into an [`Estimator`] by its Python class (`__module__` /
//! `__class__`), and estimators predict on a [`Matrix`] (numeric and text columns).
//!
//! - [`data`]: the input [`Matrix`], the [`Output`] and the crate's [`Error`].
//! - [`estimator`]: the [`Estimator`] trait and the dispatch by class.
//! - [`tree`]: decision trees and tree ensembles (DecisionTree*, RandomForest*, ExtraTrees*,
//!   GradientBoosting*, HistGradientBoosting*).
//! - [`wrappers`]: LightGBM's and XGBoost's scikit-learn estimators (LGBM*, XGB*).
//!
//! The component glue (the `flavor-plugin` world's exports) is compiled for wasm32 only.

pub mod compose;
pub mod data;
pub mod estimator;
pub mod input;
pub mod linear;
pub mod load;
pub mod neighbors;
pub mod preprocessing;
pub mod tree;
pub mod util;
pub mod wrappers;

#[cfg(target_arch = "wasm32")]
mod component;

pub use data::{Column, Error, ErrorKind, Matrix, Output, Values};
pub use estimator::{Estimator, build};
