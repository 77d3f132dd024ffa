//! A flavor for scikit-learn estimators logged with `mlflow.sklearn.log_model`, which MLflow
//! saves with skops (`model.skops`, MLflow's default `serialization_format`).
//!
//! The file is read as data by [`wasmflow_skops`]; nothing is executed. [`estimator::build`]
//! turns the saved object into an [`Estimator`] by its Python class (`__module__` /
//! `__class__`), and estimators predict on a [`Matrix`] (numeric and text columns).
//!
//! - [`data`]: the input [`Matrix`], the [`Output`] and the crate's [`Error`].
//! - [`estimator`]: the [`Estimator`] trait, the dispatch by class, MLflow's predict methods.
//! - [`linear`]: linear regressors and classifiers (LinearRegression ... LogisticRegression,
//!   SGD*, LinearSVC/SVR, RidgeClassifier, GLMs).
//! - [`neighbors`]: KNeighbors* (brute, KD-tree and ball-tree searches as sklearn's).
//! - [`naive_bayes`]: the GaussianNB classifier.
//! - [`svm`]: kernel SVMs (SVC, NuSVC, SVR, NuSVR), as libsvm predicts.
//! - [`preprocessing`]: scalers, encoders, SimpleImputer, PCA/TruncatedSVD, Normalizer,
//!   Binarizer, PolynomialFeatures.
//! - [`compose`]: Pipeline, ColumnTransformer, 'passthrough'.
//! - [`tree`]: decision trees and tree ensembles (DecisionTree*, RandomForest*, ExtraTrees*,
//!   GradientBoosting*, HistGradientBoosting*).
//! - [`wrappers`]: LightGBM's and XGBoost's scikit-learn estimators (LGBM*, XGB*).
//! - [`input`], [`load`]: request columns to features; MLmodel's sections to what to load.
//!
//! The component glue (the `flavor-plugin` world's exports) is compiled for wasm32 only.

pub mod compose;
pub mod data;
pub mod estimator;
pub mod input;
pub mod linear;
pub mod load;
pub mod naive_bayes;
pub mod neighbors;
pub mod preprocessing;
pub mod svm;
pub mod tree;
pub mod util;
pub mod wrappers;

#[cfg(target_arch = "wasm32")]
mod component;

pub use data::{Column, Error, ErrorKind, Matrix, Output, Values};
pub use estimator::{Estimator, build};
