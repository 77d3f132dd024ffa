//! LightGBM's scikit-learn API (`LGBMClassifier`, `LGBMRegressor`, `LGBMRanker`) saved with
//! skops, as `mlflow.lightgbm.log_model` writes it by default (`model.skops`,
//! `serialization_format: skops`) and as it appears inside a scikit-learn skops file.
//!
//! skops saves the estimator's `__dict__`: `_Booster` is a `lightgbm.basic.Booster` whose
//! `__getstate__` replaced its handle by the model in LightGBM's text format (`_handle`), next to
//! its `best_iteration`; the classifier keeps its labels in `_classes` and their count in
//! `_n_classes`; `_objective` is the objective's name (a callable objective is refused).
//!
//! Predictions follow `LGBMModel.predict` -> `Booster.predict(X, num_iteration=None)`, which uses
//! the booster's `best_iteration` when early stopping set it; `LGBMClassifier.predict` takes the
//! argmax of `predict_proba` (for binary models `[1 - p, p]`) and answers `classes_[index]`.

use wasmflow_skops::{Node, Value as SkValue};

use crate::model::{Booster, LoadError};

/// The scikit-learn classes supported.
pub const SUPPORTED_CLASSES: &[&str] = &["LGBMClassifier", "LGBMRegressor", "LGBMRanker"];

/// A classifier's labels, typed as numpy keeps them.
#[derive(Debug, Clone, PartialEq)]
pub enum Labels {
    Int(Vec<i64>),
    Float(Vec<f64>),
    Bool(Vec<bool>),
    Text(Vec<String>),
}

impl Labels {
    pub fn len(&self) -> usize {
        match self {
            Labels::Int(v) => v.len(),
            Labels::Float(v) => v.len(),
            Labels::Bool(v) => v.len(),
            Labels::Text(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The labels at `indices`.
    pub fn take(&self, indices: &[usize]) -> Labels {
        match self {
            Labels::Int(v) => Labels::Int(indices.iter().map(|&i| v[i]).collect()),
            Labels::Float(v) => Labels::Float(indices.iter().map(|&i| v[i]).collect()),
            Labels::Bool(v) => Labels::Bool(indices.iter().map(|&i| v[i]).collect()),
            Labels::Text(v) => Labels::Text(indices.iter().map(|&i| v[i].clone()).collect()),
        }
    }
}

/// What the estimator is.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Classifier { classes: Labels },
    Regressor,
    Ranker,
}

/// A fitted LightGBM scikit-learn estimator.
#[derive(Debug, Clone)]
pub struct SklearnModel {
    /// `module.Class`, e.g. `lightgbm.sklearn.LGBMClassifier`.
    pub class: String,
    pub kind: Kind,
    pub booster: Booster,
    /// The booster's `best_iteration` (0: not early-stopped).
    pub best_iteration: usize,
    /// Whether the model was fitted on a DataFrame (then `feature_names_in_` exists).
    pub fitted_with_feature_names: bool,
}

/// A prediction: float64 values or class labels, with their shape.
#[derive(Debug, Clone, PartialEq)]
pub enum Prediction {
    Values { values: Vec<f64>, shape: Vec<usize> },
    Labels(Labels),
}

fn skops_error(e: wasmflow_skops::Error) -> LoadError {
    match e.kind {
        wasmflow_skops::ErrorKind::Invalid => LoadError::Invalid(e.message),
        wasmflow_skops::ErrorKind::Unsupported => LoadError::Unsupported(e.message),
    }
}

impl SklearnModel {
    /// Reads the estimator from its skops node.
    pub fn from_node(node: &Node) -> Result<SklearnModel, LoadError> {
        let class = node.qualname();
        let kind_name = node.class.as_str();
        if !node.module.starts_with("lightgbm") || !SUPPORTED_CLASSES.contains(&kind_name) {
            return Err(LoadError::Unsupported(format!(
                "{class} is not supported; supported lightgbm estimators: {}",
                SUPPORTED_CLASSES.join(", ")
            )));
        }
        let ctx = |e: wasmflow_skops::Error| skops_error(e.context(&class));
        let booster_node = node
            .get_some("_Booster")
            .ok_or_else(|| LoadError::Invalid(format!("{class} is not fitted (no _Booster)")))?;
        let text = booster_node
            .get_some("_handle")
            .or_else(|| booster_node.get_some("handle"))
            .ok_or_else(|| LoadError::Invalid(format!("{class}: the booster has no model")))?
            .str()
            .map_err(ctx)?;
        let booster = Booster::parse(text).map_err(|e| match e {
            LoadError::Invalid(m) => LoadError::Invalid(format!("{class}: {m}")),
            LoadError::Unsupported(m) => LoadError::Unsupported(format!("{class}: {m}")),
        })?;
        let best_iteration = match booster_node.get_some("best_iteration") {
            Some(n) => usize::try_from(n.i64().map_err(ctx)?).unwrap_or(0),
            None => 0,
        };
        if let Some(objective) = node.get_some("_objective")
            && !matches!(&objective.value, SkValue::Json(_))
        {
            return Err(LoadError::Unsupported(format!(
                "{class} has a custom objective ({}); only lightgbm's built-in objectives are \
                 supported",
                objective.qualname()
            )));
        }
        let fitted_with_feature_names = node
            .get_some("_fitted_with_feature_names")
            .map(|n| n.bool().unwrap_or(false))
            .unwrap_or(false);
        let kind = match kind_name {
            "LGBMClassifier" => {
                let classes = labels(node.attr("_classes").map_err(ctx)?).map_err(ctx)?;
                let n_classes = classes.len();
                let expected = if n_classes > 2 { n_classes } else { 1 };
                if n_classes < 2 || booster.outputs != expected {
                    return Err(LoadError::Invalid(format!(
                        "{class} has {n_classes} classes for a booster with {} outputs",
                        booster.outputs
                    )));
                }
                Kind::Classifier { classes }
            }
            "LGBMRanker" => Kind::Ranker,
            _ => Kind::Regressor,
        };
        Ok(SklearnModel {
            class,
            kind,
            booster,
            best_iteration,
            fitted_with_feature_names,
        })
    }

    /// `Booster.predict(num_iteration=None)`: the best iteration when there is one.
    fn num_iteration(&self) -> Option<usize> {
        (self.best_iteration > 0).then_some(self.best_iteration)
    }

    /// `predict`: class labels for a classifier, else the booster's float64 outputs.
    pub fn predict(&self, columns: &[Vec<f64>], rows: usize) -> Prediction {
        match &self.kind {
            Kind::Classifier { classes } => {
                let proba = self.predict_proba(columns, rows).unwrap_or_default();
                let k = classes.len();
                let indices: Vec<usize> = proba
                    .chunks_exact(k)
                    .map(|row| {
                        // np.argmax: the first largest (a NaN wins).
                        let mut best = 0;
                        for (i, &p) in row.iter().enumerate() {
                            if p > row[best] || (p.is_nan() && !row[best].is_nan()) {
                                best = i;
                            }
                        }
                        best
                    })
                    .collect();
                Prediction::Labels(classes.take(&indices))
            }
            _ => {
                let values =
                    self.booster
                        .predict_iterations(columns, rows, 0, self.num_iteration(), false);
                let k = self.booster.outputs;
                let shape = if k == 1 { vec![rows] } else { vec![rows, k] };
                Prediction::Values { values, shape }
            }
        }
    }

    /// `predict_proba` of a classifier: `[rows, n_classes]` float64 probabilities.
    pub fn predict_proba(&self, columns: &[Vec<f64>], rows: usize) -> Option<Vec<f64>> {
        let Kind::Classifier { classes } = &self.kind else {
            return None;
        };
        let p = self
            .booster
            .predict_iterations(columns, rows, 0, self.num_iteration(), false);
        if classes.len() > 2 {
            return Some(p);
        }
        Some(p.iter().flat_map(|&p| [1.0 - p, p]).collect())
    }

    /// The number of classes of a classifier.
    pub fn n_classes(&self) -> Option<usize> {
        match &self.kind {
            Kind::Classifier { classes } => Some(classes.len()),
            _ => None,
        }
    }
}

/// A classifier's `_classes`: a numpy array (ints, floats, bools, strings) or an object array.
fn labels(node: &Node) -> Result<Labels, wasmflow_skops::Error> {
    use wasmflow_skops::npy::{DType, Kind as NpKind};
    if let SkValue::Array(array) = &node.value
        && let DType::Scalar(scalar) = &array.dtype
    {
        return Ok(match scalar.kind {
            NpKind::Int | NpKind::UInt => Labels::Int(array.to_i64()?),
            NpKind::Float => Labels::Float(array.to_f64()?),
            NpKind::Bool => Labels::Bool(array.to_bool()?),
            _ => Labels::Text(array.to_strings()?),
        });
    }
    if let Ok(ints) = node.to_i64_vec() {
        return Ok(Labels::Int(ints));
    }
    Ok(Labels::Text(node.to_strings()?))
}
