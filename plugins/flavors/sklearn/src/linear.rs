//! Linear models: LinearRegression, Ridge, Lasso, ElasticNet, SGDRegressor (regressors:
//! `X @ coef_.T + intercept_`) and LogisticRegression, SGDClassifier (classifiers, with
//! `decision_function`, and probabilities where the loss has them).

use wasmflow_skops::Node;

use crate::data::{Error, Matrix, Output, Values};
use crate::estimator::Estimator;
use crate::util::{self, argmax, expit, softmax_rows};

pub const REGRESSORS: &[&str] = &[
    "LinearRegression",
    "Ridge",
    "RidgeCV",
    "Lasso",
    "LassoCV",
    "ElasticNet",
    "ElasticNetCV",
    "SGDRegressor",
];
pub const CLASSIFIERS: &[&str] = &[
    "LogisticRegression",
    "LogisticRegressionCV",
    "SGDClassifier",
];

/// `coef_` as `[k, p]` and `intercept_` as `[k]`, and whether the model had a 1-d `coef_`.
struct Linear {
    coef: Vec<f64>,
    intercept: Vec<f64>,
    k: usize,
    p: usize,
    one_d: bool,
}

impl Linear {
    fn read(node: &Node) -> Result<Linear, Error> {
        let coef_node = node.attr("coef_")?;
        let coef = coef_node.to_f64_vec()?;
        let shape = coef_node.shape()?;
        let (k, p, one_d) = match shape.as_slice() {
            [p] => (1, *p, true),
            [k, p] => (*k, *p, false),
            _ => {
                return Err(Error::invalid_model(format!(
                    "{}: coef_ has shape {shape:?}",
                    node.qualname()
                )));
            }
        };
        let intercept = match node.get("intercept_") {
            None => vec![0.0; k],
            Some(n) => match &n.value {
                wasmflow_skops::Value::Json(_) => vec![n.f64()?; k],
                _ => {
                    let v = n.to_f64_vec()?;
                    match v.len() {
                        1 => vec![v[0]; k],
                        l if l == k => v,
                        l => {
                            return Err(Error::invalid_model(format!(
                                "{}: intercept_ has {l} values for {k} outputs",
                                node.qualname()
                            )));
                        }
                    }
                }
            },
        };
        Ok(Linear {
            coef,
            intercept,
            k,
            p,
            one_d,
        })
    }

    /// `X @ coef_.T + intercept_`, `[rows, k]` row-major.
    fn scores(&self, x: &Matrix, name: &str) -> Result<Vec<f64>, Error> {
        x.expect_features(self.p, name)?;
        let cols: Vec<_> = (0..self.p).map(|c| x.num(c)).collect::<Result<_, _>>()?;
        x.check_finite(&cols, name)?;
        let mut out = vec![0.0; x.rows * self.k];
        for r in 0..x.rows {
            for j in 0..self.k {
                let w = &self.coef[j * self.p..(j + 1) * self.p];
                let mut s = 0.0;
                for (c, col) in cols.iter().enumerate() {
                    s += col[r] * w[c];
                }
                out[r * self.k + j] = s + self.intercept[j];
            }
        }
        Ok(out)
    }
}

/// The name, `n_features_in_` and `feature_names_in_` of an estimator.
type Base = (String, Option<usize>, Option<Vec<String>>);

fn base(node: &Node) -> Result<Base, Error> {
    Ok((
        node.qualname(),
        util::n_features_in(node)?,
        util::feature_names_in(node)?,
    ))
}

pub struct LinearRegressor {
    name: String,
    n_features: Option<usize>,
    names: Option<Vec<String>>,
    linear: Linear,
}

pub fn build_regressor(node: &Node) -> Result<Box<dyn Estimator>, Error> {
    let (name, n_features, names) = base(node)?;
    Ok(Box::new(LinearRegressor {
        name,
        n_features,
        names,
        linear: Linear::read(node)?,
    }))
}

impl Estimator for LinearRegressor {
    fn name(&self) -> &str {
        &self.name
    }
    fn n_features_in(&self) -> Option<usize> {
        self.n_features.or(Some(self.linear.p))
    }
    fn feature_names_in(&self) -> Option<&[String]> {
        self.names.as_deref()
    }
    fn predict(&self, x: &Matrix) -> Result<Output, Error> {
        let s = self.linear.scores(x, &self.name)?;
        Ok(if self.linear.one_d {
            Output::column(s)
        } else {
            Output::matrix(x.rows, self.linear.k, s)
        })
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Proba {
    /// LogisticRegression: sigmoid (binary) or softmax (multiclass).
    Logistic,
    /// SGDClassifier(loss="log_loss"): sigmoid, one-vs-rest normalized.
    OvrLogistic,
    /// SGDClassifier(loss="modified_huber").
    ModifiedHuber,
    None,
}

pub struct LinearClassifier {
    name: String,
    n_features: Option<usize>,
    names: Option<Vec<String>>,
    linear: Linear,
    classes: Values,
    proba: Proba,
    loss: String,
}

pub fn build_classifier(node: &Node) -> Result<Box<dyn Estimator>, Error> {
    let (name, n_features, names) = base(node)?;
    let linear = Linear::read(node)?;
    let classes = util::labels(node.attr("classes_")?)?;
    let (proba, loss) = if node.class.starts_with("LogisticRegression") {
        (Proba::Logistic, "log_loss".to_string())
    } else {
        let loss = util::opt_str(node, "loss", "hinge")?.to_string();
        let proba = match loss.as_str() {
            "log_loss" | "log" => Proba::OvrLogistic,
            "modified_huber" => Proba::ModifiedHuber,
            _ => Proba::None,
        };
        (proba, loss)
    };
    let expected_k = if classes.len() == 2 { 1 } else { classes.len() };
    if classes.len() < 2 || linear.k != expected_k {
        return Err(Error::invalid_model(format!(
            "{name}: coef_ has {} rows for {} classes",
            linear.k,
            classes.len()
        )));
    }
    Ok(Box::new(LinearClassifier {
        name,
        n_features,
        names,
        linear,
        classes,
        proba,
        loss,
    }))
}

impl LinearClassifier {
    fn binary(&self) -> bool {
        self.linear.k == 1
    }
}

impl Estimator for LinearClassifier {
    fn name(&self) -> &str {
        &self.name
    }
    fn n_features_in(&self) -> Option<usize> {
        self.n_features.or(Some(self.linear.p))
    }
    fn feature_names_in(&self) -> Option<&[String]> {
        self.names.as_deref()
    }
    fn classes(&self) -> Option<&Values> {
        Some(&self.classes)
    }

    fn decision_function(&self, x: &Matrix) -> Result<Output, Error> {
        let s = self.linear.scores(x, &self.name)?;
        Ok(if self.binary() {
            Output::column(s)
        } else {
            Output::matrix(x.rows, self.linear.k, s)
        })
    }

    fn predict(&self, x: &Matrix) -> Result<Output, Error> {
        let s = self.linear.scores(x, &self.name)?;
        let idx: Vec<usize> = if self.binary() {
            s.iter().map(|&v| usize::from(v > 0.0)).collect()
        } else {
            s.chunks(self.linear.k).map(argmax).collect()
        };
        Ok(Output::labels(&self.classes, &idx))
    }

    fn predict_proba(&self, x: &Matrix) -> Result<Output, Error> {
        let k = self.linear.k;
        let mut s = self.linear.scores(x, &self.name)?;
        let n = self.classes.len();
        let out = match (self.proba, self.binary()) {
            (Proba::None, _) => {
                return Err(Error::unsupported(format!(
                    "{} with loss '{}' has no predict_proba (only log_loss and modified_huber have it)",
                    self.name, self.loss
                )));
            }
            (Proba::Logistic | Proba::OvrLogistic, true) => s
                .iter()
                .flat_map(|&d| {
                    let p = expit(d);
                    [1.0 - p, p]
                })
                .collect(),
            (Proba::Logistic, false) => {
                softmax_rows(&mut s, k);
                s
            }
            (Proba::OvrLogistic, false) => {
                s.iter_mut().for_each(|v| *v = expit(*v));
                normalize_rows(&mut s, k);
                s
            }
            (Proba::ModifiedHuber, true) => s
                .iter()
                .flat_map(|&d| {
                    let p = (d.clamp(-1.0, 1.0) + 1.0) / 2.0;
                    [1.0 - p, p]
                })
                .collect(),
            (Proba::ModifiedHuber, false) => {
                s.iter_mut()
                    .for_each(|v| *v = (v.clamp(-1.0, 1.0) + 1.0) / 2.0);
                normalize_rows(&mut s, k);
                s
            }
        };
        Ok(Output::matrix(x.rows, n, out))
    }
}

/// One-vs-rest normalization of probabilities, as sklearn's `_predict_proba_lr`: each row
/// divided by its sum, a row of zeros becoming uniform.
fn normalize_rows(values: &mut [f64], k: usize) {
    for row in values.chunks_mut(k) {
        let sum: f64 = row.iter().sum();
        if sum == 0.0 {
            row.iter_mut().for_each(|v| *v = 1.0 / k as f64);
        } else {
            row.iter_mut().for_each(|v| *v /= sum);
        }
    }
}
