//! What MLflow's xgboost pyfunc answers around the booster's prediction.
//!
//! `mlflow.xgboost`'s `_XGBModelWrapper.predict` loads `model_class` from MLmodel and calls
//! - for `xgboost.core.Booster`: `booster.predict(xgb.DMatrix(df), validate_features=True,
//!   **params)` (params filtered to `Booster.predict`'s arguments): float32 outputs of the
//!   objective (probabilities for `binary:logistic`, ...), shape `[rows]` for one output per
//!   row, else `[rows, outputs]`;
//! - for the scikit-learn wrappers (`XGBClassifier`, `XGBRegressor`, `XGBRFClassifier`,
//!   `XGBRFRegressor`, `XGBRanker`): their `predict(df, validate_features=True, **params)`,
//!   which predicts in place (`inplace_predict`), uses `best_iteration` when the model was
//!   early-stopped, and for classifiers turns probabilities into class indices (XGBoost's
//!   `classes_` are `0..n_classes`).

use crate::model::{Booster, PredictPath, Transform};

/// The Python class MLflow rebuilds the model as (MLmodel's `model_class`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelClass {
    /// `xgboost.core.Booster`.
    Booster,
    /// `XGBClassifier`, `XGBRFClassifier`.
    Classifier,
    /// `XGBRegressor`, `XGBRFRegressor`, `XGBRanker`.
    Regressor,
}

/// The `model_class` values MLflow writes for XGBoost.
pub const SUPPORTED_CLASSES: &[&str] = &[
    "xgboost.core.Booster",
    "xgboost.sklearn.XGBClassifier",
    "xgboost.sklearn.XGBRFClassifier",
    "xgboost.sklearn.XGBRegressor",
    "xgboost.sklearn.XGBRFRegressor",
    "xgboost.sklearn.XGBRanker",
];

impl ModelClass {
    /// The class named by MLmodel's `model_class` (its short name is enough).
    pub fn from_name(name: &str) -> Option<ModelClass> {
        let short = name.rsplit('.').next().unwrap_or(name);
        Some(match short {
            "Booster" => ModelClass::Booster,
            "XGBClassifier" | "XGBRFClassifier" => ModelClass::Classifier,
            "XGBRegressor" | "XGBRFRegressor" | "XGBRanker" => ModelClass::Regressor,
            _ => return None,
        })
    }
}

/// The request's parameters that change a prediction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// `output_margin`: the untransformed margins.
    pub output_margin: bool,
    /// `iteration_range`: the boosting rounds `[begin, end)` to use.
    pub iteration_range: Option<(usize, usize)>,
    /// `strict_shape` (Booster only): always `[rows, outputs]`.
    pub strict_shape: bool,
}

/// A prediction's values, typed as numpy would type them.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    Float32(Vec<f32>),
    Float64(Vec<f64>),
    Int32(Vec<i32>),
    Int64(Vec<i64>),
}

/// A prediction: values (row-major) and their shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    pub values: Values,
    pub shape: Vec<usize>,
}

/// `n_classes_` of a scikit-learn classifier: `num_class`, or 2 for binary models.
pub fn n_classes(booster: &Booster) -> usize {
    booster.num_class.max(2)
}

/// The rounds the scikit-learn wrappers use: the request's `iteration_range`, unless it is
/// absent or ends at 0, then `(0, best_iteration + 1)` when early stopping set it, else all.
pub fn sklearn_rounds(
    booster: &Booster,
    iteration_range: Option<(usize, usize)>,
) -> (usize, usize) {
    match iteration_range {
        Some(range) if range.1 != 0 => range,
        _ => match booster.best_iteration() {
            Some(best) => (0, best.saturating_add(1)),
            None => (0, 0),
        },
    }
}

/// Predicts as MLflow's pyfunc does for `class`. `features` holds `rows` rows of the model's
/// `num_feature` values (row-major, float32, NaN for missing); `missing` is the extra value that
/// counts as missing (NaN for none; the scikit-learn wrappers' `missing` parameter).
pub fn predict(
    booster: &Booster,
    class: ModelClass,
    features: &[f32],
    rows: usize,
    options: &Options,
    missing: f32,
) -> Result<Prediction, String> {
    let margin = options.output_margin;
    let width = booster.output_width(margin);
    // A Booster predicts on a DMatrix over its own iteration range; the scikit-learn wrappers
    // use inplace_predict up to their best iteration and never give a strict shape.
    let (rounds, path, strict) = match class {
        ModelClass::Booster => (
            options.iteration_range.unwrap_or((0, 0)),
            PredictPath::DMatrix,
            options.strict_shape,
        ),
        ModelClass::Classifier | ModelClass::Regressor => (
            sklearn_rounds(booster, options.iteration_range),
            PredictPath::Inplace,
            false,
        ),
    };
    let values = booster.predict(features, rows, rounds, margin, missing, path)?;
    if matches!(class, ModelClass::Classifier) && !margin {
        return Ok(classify(booster, &values, rows, width));
    }
    Ok(Prediction {
        values: Values::Float32(values),
        shape: if strict || width > 1 {
            vec![rows, width]
        } else {
            vec![rows]
        },
    })
}

/// `XGBClassifier.predict`'s labels from the booster's outputs (`width` per row).
fn classify(booster: &Booster, outputs: &[f32], rows: usize, width: usize) -> Prediction {
    if width > 1 && n_classes(booster) != 2 {
        // Multi-class: np.argmax (the first largest).
        let labels = outputs
            .chunks_exact(width)
            .map(|row| {
                let mut best = 0;
                for (i, &p) in row.iter().enumerate() {
                    if p > row[best] || (p.is_nan() && !row[best].is_nan()) {
                        best = i;
                    }
                }
                best as i64
            })
            .collect();
        return Prediction {
            values: Values::Int64(labels),
            shape: vec![rows],
        };
    }
    if width > 1 {
        // Multi-label: 1.0 where the probability is above 0.5.
        return Prediction {
            values: Values::Float64(
                outputs
                    .iter()
                    .map(|&p| if p > 0.5 { 1.0 } else { 0.0 })
                    .collect(),
            ),
            shape: vec![rows, width],
        };
    }
    if booster.transform == Transform::Softmax {
        // multi:softmax answers class indices; XGBoost casts them to int32.
        return Prediction {
            values: Values::Int32(outputs.iter().map(|&c| c as i32).collect()),
            shape: vec![rows],
        };
    }
    Prediction {
        values: Values::Int64(outputs.iter().map(|&p| i64::from(p > 0.5)).collect()),
        shape: vec![rows],
    }
}

/// `XGBClassifier.predict_proba`: `[rows, n_classes]` probabilities (float32). For
/// `multi:softmax`, the softmax of the margins.
pub fn predict_proba(
    booster: &Booster,
    features: &[f32],
    rows: usize,
    iteration_range: Option<(usize, usize)>,
    missing: f32,
) -> Result<Prediction, String> {
    let rounds = sklearn_rounds(booster, iteration_range);
    let n = n_classes(booster);
    if booster.transform == Transform::Softmax {
        let mut margins =
            booster.predict(features, rows, rounds, true, missing, PredictPath::Inplace)?;
        let k = booster.outputs;
        for row in margins.chunks_exact_mut(k) {
            // scipy.special.softmax in float32.
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0f32;
            for x in row.iter_mut() {
                // numpy's float32 exp is a SIMD approximation that is not correctly rounded:
                // these probabilities can differ from scikit-learn's by an ulp or two.
                *x = (*x - max).exp();
                sum += *x;
            }
            for x in row.iter_mut() {
                *x /= sum;
            }
        }
        return Ok(Prediction {
            values: Values::Float32(margins),
            shape: vec![rows, k],
        });
    }
    let probs = booster.predict(features, rows, rounds, false, missing, PredictPath::Inplace)?;
    let width = booster.output_width(false);
    if width > 1 && (width == n || n == 2) {
        return Ok(Prediction {
            values: Values::Float32(probs),
            shape: vec![rows, width],
        });
    }
    let mut out = Vec::with_capacity(rows * 2);
    for &p in &probs {
        out.push(1.0 - p);
        out.push(p);
    }
    Ok(Prediction {
        values: Values::Float32(out),
        shape: vec![rows, 2],
    })
}
