//! The tree estimators as plain structs: a list of [`Tree`]s and the "head" that turns their
//! summed leaves into scikit-learn's outputs.

use super::kernel::{
    Tree, accumulate, argmax, binary_proba, expit, normalize_into, softmax_rows, to_f32,
};

/// How the input reaches the trees.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum InputCast {
    /// scikit-learn's `Tree`: cast to float32 (NaN allowed or refused).
    F32 { nan_allowed: bool },
    /// HistGradientBoosting's predictors: float64 as given, NaN and infinities allowed.
    F64,
}

/// The link from a regressor's raw sum to its prediction.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Link {
    Identity,
    /// `exp` (HistGradientBoosting's gamma and poisson losses).
    Log,
}

/// Binary gradient-boosting losses' probability from the raw score.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum BinaryLink {
    /// log_loss: `expit(raw)`
    Logit,
    /// exponential: `expit(2 raw)`
    HalfLogit,
}

#[derive(Clone, Debug)]
pub enum Head {
    /// DecisionTreeClassifier: proba is the leaf's values (the class fractions of the leaf's
    /// training samples since scikit-learn 1.4; weighted counts before, which `normalize`
    /// divides by their sum, as scikit-learn < 1.4 did).
    TreeClassifier { n_classes: usize, normalize: bool },
    /// RandomForest/ExtraTrees classifiers: leaves hold each tree's probabilities; mean of trees.
    ForestClassifier { n_classes: usize },
    /// Multi-output DecisionTree / forest classifiers: output `o` has `n_classes[o]` classes at
    /// `o * stride` of the leaf (forests: the mean of the trees).
    MultiClassifier {
        n_classes: Vec<usize>,
        stride: usize,
        forest: bool,
    },
    /// Decision tree and forest regressors: mean of the trees (one tree: its value).
    Regressor { n_outputs: usize },
    /// GradientBoostingClassifier: `init + sum(learning_rate * leaf)` per class column.
    GbClassifier { init: Vec<f64>, link: BinaryLink },
    /// GradientBoostingRegressor: `init + sum(learning_rate * leaf)`.
    GbRegressor { init: f64 },
    /// HistGradientBoostingClassifier: `baseline + sum(leaf)`; `raw > 0` / argmax.
    HgbClassifier { baseline: Vec<f64> },
    /// HistGradientBoostingRegressor: `link^-1(baseline + sum(leaf))`.
    HgbRegressor { baseline: f64, link: Link },
}

#[derive(Clone, Debug)]
pub struct TreeModel {
    pub n_features: usize,
    pub trees: Vec<Tree>,
    pub input: InputCast,
    pub head: Head,
}

/// What `predict` gives: class indices into `classes_`, or values (`cols == 0`: a 1-D array).
#[derive(Debug, PartialEq)]
pub enum Prediction {
    Classes(Vec<usize>),
    /// Multi-output classifiers: `outputs` class indices per row (output `o`'s into its own
    /// `classes_[o]`).
    MultiClasses {
        indices: Vec<usize>,
        outputs: usize,
    },
    Values {
        values: Vec<f64>,
        cols: usize,
    },
}

impl TreeModel {
    pub fn is_classifier(&self) -> bool {
        matches!(
            self.head,
            Head::TreeClassifier { .. }
                | Head::ForestClassifier { .. }
                | Head::MultiClassifier { .. }
                | Head::GbClassifier { .. }
                | Head::HgbClassifier { .. }
        )
    }

    pub fn has_decision_function(&self) -> bool {
        matches!(
            self.head,
            Head::GbClassifier { .. } | Head::HgbClassifier { .. }
        )
    }

    /// Width of the summed output row.
    fn out_dim(&self) -> usize {
        match &self.head {
            Head::TreeClassifier { n_classes, .. } | Head::ForestClassifier { n_classes } => {
                *n_classes
            }
            Head::MultiClassifier {
                n_classes, stride, ..
            } => n_classes.len() * stride,
            Head::Regressor { n_outputs } => *n_outputs,
            Head::GbClassifier { init, .. } => init.len(),
            Head::HgbClassifier { baseline } => baseline.len(),
            Head::GbRegressor { .. } | Head::HgbRegressor { .. } => 1,
        }
    }

    /// Checks the trees' output columns against the head (done once, when built).
    pub fn check(&self) -> Result<(), String> {
        let d = self.out_dim();
        if d == 0 {
            return Err("the model has no outputs".into());
        }
        if self.trees.is_empty() {
            return Err("the model has no trees".into());
        }
        for t in &self.trees {
            if t.column() + t.dim() > d {
                return Err(format!(
                    "a tree writes {} values at column {} of {d}",
                    t.dim(),
                    t.column()
                ));
            }
        }
        Ok(())
    }

    /// The sums of the trees' leaves (plus the init/baseline), `out_dim` values per row.
    fn raw(&self, x: &[f64], rows: usize) -> Result<Vec<f64>, String> {
        let d = self.out_dim();
        if x.len() != rows * self.n_features {
            return Err(format!(
                "expected {} values for {rows} rows of {} features, got {}",
                rows * self.n_features,
                self.n_features,
                x.len()
            ));
        }
        let mut out = match &self.head {
            Head::GbClassifier { init, .. } | Head::HgbClassifier { baseline: init } => {
                let mut o = Vec::with_capacity(rows * d);
                for _ in 0..rows {
                    o.extend_from_slice(init);
                }
                o
            }
            Head::GbRegressor { init } => vec![*init; rows],
            Head::HgbRegressor { baseline, .. } => vec![*baseline; rows],
            // one tree: its leaf exactly (-0.0 + v == v, even for v = -0.0)
            _ if self.trees.len() == 1 => vec![-0.0; rows * d],
            _ => vec![0.0; rows * d],
        };
        match self.input {
            InputCast::F32 { nan_allowed } => {
                let x32 = to_f32(x, nan_allowed)?;
                accumulate(&self.trees, &x32, self.n_features, &mut out, d);
            }
            InputCast::F64 => accumulate(&self.trees, x, self.n_features, &mut out, d),
        }
        if matches!(
            self.head,
            Head::ForestClassifier { .. }
                | Head::Regressor { .. }
                | Head::MultiClassifier { forest: true, .. }
        ) && self.trees.len() > 1
        {
            let n = self.trees.len() as f64;
            for v in &mut out {
                *v /= n;
            }
        }
        Ok(out)
    }

    pub fn predict(&self, x: &[f64], rows: usize) -> Result<Prediction, String> {
        let raw = self.raw(x, rows)?;
        let d = self.out_dim();
        Ok(match &self.head {
            Head::MultiClassifier {
                n_classes, stride, ..
            } => {
                let mut indices = Vec::with_capacity(rows * n_classes.len());
                for row in raw.chunks_exact(d) {
                    for (o, &k) in n_classes.iter().enumerate() {
                        indices.push(argmax(&row[o * stride..o * stride + k]));
                    }
                }
                Prediction::MultiClasses {
                    indices,
                    outputs: n_classes.len(),
                }
            }
            Head::TreeClassifier { .. } | Head::ForestClassifier { .. } => {
                Prediction::Classes(raw.chunks_exact(d).map(argmax).collect())
            }
            Head::GbClassifier { .. } if d == 1 => {
                Prediction::Classes(raw.iter().map(|&r| usize::from(r >= 0.0)).collect())
            }
            Head::HgbClassifier { .. } if d == 1 => {
                Prediction::Classes(raw.iter().map(|&r| usize::from(r > 0.0)).collect())
            }
            Head::GbClassifier { .. } | Head::HgbClassifier { .. } => {
                Prediction::Classes(raw.chunks_exact(d).map(argmax).collect())
            }
            Head::Regressor { n_outputs } => Prediction::Values {
                values: raw,
                cols: if *n_outputs == 1 { 0 } else { *n_outputs },
            },
            Head::GbRegressor { .. } => Prediction::Values {
                values: raw,
                cols: 0,
            },
            Head::HgbRegressor { link, .. } => Prediction::Values {
                values: match link {
                    Link::Identity => raw,
                    Link::Log => raw.into_iter().map(f64::exp).collect(),
                },
                cols: 0,
            },
        })
    }

    /// `predict_proba`: `(values, n_classes)`, row-major.
    pub fn predict_proba(&self, x: &[f64], rows: usize) -> Result<(Vec<f64>, usize), String> {
        let mut raw = self.raw(x, rows)?;
        let d = self.out_dim();
        Ok(match &self.head {
            Head::TreeClassifier {
                normalize: true, ..
            } => {
                let mut out = Vec::with_capacity(raw.len());
                for r in raw.chunks_exact(d) {
                    normalize_into(r, &mut out);
                }
                (out, d)
            }
            Head::TreeClassifier { .. } => (raw, d),
            Head::ForestClassifier { .. } => (raw, d),
            Head::GbClassifier { link, .. } if d == 1 => {
                let p = match link {
                    BinaryLink::Logit => binary_proba(&raw, expit),
                    BinaryLink::HalfLogit => binary_proba(&raw, |r| expit(2.0 * r)),
                };
                (p, 2)
            }
            Head::HgbClassifier { .. } if d == 1 => (binary_proba(&raw, expit), 2),
            Head::GbClassifier { .. } | Head::HgbClassifier { .. } => {
                softmax_rows(&mut raw, d);
                (raw, d)
            }
            Head::MultiClassifier { .. } => {
                return Err(
                    "predict_proba of a multi-output classifier (a list of arrays, one \
                            per output) is not supported"
                        .into(),
                );
            }
            _ => return Err("this regressor has no predict_proba".into()),
        })
    }

    /// `decision_function` of the boosting classifiers: `(values, cols)`, cols 0 = 1-D.
    pub fn decision_function(&self, x: &[f64], rows: usize) -> Result<(Vec<f64>, usize), String> {
        if !self.has_decision_function() {
            return Err("this estimator has no decision_function".into());
        }
        let raw = self.raw(x, rows)?;
        let d = self.out_dim();
        Ok((raw, if d == 1 { 0 } else { d }))
    }
}

/// Leaf mapping for the forests' classifier trees of scikit-learn < 1.4 (weighted counts):
/// normalized as each tree's `predict_proba` then did.
pub fn normalized(v: &[f64], out: &mut Vec<f64>) {
    normalize_into(v, out)
}

/// Leaf mapping that keeps the values as they are.
pub fn verbatim(v: &[f64], out: &mut Vec<f64>) {
    out.extend_from_slice(v)
}

/// Leaf mapping for multi-output forest classifiers: each output's first `n_classes[o]`
/// values (normalized for scikit-learn < 1.4), the padding set to zero.
pub fn per_output(
    n_classes: &[usize],
    stride: usize,
    normalize: bool,
) -> impl FnMut(&[f64], &mut Vec<f64>) + '_ {
    move |v, out| {
        for (o, &k) in n_classes.iter().enumerate() {
            let values = &v[o * stride..o * stride + k];
            if normalize {
                normalize_into(values, out);
            } else {
                out.extend_from_slice(values);
            }
            out.extend(std::iter::repeat_n(0.0, stride - k));
        }
    }
}
