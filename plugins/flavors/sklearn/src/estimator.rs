//! The [`Estimator`] trait and [`build`], which turns a skops node into an estimator by its
//! Python class.

use wasmflow_skops::Node;

use crate::data::{Error, Matrix, Output, Values};

/// A fitted scikit-learn estimator (or transformer), ready to predict.
///
/// Every method has a default that refuses with `unsupported`, so an estimator implements
/// what its sklearn class has. Inputs have the estimator's features in order (the caller
/// matched columns by `feature_names_in_` or position); an estimator checks the count.
pub trait Estimator {
    /// The Python class, `module.class` (for messages).
    fn name(&self) -> &str;

    /// `n_features_in_`, when known.
    fn n_features_in(&self) -> Option<usize> {
        None
    }

    /// `feature_names_in_` (set when the estimator was fitted on a DataFrame).
    fn feature_names_in(&self) -> Option<&[String]> {
        None
    }

    /// `classes_` of a classifier.
    fn classes(&self) -> Option<&Values> {
        None
    }

    /// `predict`: labels of a classifier (`classes_` values), values of a regressor;
    /// `[rows]`, or `[rows, n_outputs]` for multi-output models.
    fn predict(&self, _x: &Matrix) -> Result<Output, Error> {
        Err(self.lacks("predict"))
    }

    /// `predict_proba`: `[rows, n_classes]`.
    fn predict_proba(&self, _x: &Matrix) -> Result<Output, Error> {
        Err(self.lacks("predict_proba"))
    }

    /// `predict_log_proba`; by default the log of `predict_proba`, as most sklearn
    /// classifiers compute it.
    fn predict_log_proba(&self, x: &Matrix) -> Result<Output, Error> {
        let mut p = self.predict_proba(x)?;
        if let Values::F64(v) = &mut p.values {
            v.iter_mut().for_each(|x| *x = x.ln());
        }
        Ok(p)
    }

    /// `decision_function`: `[rows]` for binary classifiers, `[rows, n_classes]` otherwise.
    fn decision_function(&self, _x: &Matrix) -> Result<Output, Error> {
        Err(self.lacks("decision_function"))
    }

    /// `transform` of a transformer (scaler, encoder, imputer, PCA, ColumnTransformer, ...).
    fn transform(&self, _x: &Matrix) -> Result<Matrix, Error> {
        Err(self.lacks("transform"))
    }

    /// The error for a method this estimator does not have.
    fn lacks(&self, method: &str) -> Error {
        Error::unsupported(format!("{} has no method '{method}'", self.name()))
    }
}

/// The prediction methods MLflow's `pyfunc_predict_fn` may name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Predict,
    PredictProba,
    PredictLogProba,
    DecisionFunction,
}

impl Method {
    /// The method for a `pyfunc_predict_fn` value.
    pub fn parse(name: &str) -> Result<Method, Error> {
        Ok(match name {
            "predict" => Method::Predict,
            "predict_proba" => Method::PredictProba,
            "predict_log_proba" => Method::PredictLogProba,
            "decision_function" => Method::DecisionFunction,
            other => {
                return Err(Error::unsupported(format!(
                    "pyfunc_predict_fn '{other}' is not supported; supported: predict, \
                     predict_proba, predict_log_proba, decision_function"
                )));
            }
        })
    }

    /// Calls the method on an estimator.
    pub fn call(self, estimator: &dyn Estimator, x: &Matrix) -> Result<Output, Error> {
        match self {
            Method::Predict => estimator.predict(x),
            Method::PredictProba => estimator.predict_proba(x),
            Method::PredictLogProba => estimator.predict_log_proba(x),
            Method::DecisionFunction => estimator.decision_function(x),
        }
    }
}

/// The classes [`build`] routes to the tree module.
pub const TREE_CLASSES: &[&str] = &[
    "DecisionTreeClassifier",
    "DecisionTreeRegressor",
    "ExtraTreeClassifier",
    "ExtraTreeRegressor",
    "RandomForestClassifier",
    "RandomForestRegressor",
    "ExtraTreesClassifier",
    "ExtraTreesRegressor",
    "GradientBoostingClassifier",
    "GradientBoostingRegressor",
    "HistGradientBoostingClassifier",
    "HistGradientBoostingRegressor",
];

/// The classes [`build`] routes to the wrappers module.
pub const WRAPPER_CLASSES: &[&str] = &[
    "LGBMClassifier",
    "LGBMRegressor",
    "LGBMRanker",
    "XGBClassifier",
    "XGBRegressor",
    "XGBRFClassifier",
    "XGBRFRegressor",
    "XGBRanker",
];

/// Every class [`build`] knows, for messages.
pub fn supported_classes() -> Vec<&'static str> {
    crate::linear::REGRESSORS
        .iter()
        .chain(crate::linear::CLASSIFIERS)
        .chain(crate::neighbors::CLASSES)
        .chain(crate::naive_bayes::CLASSES)
        .chain(crate::svm::CLASSES)
        .chain(TREE_CLASSES)
        .chain(crate::preprocessing::CLASSES)
        .chain(crate::compose::CLASSES)
        .chain(WRAPPER_CLASSES)
        .copied()
        .collect()
}

/// Builds the estimator a skops node describes, by its `__module__` and `__class__`.
pub fn build(node: &Node) -> Result<Box<dyn Estimator>, Error> {
    let class = node.class.as_str();
    let module = node.module.as_str();
    if module.starts_with("sklearn.") && TREE_CLASSES.contains(&class) {
        return crate::tree::build(node);
    }
    if module.starts_with("sklearn.") {
        if crate::linear::REGRESSORS.contains(&class) {
            return crate::linear::build_regressor(node);
        }
        if crate::linear::CLASSIFIERS.contains(&class) {
            return crate::linear::build_classifier(node);
        }
        if crate::neighbors::CLASSES.contains(&class) {
            return crate::neighbors::build(node);
        }
        if crate::naive_bayes::CLASSES.contains(&class) {
            return crate::naive_bayes::build(node);
        }
        if crate::svm::CLASSES.contains(&class) {
            return crate::svm::build(node);
        }
        if crate::preprocessing::CLASSES.contains(&class) {
            return crate::preprocessing::build(node);
        }
        if crate::compose::CLASSES.contains(&class) {
            return crate::compose::build_compose(node);
        }
    }
    if (module.starts_with("lightgbm") || module.starts_with("xgboost"))
        && WRAPPER_CLASSES.contains(&class)
    {
        return crate::wrappers::build(node);
    }
    Err(unsupported_class(node))
}

/// The error for a class this crate does not implement.
pub fn unsupported_class(node: &Node) -> Error {
    Error::unsupported(format!(
        "the estimator {} is not supported; supported estimators: {}",
        node.qualname(),
        supported_classes().join(", ")
    ))
}
