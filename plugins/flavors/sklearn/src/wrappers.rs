//! LightGBM's and XGBoost's scikit-learn estimators inside a scikit-learn skops file (logged with
//! `mlflow.sklearn.log_model`, alone or as a Pipeline's last step), built on the lightgbm and
//! xgboost flavor crates' libraries.
//!
//! How skops saves them (their `__getstate__`, read as data):
//! - `lightgbm.sklearn.LGBMClassifier` / `LGBMRegressor` / `LGBMRanker`: `_Booster` is a
//!   `lightgbm.basic.Booster` whose `_handle` is the model in LightGBM's text format, with its
//!   `best_iteration`; a classifier's labels are `_classes`. See
//!   `wasmflow_lightgbm::sklearn`.
//! - `xgboost.sklearn.XGBClassifier` / `XGBRegressor` / `XGBRF*` / `XGBRanker`: `_Booster` is an
//!   `xgboost.core.Booster` whose `handle` is a bytearray holding `Booster.save_raw()`, the model
//!   as UBJSON (its learner attributes carry `best_iteration`); `missing` is the estimator's
//!   missing-value marker. Their labels are `0..n_classes_`, and predictions are float32.

use wasmflow_lightgbm::input::text_feature;
use wasmflow_lightgbm::model::LoadError as LgbmLoadError;
use wasmflow_lightgbm::sklearn::{Kind, Labels, Prediction, SklearnModel};
use wasmflow_skops::{Node, Value as SkValue};
use wasmflow_xgboost::model::{Booster as XgbBooster, LoadError as XgbLoadError};
use wasmflow_xgboost::predict::{self as xgb, ModelClass};

use crate::data::Column;
use crate::{Error, Estimator, Matrix, Output, Values};

/// Builds an LGBM* or XGB* estimator from its skops node.
pub fn build(node: &Node) -> Result<Box<dyn Estimator>, Error> {
    if node.module.starts_with("lightgbm") {
        Ok(Box::new(Lgbm::new(node)?))
    } else if node.module.starts_with("xgboost") {
        Ok(Box::new(Xgb::new(node)?))
    } else {
        Err(Error::unsupported(format!(
            "{} is not a lightgbm or xgboost estimator",
            node.qualname()
        )))
    }
}

fn lgbm_error(e: LgbmLoadError) -> Error {
    match e {
        LgbmLoadError::Invalid(m) => Error::invalid_model(m),
        LgbmLoadError::Unsupported(m) => Error::unsupported(m),
    }
}

/// A fitted LGBMClassifier / LGBMRegressor / LGBMRanker.
struct Lgbm {
    name: String,
    model: SklearnModel,
    classes: Option<Values>,
}

impl Lgbm {
    fn new(node: &Node) -> Result<Lgbm, Error> {
        let model = SklearnModel::from_node(node).map_err(lgbm_error)?;
        let classes = match &model.kind {
            Kind::Classifier { classes } => Some(values_of(classes.clone())),
            _ => None,
        };
        Ok(Lgbm {
            name: model.class.clone(),
            model,
            classes,
        })
    }

    /// The matrix as the booster's feature columns; text columns of features trained as pandas
    /// categories become their category codes.
    fn columns(&self, x: &Matrix) -> Result<Vec<Vec<f64>>, Error> {
        let booster = &self.model.booster;
        x.expect_features(booster.num_features(), &self.name)?;
        (0..booster.num_features())
            .map(|c| match (&x.columns[c], &booster.pandas_categories[c]) {
                (Column::Text(text), Some(categories)) => {
                    let text: Vec<String> =
                        text.iter().map(|t| t.clone().unwrap_or_default()).collect();
                    text_feature(&text, Some(categories), &x.name(c)).map_err(Error::invalid_input)
                }
                _ => Ok(x.num(c)?.into_owned()),
            })
            .collect()
    }
}

fn values_of(labels: Labels) -> Values {
    match labels {
        Labels::Int(v) => Values::I64(v),
        Labels::Float(v) => Values::F64(v),
        Labels::Bool(v) => Values::Bool(v),
        Labels::Text(v) => Values::Text(v),
    }
}

impl Estimator for Lgbm {
    fn name(&self) -> &str {
        &self.name
    }

    fn n_features_in(&self) -> Option<usize> {
        Some(self.model.booster.num_features())
    }

    fn feature_names_in(&self) -> Option<&[String]> {
        self.model
            .fitted_with_feature_names
            .then_some(self.model.booster.feature_names.as_slice())
    }

    fn classes(&self) -> Option<&Values> {
        self.classes.as_ref()
    }

    fn predict(&self, x: &Matrix) -> Result<Output, Error> {
        let columns = self.columns(x)?;
        Ok(match self.model.predict(&columns, x.rows) {
            Prediction::Values { values, shape } => Output {
                shape,
                values: Values::F64(values),
            },
            Prediction::Labels(labels) => Output {
                shape: vec![x.rows],
                values: values_of(labels),
            },
        })
    }

    fn predict_proba(&self, x: &Matrix) -> Result<Output, Error> {
        let Some(k) = self.model.n_classes() else {
            return Err(self.lacks("predict_proba"));
        };
        let columns = self.columns(x)?;
        let p = self
            .model
            .predict_proba(&columns, x.rows)
            .ok_or_else(|| self.lacks("predict_proba"))?;
        Ok(Output::matrix(x.rows, k, p))
    }
}

/// A fitted XGBClassifier / XGBRegressor / XGBRFClassifier / XGBRFRegressor / XGBRanker.
struct Xgb {
    name: String,
    booster: XgbBooster,
    class: ModelClass,
    missing: f32,
    classes: Option<Values>,
}

impl Xgb {
    fn new(node: &Node) -> Result<Xgb, Error> {
        let name = node.qualname();
        let class = ModelClass::from_name(&node.class)
            .filter(|c| *c != ModelClass::Booster)
            .ok_or_else(|| {
                Error::unsupported(format!(
                    "{name} is not supported; supported xgboost estimators: XGBClassifier, \
                     XGBRegressor, XGBRFClassifier, XGBRFRegressor, XGBRanker"
                ))
            })?;
        let booster_node = node
            .get_some("_Booster")
            .ok_or_else(|| Error::invalid_model(format!("{name} is not fitted (no _Booster)")))?;
        let handle = booster_node
            .get_some("handle")
            .ok_or_else(|| Error::invalid_model(format!("{name}: the booster has no model")))?;
        let bytes: &[u8] = match &handle.value {
            SkValue::Bytes(bytes) => bytes,
            _ => {
                return Err(Error::invalid_model(format!(
                    "{name}: the booster's handle is a {}, not bytes",
                    handle.qualname()
                )));
            }
        };
        let booster = XgbBooster::load(bytes).map_err(|e| match e {
            XgbLoadError::Invalid(m) => Error::invalid_model(format!("{name}: {m}")),
            XgbLoadError::Unsupported(m) => Error::unsupported(format!("{name}: {m}")),
        })?;
        let missing = match node.get_some("missing") {
            Some(m) => m
                .f64()
                .map_err(|e| Error::invalid_model(format!("{name}: missing: {e}")))?
                as f32,
            None => f32::NAN,
        };
        let classes = (class == ModelClass::Classifier)
            .then(|| Values::I64((0..xgb::n_classes(&booster) as i64).collect()));
        Ok(Xgb {
            name,
            booster,
            class,
            missing,
            classes,
        })
    }

    /// The matrix as float32 rows of the booster's features.
    fn features(&self, x: &Matrix) -> Result<Vec<f32>, Error> {
        x.expect_features(self.booster.num_feature, &self.name)?;
        let columns = (0..self.booster.num_feature)
            .map(|c| x.num(c))
            .collect::<Result<Vec<_>, _>>()?;
        let slices: Vec<&[f64]> = columns.iter().map(|c| c.as_ref()).collect();
        Ok(wasmflow_xgboost::input::rows_from_columns(&slices, x.rows))
    }
}

fn output(prediction: xgb::Prediction) -> Output {
    Output {
        shape: prediction.shape,
        values: match prediction.values {
            xgb::Values::Float32(v) => Values::F32(v),
            xgb::Values::Float64(v) => Values::F64(v),
            // multi:softmax labels are int32 in XGBoost; the JSON answer is the same.
            xgb::Values::Int32(v) => Values::I64(v.into_iter().map(i64::from).collect()),
            xgb::Values::Int64(v) => Values::I64(v),
        },
    }
}

impl Estimator for Xgb {
    fn name(&self) -> &str {
        &self.name
    }

    fn n_features_in(&self) -> Option<usize> {
        Some(self.booster.num_feature)
    }

    fn feature_names_in(&self) -> Option<&[String]> {
        (!self.booster.feature_names.is_empty()).then_some(self.booster.feature_names.as_slice())
    }

    fn classes(&self) -> Option<&Values> {
        self.classes.as_ref()
    }

    fn predict(&self, x: &Matrix) -> Result<Output, Error> {
        let features = self.features(x)?;
        xgb::predict(
            &self.booster,
            self.class,
            &features,
            x.rows,
            &xgb::Options::default(),
            self.missing,
        )
        .map(output)
        .map_err(Error::invalid_input)
    }

    fn predict_proba(&self, x: &Matrix) -> Result<Output, Error> {
        if self.class != ModelClass::Classifier {
            return Err(self.lacks("predict_proba"));
        }
        let features = self.features(x)?;
        xgb::predict_proba(&self.booster, &features, x.rows, None, self.missing)
            .map(output)
            .map_err(Error::invalid_input)
    }
}
