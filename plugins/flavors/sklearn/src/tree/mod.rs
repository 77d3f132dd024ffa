//! Decision trees and tree ensembles, predicting as scikit-learn 1.9 does:
//!
//! - `DecisionTreeClassifier`/`Regressor`, `ExtraTreeClassifier`/`Regressor`: the input cast
//!   to float32 (infinity refused, as scikit-learn refuses it), compared with the float64
//!   thresholds; NaN goes down the side each node's `missing_go_to_left` names. Multi-output
//!   models too (classifiers: `predict` only, since scikit-learn's `predict_proba` is then a
//!   list of arrays).
//! - `RandomForest*`, `ExtraTrees*`: the mean of the trees' leaves (classifiers: the class
//!   fractions, normalized for files of scikit-learn < 1.4 that hold counts; `predict` =
//!   argmax) or values (regressors).
//! - `GradientBoosting*`: the init estimator (`DummyClassifier`/`DummyRegressor`, or 'zero')
//!   through the loss' link, plus `learning_rate` times each stage's leaf; log_loss (binary and
//!   multinomial), exponential, squared_error, absolute_error, huber, quantile. NaN is refused
//!   as scikit-learn refuses it.
//! - `HistGradientBoosting*`: `_baseline_prediction` plus the `TreePredictor`s' leaves,
//!   comparing float64 input with `num_threshold`; losses log_loss, squared_error,
//!   absolute_error, quantile, gamma and poisson. Categorical features: the model's
//!   `_preprocessor` (an OrdinalEncoder, built by [`crate::estimator::build`], on the
//!   categorical columns, put first) and the trees' category bitsets (`raw_left_cat_bitsets`,
//!   and the known categories from `_bin_mapper`); unknown categories go the missing side.
//!
//! [`kernel`] and [`model`] are plain Rust; this module reads them out of skops nodes,
//! checking what the walk relies on (children after their parent, features in range, value
//! shapes), so that a damaged file is an error and never a trap or an endless walk.

pub mod kernel;
pub mod model;

use wasmflow_skops::{Json, Node, Value};

use crate::{Error, Estimator, Matrix, Output, Values};
use kernel::{RawTree, Tree};
use model::{BinaryLink, Head, InputCast, Link, Prediction, TreeModel};

/// A fitted tree estimator.
pub struct TreeEstimator {
    name: String,
    class: String,
    model: TreeModel,
    classes: Option<Values>,
    /// `classes_` of each output of a multi-output classifier.
    multi_classes: Option<Vec<Values>>,
    feature_names: Option<Vec<String>>,
    /// HistGradientBoosting's `_preprocessor` for categorical features.
    preprocessor: Option<HgbPreprocessor>,
}

/// HistGradientBoosting's `_preprocessor`: a ColumnTransformer that ordinal-encodes the
/// categorical columns (first) and passes the numeric ones through (after), as float64.
struct HgbPreprocessor {
    n_features_in: usize,
    categorical: Vec<usize>,
    numerical: Vec<usize>,
    encoder: Box<dyn Estimator>,
}

impl HgbPreprocessor {
    fn transform(&self, x: &Matrix, class: &str) -> Result<Matrix, Error> {
        x.expect_features(self.n_features_in, class)?;
        let codes = self.encoder.transform(&x.select(&self.categorical))?;
        if codes.n_cols() != self.categorical.len() || codes.rows != x.rows {
            return Err(Error::internal(format!(
                "the ordinal encoder gave {} columns for {} categorical features",
                codes.n_cols(),
                self.categorical.len()
            )));
        }
        Ok(Matrix::hstack(
            x.rows,
            vec![codes, x.select(&self.numerical)],
        ))
    }
}

/// Builds a DecisionTree*, ExtraTree*, RandomForest*, ExtraTrees*, GradientBoosting* or
/// HistGradientBoosting* estimator from its skops node.
pub fn build(node: &Node) -> Result<Box<dyn Estimator>, Error> {
    Ok(Box::new(TreeEstimator::from_node(node)?))
}

impl TreeEstimator {
    pub fn from_node(node: &Node) -> Result<TreeEstimator, Error> {
        let class = node.class.clone();
        let name = node.qualname();
        let mut preprocessor = None;
        let model = match class.as_str() {
            "DecisionTreeClassifier" | "ExtraTreeClassifier" => single_tree(node, true)?,
            "DecisionTreeRegressor" | "ExtraTreeRegressor" => single_tree(node, false)?,
            "RandomForestClassifier" | "ExtraTreesClassifier" => forest(node, true)?,
            "RandomForestRegressor" | "ExtraTreesRegressor" => forest(node, false)?,
            "GradientBoostingClassifier" => gradient_boosting(node, true)?,
            "GradientBoostingRegressor" => gradient_boosting(node, false)?,
            "HistGradientBoostingClassifier" => {
                hist_gradient_boosting(node, true, &mut preprocessor)?
            }
            "HistGradientBoostingRegressor" => {
                hist_gradient_boosting(node, false, &mut preprocessor)?
            }
            _ => {
                return Err(Error::unsupported(format!(
                    "{name} is not a tree estimator this plugin implements; supported: \
                     DecisionTreeClassifier, DecisionTreeRegressor, ExtraTreeClassifier, \
                     ExtraTreeRegressor, RandomForestClassifier, RandomForestRegressor, \
                     ExtraTreesClassifier, ExtraTreesRegressor, GradientBoostingClassifier, \
                     GradientBoostingRegressor, HistGradientBoostingClassifier, \
                     HistGradientBoostingRegressor"
                )));
            }
        };
        model.check().map_err(|e| invalid(&name, e))?;
        let mut multi_classes = None;
        let classes = if let Head::MultiClassifier { n_classes, .. } = &model.head {
            let lists = node.attr("classes_")?.items()?;
            if lists.len() != n_classes.len() {
                return Err(invalid(
                    &name,
                    "classes_ does not have one array per output",
                ));
            }
            let mut all = Vec::new();
            for (l, &k) in lists.iter().zip(n_classes) {
                let c = classes_of(l)?;
                if c.len() != k {
                    return Err(invalid(
                        &name,
                        format!("classes_ has {} labels for {k} classes", c.len()),
                    ));
                }
                if all
                    .first()
                    .is_some_and(|f: &Values| f.type_name() != c.type_name())
                {
                    return Err(Error::unsupported(format!(
                        "{name}: outputs with labels of different types are not supported"
                    )));
                }
                all.push(c);
            }
            multi_classes = Some(all);
            None
        } else if model.is_classifier() {
            let c = classes_of(node.attr("classes_")?)?;
            let k = match &model.head {
                Head::TreeClassifier { n_classes, .. } | Head::ForestClassifier { n_classes } => {
                    *n_classes
                }
                Head::GbClassifier { init, .. } => init.len().max(2),
                Head::HgbClassifier { baseline } => baseline.len().max(2),
                _ => 0,
            };
            if c.len() != k {
                return Err(Error::invalid_model(format!(
                    "{name}: classes_ has {} labels for {k} classes",
                    c.len()
                )));
            }
            Some(c)
        } else {
            None
        };
        let n_features_in = preprocessor
            .as_ref()
            .map_or(model.n_features, |p: &HgbPreprocessor| p.n_features_in);
        if let Some(n) = node.get_some("n_features_in_") {
            let n = n.i64()?;
            if n != n_features_in as i64 {
                return Err(Error::invalid_model(format!(
                    "{name}: n_features_in_ is {n} but its trees take {} features",
                    model.n_features
                )));
            }
        }
        let feature_names = match node.get_some("feature_names_in_") {
            Some(f) => {
                let f = f.to_strings()?;
                if f.len() != n_features_in {
                    return Err(Error::invalid_model(format!(
                        "{name}: feature_names_in_ has {} names for {} features",
                        f.len(),
                        n_features_in
                    )));
                }
                Some(f)
            }
            None => None,
        };
        Ok(TreeEstimator {
            name,
            class,
            model,
            classes,
            multi_classes,
            feature_names,
            preprocessor,
        })
    }

    pub fn model(&self) -> &TreeModel {
        &self.model
    }

    fn input(&self, x: &Matrix) -> Result<Vec<f64>, Error> {
        if let Some(p) = &self.preprocessor {
            return p.transform(x, &self.class)?.dense();
        }
        x.expect_features(self.model.n_features, &self.class)?;
        x.dense()
    }

    fn input_error(&self, e: String) -> Error {
        Error::invalid_input(format!("{}: {e}", self.class))
    }
}

impl Estimator for TreeEstimator {
    fn name(&self) -> &str {
        &self.name
    }

    fn n_features_in(&self) -> Option<usize> {
        Some(
            self.preprocessor
                .as_ref()
                .map_or(self.model.n_features, |p| p.n_features_in),
        )
    }

    fn feature_names_in(&self) -> Option<&[String]> {
        self.feature_names.as_deref()
    }

    fn classes(&self) -> Option<&Values> {
        self.classes.as_ref()
    }

    fn predict(&self, x: &Matrix) -> Result<Output, Error> {
        let dense = self.input(x)?;
        match self
            .model
            .predict(&dense, x.rows)
            .map_err(|e| self.input_error(e))?
        {
            Prediction::Classes(idx) => {
                let classes = self
                    .classes
                    .as_ref()
                    .ok_or_else(|| Error::internal("a classifier without classes_"))?;
                Ok(Output::labels(classes, &idx))
            }
            Prediction::MultiClasses { indices, outputs } => {
                let classes = self
                    .multi_classes
                    .as_ref()
                    .ok_or_else(|| Error::internal("a classifier without classes_"))?;
                // output o of row r is classes[o][indices[r * outputs + o]]
                let columns: Vec<Values> = (0..outputs)
                    .map(|o| {
                        let idx: Vec<usize> =
                            indices.iter().skip(o).step_by(outputs).copied().collect();
                        classes[o].take(&idx)
                    })
                    .collect();
                Ok(Output {
                    shape: vec![x.rows, outputs],
                    values: interleave(&columns, x.rows)?,
                })
            }
            Prediction::Values { values, cols: 0 } => Ok(Output::column(values)),
            Prediction::Values { values, cols } => Ok(Output::matrix(x.rows, cols, values)),
        }
    }

    fn predict_proba(&self, x: &Matrix) -> Result<Output, Error> {
        if !self.model.is_classifier() {
            return Err(self.lacks("predict_proba"));
        }
        if self.multi_classes.is_some() {
            return Err(Error::unsupported(format!(
                "{}: predict_proba of a multi-output classifier (a list of arrays, one per \
                 output) is not supported; predict is",
                self.name
            )));
        }
        let dense = self.input(x)?;
        let (p, k) = self
            .model
            .predict_proba(&dense, x.rows)
            .map_err(|e| self.input_error(e))?;
        Ok(Output::matrix(x.rows, k, p))
    }

    /// `np.log(predict_proba)`, as DecisionTree, forests and GradientBoosting compute it;
    /// HistGradientBoostingClassifier has no `predict_log_proba`.
    fn predict_log_proba(&self, x: &Matrix) -> Result<Output, Error> {
        if matches!(self.model.head, Head::HgbClassifier { .. }) {
            return Err(self.lacks("predict_log_proba"));
        }
        let mut p = self.predict_proba(x)?;
        if let Values::F64(v) = &mut p.values {
            v.iter_mut().for_each(|x| *x = x.ln());
        }
        Ok(p)
    }

    fn decision_function(&self, x: &Matrix) -> Result<Output, Error> {
        if !self.model.has_decision_function() {
            return Err(self.lacks("decision_function"));
        }
        let dense = self.input(x)?;
        let (v, k) = self
            .model
            .decision_function(&dense, x.rows)
            .map_err(|e| self.input_error(e))?;
        Ok(if k == 0 {
            Output::column(v)
        } else {
            Output::matrix(x.rows, k, v)
        })
    }
}

/// Row-major values of `[rows, columns.len()]` from columns of one type.
fn interleave(columns: &[Values], rows: usize) -> Result<Values, Error> {
    fn mix<T: Clone>(cols: Vec<&Vec<T>>, rows: usize) -> Vec<T> {
        (0..rows)
            .flat_map(|r| cols.iter().map(move |c| c[r].clone()))
            .collect()
    }
    macro_rules! all {
        ($variant:ident) => {
            columns
                .iter()
                .map(|c| match c {
                    Values::$variant(v) => Some(v),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()
        };
    }
    match columns.first() {
        Some(Values::Text(_)) => all!(Text).map(|c| Values::Text(mix(c, rows))),
        Some(Values::I64(_)) => all!(I64).map(|c| Values::I64(mix(c, rows))),
        Some(Values::F64(_)) => all!(F64).map(|c| Values::F64(mix(c, rows))),
        Some(Values::Bool(_)) => all!(Bool).map(|c| Values::Bool(mix(c, rows))),
        _ => None,
    }
    .ok_or_else(|| Error::internal("outputs with labels of different types"))
}

fn invalid(name: &str, e: impl std::fmt::Display) -> Error {
    Error::invalid_model(format!("{name}: {e}"))
}

/// `classes_` as labels: strings, integers, floats or booleans, as numpy holds them.
fn classes_of(node: &Node) -> Result<Values, Error> {
    use wasmflow_skops::{DType, Kind};
    match &node.value {
        Value::Array(a) => match &a.dtype {
            DType::Scalar(s) => Ok(match s.kind {
                Kind::Int | Kind::UInt => Values::I64(a.to_i64()?),
                Kind::Float => Values::F64(a.to_f64()?),
                Kind::Bool => Values::Bool(a.to_bool()?),
                Kind::Unicode | Kind::Bytes => Values::Text(a.to_strings()?),
                Kind::Void | Kind::Object => {
                    return Err(Error::invalid_model("classes_ has an unusable dtype"));
                }
            }),
            _ => Err(Error::invalid_model("classes_ is a structured array")),
        },
        Value::ObjectArray { items, .. } | Value::List(items) => {
            if let Ok(s) = node.to_strings() {
                Ok(Values::Text(s))
            } else if items
                .iter()
                .all(|i| matches!(&i.value, Value::Json(Json::Bool(_))))
            {
                Ok(Values::Bool(
                    items.iter().map(|i| i.bool()).collect::<Result<_, _>>()?,
                ))
            } else if let Ok(v) = node.to_i64_vec() {
                Ok(Values::I64(v))
            } else {
                Ok(Values::F64(node.to_f64_vec()?))
            }
        }
        _ => Err(Error::invalid_model(format!(
            "classes_ is a {}, not an array",
            node.qualname()
        ))),
    }
}

/// An sklearn `Tree`'s arrays: (raw tree parts, values `[n_nodes * n_outputs * max_classes]`,
/// n_outputs, max_classes, whether the file has `missing_go_to_left`).
struct SkTree {
    left: Vec<i64>,
    right: Vec<i64>,
    feature: Vec<i64>,
    threshold: Vec<f64>,
    missing_left: Vec<u8>,
    is_leaf: Vec<bool>,
    values: Vec<f64>,
    n_features: usize,
    n_outputs: usize,
    n_classes: Vec<i64>,
    max_classes: usize,
    has_missing: bool,
}

impl SkTree {
    fn read(estimator: &Node) -> Result<SkTree, Error> {
        let tree = estimator.attr("tree_")?;
        let args = tree.args()?;
        if args.len() != 3 {
            return Err(Error::invalid_model(format!(
                "{}: tree_ has {} arguments, expected 3",
                estimator.qualname(),
                args.len()
            )));
        }
        let n_features = count(args[0].i64()?, "tree n_features")?;
        let n_outputs = count(args[2].i64()?, "tree n_outputs")?;
        let n_classes = args[1].to_i64_vec()?;
        let state = tree.state()?;
        let nodes = state.attr("nodes")?.array()?;
        let left = nodes.field_i64("left_child")?;
        let right = nodes.field_i64("right_child")?;
        let feature = nodes.field_i64("feature")?;
        let threshold = nodes.field_f64("threshold")?;
        let has_missing = nodes.field_names().contains(&"missing_go_to_left");
        let missing_left = if has_missing {
            nodes
                .field_i64("missing_go_to_left")?
                .into_iter()
                .map(|v| u8::from(v != 0))
                .collect()
        } else {
            vec![0; left.len()]
        };
        let is_leaf = left.iter().map(|&l| l == -1).collect();
        let values = state.attr("values")?.array()?;
        let shape = values.shape.clone();
        if shape.len() != 3 || shape[0] != left.len() || shape[1] != n_outputs || shape[2] == 0 {
            return Err(Error::invalid_model(format!(
                "{}: tree_ values have shape {shape:?} for {} nodes and {n_outputs} outputs",
                estimator.qualname(),
                left.len()
            )));
        }
        Ok(SkTree {
            values: values.to_f64()?,
            max_classes: shape[2],
            left,
            right,
            feature,
            threshold,
            missing_left,
            is_leaf,
            n_features,
            n_outputs,
            n_classes,
            has_missing,
        })
    }

    /// The class count of each output (the Tree's `n_classes` argument).
    fn n_classes(&self, name: &str) -> Result<Vec<usize>, Error> {
        if self.n_classes.len() != self.n_outputs
            || self
                .n_classes
                .iter()
                .any(|&k| k < 1 || k as usize > self.max_classes)
        {
            return Err(invalid(name, "tree_ class counts do not match its values"));
        }
        Ok(self.n_classes.iter().map(|&k| k as usize).collect())
    }

    fn raw(&self) -> RawTree<'_> {
        RawTree {
            left: &self.left,
            right: &self.right,
            feature: &self.feature,
            threshold: &self.threshold,
            missing_left: &self.missing_left,
            is_leaf: &self.is_leaf,
        }
    }

    fn build(&self, column: usize, map: impl FnMut(&[f64], &mut Vec<f64>)) -> Result<Tree, String> {
        Tree::new(
            &self.raw(),
            self.n_features,
            &self.values,
            self.n_outputs * self.max_classes,
            column,
            map,
        )
    }
}

/// Whether a classifier's trees hold weighted class counts (scikit-learn < 1.4, whose
/// `predict_proba` divided them by their sum) rather than class fractions (1.4 and later,
/// whose `predict_proba` returns them as they are). From the file's `_sklearn_version`.
fn holds_counts(node: &Node) -> bool {
    let Some(v) = node.get_some("_sklearn_version").and_then(|v| v.str().ok()) else {
        return false;
    };
    let mut parts = v.split('.').map(|p| {
        p.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse::<u32>()
            .ok()
    });
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) < (1, 4),
        _ => false,
    }
}

fn count(v: i64, what: &str) -> Result<usize, Error> {
    if (1..=1 << 24).contains(&v) {
        Ok(v as usize)
    } else {
        Err(Error::invalid_model(format!("{what} is {v}")))
    }
}

fn single_tree(node: &Node, classifier: bool) -> Result<TreeModel, Error> {
    let name = node.qualname();
    let t = SkTree::read(node)?;
    if !classifier && t.max_classes != 1 {
        return Err(invalid(&name, "a regressor's tree has class values"));
    }
    let tree = t.build(0, model::verbatim).map_err(|e| invalid(&name, e))?;
    if classifier && t.n_outputs != 1 {
        return Ok(TreeModel {
            n_features: t.n_features,
            trees: vec![tree],
            input: InputCast::F32 {
                nan_allowed: t.has_missing,
            },
            head: Head::MultiClassifier {
                n_classes: t.n_classes(&name)?,
                stride: t.max_classes,
                forest: false,
            },
        });
    }
    Ok(TreeModel {
        n_features: t.n_features,
        trees: vec![tree],
        input: InputCast::F32 {
            nan_allowed: t.has_missing,
        },
        head: if classifier {
            Head::TreeClassifier {
                n_classes: t.max_classes,
                normalize: holds_counts(node),
            }
        } else {
            Head::Regressor {
                n_outputs: t.n_outputs,
            }
        },
    })
}

/// The estimators of an ensemble: a list, or an object array (possibly of lists: gradient
/// boosting's `[n_stages, K]`), flattened in row-major order.
fn estimators(node: &Node) -> Result<Vec<&Node>, Error> {
    let mut out = Vec::new();
    for item in node.attr("estimators_")?.items()? {
        match &item.value {
            Value::List(inner) | Value::Tuple(inner) | Value::ObjectArray { items: inner, .. } => {
                out.extend(inner.iter().map(|n| &**n))
            }
            _ => out.push(&**item),
        }
    }
    if out.is_empty() {
        return Err(Error::invalid_model(format!(
            "{} has no estimators_",
            node.qualname()
        )));
    }
    Ok(out)
}

fn forest(node: &Node, classifier: bool) -> Result<TreeModel, Error> {
    let name = node.qualname();
    let mut trees = Vec::new();
    let mut n_features = None;
    let mut dim = None;
    let mut nan_allowed = true;
    let mut multi: Option<(Vec<usize>, usize)> = None;
    let normalize = holds_counts(node);
    for e in estimators(node)? {
        let t = SkTree::read(e)?;
        if classifier && t.n_outputs != 1 {
            let k = t.n_classes(&name)?;
            if multi.get_or_insert_with(|| (k.clone(), t.max_classes)) != &(k, t.max_classes) {
                return Err(invalid(&name, "its trees differ in classes"));
            }
        }
        if !classifier && t.max_classes != 1 {
            return Err(invalid(&name, "a regressor's tree has class values"));
        }
        let d = t.n_outputs * t.max_classes;
        if *n_features.get_or_insert(t.n_features) != t.n_features || *dim.get_or_insert(d) != d {
            return Err(invalid(&name, "its trees differ in features or outputs"));
        }
        nan_allowed &= t.has_missing;
        let tree = if let Some((k, stride)) = &multi {
            t.build(0, model::per_output(k, *stride, normalize))
        } else if classifier && normalize {
            t.build(0, model::normalized)
        } else {
            t.build(0, model::verbatim)
        };
        trees.push(tree.map_err(|e| invalid(&name, e))?);
    }
    let (n_features, dim) = (n_features.unwrap_or(0), dim.unwrap_or(0));
    Ok(TreeModel {
        n_features,
        trees,
        input: InputCast::F32 { nan_allowed },
        head: if let Some((n_classes, stride)) = multi {
            Head::MultiClassifier {
                n_classes,
                stride,
                forest: true,
            }
        } else if classifier {
            Head::ForestClassifier { n_classes: dim }
        } else {
            Head::Regressor { n_outputs: dim }
        },
    })
}

/// numpy's `float64` eps, as `_init_raw_predictions` clips the init probabilities.
const EPS: f64 = f64::EPSILON;

fn gradient_boosting(node: &Node, classifier: bool) -> Result<TreeModel, Error> {
    let name = node.qualname();
    let loss = node.attr("loss")?.str()?.to_string();
    let lr = node.attr("learning_rate")?.f64()?;
    let stages = estimators(node)?;
    let shape = node.attr("estimators_")?.shape()?;
    let k = match shape.as_slice() {
        [s, k] if s.checked_mul(*k) == Some(stages.len()) && *k > 0 => *k,
        _ => {
            return Err(invalid(
                &name,
                format!("estimators_ has shape {shape:?} for {} trees", stages.len()),
            ));
        }
    };
    if classifier && !matches!(loss.as_str(), "log_loss" | "exponential") {
        return Err(Error::unsupported(format!(
            "{name} with loss '{loss}'; supported: log_loss, exponential"
        )));
    }
    if !classifier
        && !matches!(
            loss.as_str(),
            "squared_error" | "absolute_error" | "huber" | "quantile"
        )
    {
        return Err(Error::unsupported(format!(
            "{name} with loss '{loss}'; supported: squared_error, absolute_error, huber, quantile"
        )));
    }
    let mut trees = Vec::with_capacity(stages.len());
    let mut n_features = None;
    for (i, e) in stages.iter().enumerate() {
        let t = SkTree::read(e)?;
        if t.n_outputs != 1 || t.max_classes != 1 {
            return Err(invalid(&name, "a stage's tree has more than one output"));
        }
        if *n_features.get_or_insert(t.n_features) != t.n_features {
            return Err(invalid(&name, "its trees differ in features"));
        }
        let mut tree = t
            .build(i % k, model::verbatim)
            .map_err(|e| invalid(&name, e))?;
        tree.scale_leaves(lr);
        trees.push(tree);
    }
    let n_features = n_features.unwrap_or(0);
    let init_node = node.attr("init_")?;
    let zero = matches!(&init_node.value, Value::Json(Json::Str(s)) if s == "zero");
    let head = if classifier {
        let link = if loss == "exponential" {
            BinaryLink::HalfLogit
        } else {
            BinaryLink::Logit
        };
        let n_classes = node
            .attr("classes_")?
            .shape()?
            .first()
            .copied()
            .unwrap_or(0);
        if (k == 1 && n_classes != 2) || (k > 1 && k != n_classes) {
            return Err(invalid(
                &name,
                format!("{k} trees per stage for {n_classes} classes"),
            ));
        }
        let init = if zero {
            vec![0.0; k]
        } else {
            let p = dummy_classifier_proba(init_node, n_classes, &name)?;
            if k == 1 {
                let p1 = p[1].clamp(EPS, 1.0 - EPS);
                let l = kernel::logit(p1);
                vec![if loss == "exponential" { 0.5 * l } else { l }]
            } else {
                // MultinomialLogit.link: log(p / gmean(p)), gmean = exp(mean(log p))
                let p: Vec<f64> = p.iter().map(|v| v.clamp(EPS, 1.0 - EPS)).collect();
                let logs: Vec<f64> = p.iter().map(|v| v.ln()).collect();
                let gm = (kernel::np_sum(&logs) / k as f64).exp();
                p.iter().map(|v| (v / gm).ln()).collect()
            }
        };
        Head::GbClassifier { init, link }
    } else {
        if k != 1 {
            return Err(invalid(&name, "a regressor with several trees per stage"));
        }
        let init = if zero {
            0.0
        } else {
            dummy_regressor_constant(init_node, &name)?
        };
        Head::GbRegressor { init }
    };
    Ok(TreeModel {
        n_features,
        trees,
        // validate_data(dtype=float32) with the default ensure_all_finite: NaN refused
        input: InputCast::F32 { nan_allowed: false },
        head,
    })
}

/// The probabilities a `DummyClassifier` init estimator gives every row.
fn dummy_classifier_proba(init: &Node, n_classes: usize, name: &str) -> Result<Vec<f64>, Error> {
    if init.qualname() != "sklearn.dummy.DummyClassifier" {
        return Err(Error::unsupported(format!(
            "{name} with init estimator {}; supported: the default (DummyClassifier) and 'zero'",
            init.qualname()
        )));
    }
    let strategy = init
        .get_some("_strategy")
        .or_else(|| init.get_some("strategy"))
        .map(|s| s.str().map(str::to_string))
        .transpose()?
        .unwrap_or_else(|| "prior".into());
    let prior = init.attr("class_prior_")?.to_f64_vec()?;
    if prior.len() != n_classes {
        return Err(invalid(
            name,
            format!(
                "init_ has {} class priors for {n_classes} classes",
                prior.len()
            ),
        ));
    }
    match strategy.as_str() {
        "prior" => Ok(prior),
        "most_frequent" => {
            let best = kernel::argmax(&prior);
            Ok((0..n_classes)
                .map(|i| f64::from(u8::from(i == best)))
                .collect())
        }
        "uniform" => Ok(vec![1.0 / n_classes as f64; n_classes]),
        other => Err(Error::unsupported(format!(
            "{name} with a DummyClassifier init of strategy '{other}'; supported: prior, \
             most_frequent, uniform"
        ))),
    }
}

/// The constant a `DummyRegressor` init estimator predicts.
fn dummy_regressor_constant(init: &Node, name: &str) -> Result<f64, Error> {
    if init.qualname() != "sklearn.dummy.DummyRegressor" {
        return Err(Error::unsupported(format!(
            "{name} with init estimator {}; supported: the default (DummyRegressor) and 'zero'",
            init.qualname()
        )));
    }
    let c = init.attr("constant_")?.to_f64_vec()?;
    match c.as_slice() {
        [v] => Ok(*v),
        _ => Err(invalid(
            name,
            format!("init_ constant_ has {} values, expected 1", c.len()),
        )),
    }
}

fn hist_gradient_boosting(
    node: &Node,
    classifier: bool,
    preprocessor: &mut Option<HgbPreprocessor>,
) -> Result<TreeModel, Error> {
    let name = node.qualname();
    // categorical features: the preprocessor's codes, and the codes each feature knows
    let mut known: Vec<Option<kernel::Bitset>> = Vec::new();
    if let Some(pre) = node.get_some("_preprocessor") {
        let p = hgb_preprocessor(node, pre, &name)?;
        let bins = node.attr("_bin_mapper")?.attr("bin_thresholds_")?.items()?;
        if bins.len() != p.n_features_in {
            return Err(invalid(
                &name,
                format!(
                    "{} bin thresholds for {} features",
                    bins.len(),
                    p.n_features_in
                ),
            ));
        }
        // the ColumnTransformer puts the categorical features first
        let remapped = node.attr("_is_categorical_remapped")?.to_f64_vec()?;
        let k = p.categorical.len();
        if remapped.len() != p.n_features_in
            || remapped
                .iter()
                .enumerate()
                .any(|(f, &c)| (c != 0.0) != (f < k))
        {
            return Err(invalid(
                &name,
                "_is_categorical_remapped does not put the categorical features first",
            ));
        }
        for (f, b) in bins.iter().enumerate() {
            known.push(if f < k {
                let mut set = [0u32; 8];
                for v in b.to_f64_vec()? {
                    if (0.0..256.0).contains(&v) {
                        let code = v as u8;
                        set[usize::from(code / 32)] |= 1 << (code % 32);
                    }
                }
                Some(set)
            } else {
                None
            });
        }
        *preprocessor = Some(p);
    }
    let loss = node.attr("loss")?.str()?.to_string();
    let link = match (classifier, loss.as_str()) {
        (true, "log_loss") => Link::Identity,
        (false, "squared_error" | "absolute_error" | "quantile") => Link::Identity,
        (false, "gamma" | "poisson") => Link::Log,
        _ => {
            return Err(Error::unsupported(format!(
                "{name} with loss '{loss}'; supported: {}",
                if classifier {
                    "log_loss"
                } else {
                    "squared_error, absolute_error, quantile, gamma, poisson"
                }
            )));
        }
    };
    let baseline = node.attr("_baseline_prediction")?.to_f64_vec()?;
    let k = baseline.len();
    let n_features = count(node.attr("n_features_in_")?.i64()?, "n_features_in_")?;
    if !known.is_empty() && known.len() != n_features {
        return Err(invalid(
            &name,
            "the preprocessor and the trees differ in features",
        ));
    }
    let mut trees = Vec::new();
    for iteration in node.attr("_predictors")?.items()? {
        let predictors = iteration.items()?;
        if predictors.len() != k {
            return Err(invalid(
                &name,
                format!(
                    "an iteration has {} predictors for {k} baseline values",
                    predictors.len()
                ),
            ));
        }
        for (col, p) in predictors.iter().enumerate() {
            let nodes = p.attr("nodes")?.array()?;
            let is_leaf: Vec<bool> = nodes
                .field_i64("is_leaf")?
                .into_iter()
                .map(|v| v != 0)
                .collect();
            let is_categorical = nodes.field_i64("is_categorical")?;
            let missing_left: Vec<u8> = nodes
                .field_i64("missing_go_to_left")?
                .into_iter()
                .map(|v| u8::from(v != 0))
                .collect();
            let raw = RawTree {
                left: &nodes.field_i64("left")?,
                right: &nodes.field_i64("right")?,
                feature: &nodes.field_i64("feature_idx")?,
                threshold: &nodes.field_f64("num_threshold")?,
                missing_left: &missing_left,
                is_leaf: &is_leaf,
            };
            let values = nodes.field_f64("value")?;
            let mut tree = Tree::new(&raw, n_features, &values, 1, col, model::verbatim)
                .map_err(|e| invalid(&name, e))?;
            if is_categorical.iter().any(|&c| c != 0) {
                let bitsets = p.attr("raw_left_cat_bitsets")?.array()?;
                if bitsets.shape.len() != 2 || bitsets.shape[1] != 8 {
                    return Err(invalid(&name, "raw_left_cat_bitsets is not [n, 8]"));
                }
                let sets = bitsets.to_i64()?;
                let idx = nodes.field_i64("bitset_idx")?;
                for i in
                    (0..is_categorical.len()).filter(|&i| is_categorical[i] != 0 && !is_leaf[i])
                {
                    let f = raw.feature[i] as usize;
                    let b = usize::try_from(idx[i])
                        .ok()
                        .filter(|&b| b < bitsets.shape[0]);
                    let (Some(b), Some(Some(known))) = (b, known.get(f)) else {
                        return Err(invalid(
                            &name,
                            format!(
                                "node {i} is a categorical split of feature {f}, which is not categorical"
                            ),
                        ));
                    };
                    let mut left = [0u32; 8];
                    for (w, v) in left.iter_mut().zip(&sets[b * 8..b * 8 + 8]) {
                        *w = *v as u32;
                    }
                    tree.set_categorical(i, left, *known)
                        .map_err(|e| invalid(&name, e))?;
                }
            }
            trees.push(tree);
        }
    }
    let head = if classifier {
        let n_classes = node
            .attr("classes_")?
            .shape()?
            .first()
            .copied()
            .unwrap_or(0);
        if (k == 1 && n_classes != 2) || (k > 1 && k != n_classes) || k == 0 {
            return Err(invalid(
                &name,
                format!("{k} trees per iteration for {n_classes} classes"),
            ));
        }
        Head::HgbClassifier { baseline }
    } else {
        match baseline.as_slice() {
            [b] => Head::HgbRegressor { baseline: *b, link },
            _ => return Err(invalid(&name, "a regressor with several baseline values")),
        }
    };
    Ok(TreeModel {
        n_features,
        trees,
        input: InputCast::F64,
        head,
    })
}

/// Reads HistGradientBoosting's `_preprocessor` (built by its `fit` when there are categorical
/// features): `transformers_` = [("encoder", OrdinalEncoder, mask), ("numerical", check_array
/// FunctionTransformer, ~mask), ...].
fn hgb_preprocessor(node: &Node, pre: &Node, name: &str) -> Result<HgbPreprocessor, Error> {
    let mask = node.attr("is_categorical_")?.to_f64_vec()?;
    let n_features_in = mask.len();
    let categorical: Vec<usize> = (0..n_features_in).filter(|&i| mask[i] != 0.0).collect();
    let numerical: Vec<usize> = (0..n_features_in).filter(|&i| mask[i] == 0.0).collect();
    let mut encoder = None;
    for t in pre.attr("transformers_")?.items()? {
        let parts = t.items()?;
        let [label, transformer, ..] = parts else {
            return Err(invalid(name, "a _preprocessor transformer is not a tuple"));
        };
        match label.str()? {
            "encoder" => {
                if transformer.class != "OrdinalEncoder" {
                    return Err(invalid(
                        name,
                        "the _preprocessor's encoder is not an OrdinalEncoder",
                    ));
                }
                encoder = Some(crate::estimator::build(transformer)?);
            }
            "numerical" | "remainder" => {}
            other => {
                return Err(Error::unsupported(format!(
                    "{name} with a _preprocessor step '{other}' is not supported"
                )));
            }
        }
    }
    let encoder = encoder.ok_or_else(|| invalid(name, "_preprocessor has no encoder"))?;
    Ok(HgbPreprocessor {
        n_features_in,
        categorical,
        numerical,
        encoder,
    })
}
