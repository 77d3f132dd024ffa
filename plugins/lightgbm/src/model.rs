//! LightGBM's text model format (what `Booster.save_model` writes) and prediction with it.
//!
//! The file is a header of `key=value` lines, then one block per tree,
//!
//! ```text
//! tree
//! version=v4
//! num_class=1
//! num_tree_per_iteration=1
//! max_feature_idx=3
//! objective=binary sigmoid:1
//! feature_names=a b c d
//! ...
//! Tree=0
//! num_leaves=4
//! num_cat=0
//! split_feature=0 3 0
//! threshold=0.44 0 -0.49
//! decision_type=2 1 2
//! left_child=1 2 -1
//! right_child=-2 -3 -4
//! leaf_value=-0.55 -0.14 -0.55 -0.13
//! ...
//!
//! end of trees
//! ...
//! parameters:
//! [categorical_feature: 3]
//! end of parameters
//!
//! pandas_categorical:[["x", "y", "z"]]
//! ```
//!
//! A node's children are node indices when `>= 0` and `!leaf` when negative. Each node's
//! `decision_type` packs three fields: bit 0 says the split is categorical, bit 1 that missing
//! values go left, bits 2-3 the missing type (0 none, 1 zero, 2 NaN). A categorical split's
//! threshold is an index into `cat_boundaries`, which delimit bitsets of categories (32 per word
//! of `cat_threshold`) that go left.
//!
//! Prediction follows LightGBM's `Booster.predict`: values within ±1e-35 count as zero, each
//! output sums its trees in iteration order, random forests average, and the objective's output
//! transformation (sigmoid, softmax, exp, ...) is applied last.

use std::collections::HashMap;
use std::fmt;

/// LightGBM's `kZeroThreshold`: a float constant, widened to double.
const ZERO_THRESHOLD: f64 = 1e-35_f32 as f64;

const CATEGORICAL_MASK: u8 = 1;
const DEFAULT_LEFT_MASK: u8 = 2;
const MISSING_ZERO: u8 = 1;
const MISSING_NAN: u8 = 2;

/// Why a model could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadError {
    /// The file is not a well-formed LightGBM model.
    Invalid(String),
    /// The file is well formed but uses something this implementation does not support.
    Unsupported(String),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Invalid(m) | LoadError::Unsupported(m) => f.write_str(m),
        }
    }
}

fn invalid(message: impl Into<String>) -> LoadError {
    LoadError::Invalid(message.into())
}

/// How raw scores become predictions: LightGBM's `ObjectiveFunction::ConvertOutput`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Transform {
    /// Regression, ranking and custom objectives: the raw score.
    Identity,
    /// `regression sqrt`: the model was trained on `sqrt(label)`, so `sign(x) * x * x`.
    SignedSquare,
    /// Poisson, gamma and Tweedie: `exp(x)`.
    Exp,
    /// Binary and cross-entropy: `1 / (1 + exp(-sigmoid * x))`.
    Sigmoid(f64),
    /// Cross-entropy-lambda: `log(1 + exp(x))`.
    Log1pExp,
    /// Multiclass: softmax over the classes.
    Softmax,
    /// One-vs-all multiclass: a sigmoid per class.
    SigmoidPerClass(f64),
}

/// A parsed LightGBM booster, ready to predict.
#[derive(Debug, Clone)]
pub struct Booster {
    /// The features in the order the model indexes them (LightGBM's `feature_names`).
    pub feature_names: Vec<String>,
    /// Outputs per row: 1, or the number of classes.
    pub outputs: usize,
    /// The objective's name as written in the file (after resolving aliases), for messages.
    pub objective: String,
    /// The output transformation of the objective.
    pub transform: Transform,
    /// Random forests (`boosting=rf`) average their trees instead of adding them.
    pub average_output: bool,
    /// For features trained as pandas categories: the category values, whose positions are the
    /// codes the trees split on.
    pub pandas_categories: Vec<Option<Vec<Category>>>,
    trees: Vec<Tree>,
}

/// One pandas category value as stored in `pandas_categorical` (strings, numbers, booleans).
#[derive(Debug, Clone, PartialEq)]
pub enum Category {
    Text(String),
    Number(f64),
}

#[derive(Debug, Clone)]
struct Tree {
    split_feature: Vec<usize>,
    threshold: Vec<f64>,
    decision_type: Vec<u8>,
    left_child: Vec<i32>,
    right_child: Vec<i32>,
    leaf_value: Vec<f64>,
    /// `num_cat > 0`: only then does LightGBM look at a node's categorical bit.
    has_categorical: bool,
    cat_boundaries: Vec<usize>,
    cat_threshold: Vec<u32>,
    linear: Option<LinearLeaves>,
}

/// `linear_tree=true`: each leaf predicts `const + sum(coeff * feature)`.
#[derive(Debug, Clone)]
struct LinearLeaves {
    leaf_const: Vec<f64>,
    features: Vec<Vec<usize>>,
    coeff: Vec<Vec<f64>>,
}

impl Booster {
    /// Parses a model in LightGBM's text format.
    pub fn parse(text: &str) -> Result<Booster, LoadError> {
        let mut lines = text
            .lines()
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .peekable();

        // The header, up to the first tree.
        let mut header: HashMap<&str, &str> = HashMap::new();
        while let Some(&line) = lines.peek() {
            if line.starts_with("Tree=") {
                break;
            }
            lines.next();
            if line == "end of trees" {
                break;
            }
            match line.split_once('=') {
                Some((key, value)) => {
                    header.insert(key, value);
                }
                None if !line.is_empty() => {
                    header.insert(line, "");
                }
                None => {}
            }
        }
        if !header.contains_key("num_class") {
            return Err(invalid("not a LightGBM text model: no num_class line"));
        }

        let num_class: usize = header_number(&header, "num_class")?;
        let per_iteration: usize = match header.get("num_tree_per_iteration") {
            Some(_) => header_number(&header, "num_tree_per_iteration")?,
            None => num_class,
        };
        let max_feature_idx: i64 = header_number(&header, "max_feature_idx")?;
        if num_class == 0 || per_iteration == 0 {
            return Err(invalid(
                "num_class and num_tree_per_iteration must be positive",
            ));
        }
        if per_iteration != num_class {
            return Err(LoadError::Unsupported(format!(
                "{per_iteration} trees per iteration for {num_class} classes"
            )));
        }
        let num_features = usize::try_from(max_feature_idx + 1)
            .map_err(|_| invalid(format!("bad max_feature_idx {max_feature_idx}")))?;
        let feature_names: Vec<String> = header
            .get("feature_names")
            .ok_or_else(|| invalid("the model has no feature_names"))?
            .split(' ')
            .map(str::to_owned)
            .collect();
        if feature_names.len() != num_features {
            return Err(invalid(format!(
                "{} feature names for max_feature_idx {max_feature_idx}",
                feature_names.len()
            )));
        }
        let (objective, transform) = match header.get("objective") {
            Some(spec) => parse_objective(spec, num_class)?,
            None => ("custom".to_owned(), Transform::Identity),
        };
        let average_output = header.contains_key("average_output");

        // The trees: `Tree=<i>` then `key=value` lines up to a blank line.
        let mut trees = Vec::new();
        while let Some(line) = lines.next() {
            if line == "end of trees" {
                break;
            }
            let Some(index) = line.strip_prefix("Tree=") else {
                if line.is_empty() {
                    continue;
                }
                return Err(invalid(format!("expected a tree, found '{}'", clip(line))));
            };
            let mut fields = HashMap::new();
            for line in lines.by_ref() {
                if line.is_empty() {
                    break;
                }
                let (key, value) = line
                    .split_once('=')
                    .ok_or_else(|| invalid(format!("tree {index}: bad line '{}'", clip(line))))?;
                fields.insert(key, value);
            }
            let tree = Tree::parse(&fields, num_features)
                .map_err(|e| invalid(format!("tree {index}: {e}")))?;
            trees.push(tree);
        }
        if trees.len() % per_iteration != 0 {
            return Err(invalid(format!(
                "{} trees is not a whole number of iterations of {per_iteration}",
                trees.len()
            )));
        }

        // The parameters section and the pandas categories that `lightgbm` appends.
        let mut categorical_features: Option<Vec<usize>> = None;
        let mut pandas_categorical = None;
        for line in lines {
            if let Some(list) = line
                .strip_prefix("[categorical_feature: ")
                .and_then(|rest| rest.strip_suffix(']'))
            {
                categorical_features = list
                    .split(',')
                    .map(|s| s.trim().parse::<usize>().ok())
                    .collect::<Option<Vec<_>>>()
                    .filter(|v| !v.is_empty());
            } else if let Some(json) = line.strip_prefix("pandas_categorical:") {
                pandas_categorical = Some(json.trim().to_owned());
            }
        }
        let pandas_categories = match pandas_categorical {
            Some(json) => {
                pandas_categories(&json, categorical_features.as_deref(), &feature_names)?
            }
            None => vec![None; num_features],
        };

        Ok(Booster {
            feature_names,
            outputs: num_class,
            objective,
            transform,
            average_output,
            pandas_categories,
            trees,
        })
    }

    /// The number of trees.
    pub fn num_trees(&self) -> usize {
        self.trees.len()
    }

    /// The number of features a row must have.
    pub fn num_features(&self) -> usize {
        self.feature_names.len()
    }

    /// Predicts for `rows` rows given column-major features (`columns[feature][row]`, in the
    /// model's feature order); returns `rows * outputs` values, row-major.
    pub fn predict(&self, columns: &[Vec<f64>], rows: usize) -> Vec<f64> {
        self.predict_iterations(columns, rows, 0, None, false)
    }

    /// Like [`Booster::predict`] with `Booster.predict`'s `start_iteration`, `num_iteration`
    /// (`None` or 0: all the remaining iterations) and `raw_score` (no output transformation),
    /// as LightGBM's `GBDT::InitPredict` clamps them.
    pub fn predict_iterations(
        &self,
        columns: &[Vec<f64>],
        rows: usize,
        start_iteration: usize,
        num_iteration: Option<usize>,
        raw_score: bool,
    ) -> Vec<f64> {
        assert_eq!(columns.len(), self.num_features(), "one column per feature");
        let k = self.outputs;
        let total = self.trees.len() / k;
        let start = start_iteration.min(total);
        let iterations = match num_iteration {
            Some(n) if n > 0 => n.min(total - start),
            _ => total - start,
        };
        let trees = &self.trees[start * k..(start + iterations) * k];
        let mut out = vec![0.0; rows * k];
        let mut row = vec![0.0; columns.len()];
        for (r, scores) in out.chunks_exact_mut(k).enumerate() {
            for (value, column) in row.iter_mut().zip(columns) {
                // LightGBM keeps only values beyond ±kZeroThreshold (and NaN) from a dense row.
                let x = column[r];
                *value = if x.abs() > ZERO_THRESHOLD || x.is_nan() {
                    x
                } else {
                    0.0
                };
            }
            for iteration in trees.chunks_exact(k) {
                for (score, tree) in scores.iter_mut().zip(iteration) {
                    *score += tree.predict(&row);
                }
            }
            if self.average_output && iterations > 0 {
                scores.iter_mut().for_each(|s| *s /= iterations as f64);
            }
            if !raw_score {
                self.transform.apply(scores);
            }
        }
        out
    }
}

impl Transform {
    fn apply(self, scores: &mut [f64]) {
        match self {
            Transform::Identity => {}
            Transform::SignedSquare => {
                // Common::Sign: 1, -1, or 0 for zero (and NaN).
                let x = scores[0];
                let sign = f64::from(i8::from(x > 0.0) - i8::from(x < 0.0));
                scores[0] = sign * x * x;
            }
            Transform::Exp => scores[0] = scores[0].exp(),
            Transform::Sigmoid(s) => scores[0] = 1.0 / (1.0 + (-s * scores[0]).exp()),
            Transform::Log1pExp => scores[0] = scores[0].exp().ln_1p(),
            Transform::Softmax => {
                let max = scores.iter().copied().fold(scores[0], f64::max);
                let mut sum = 0.0;
                for s in scores.iter_mut() {
                    *s = (*s - max).exp();
                    sum += *s;
                }
                scores.iter_mut().for_each(|s| *s /= sum);
            }
            Transform::SigmoidPerClass(sig) => {
                scores
                    .iter_mut()
                    .for_each(|s| *s = 1.0 / (1.0 + (-sig * *s).exp()));
            }
        }
    }
}

impl Tree {
    fn parse(fields: &HashMap<&str, &str>, num_features: usize) -> Result<Tree, String> {
        let num_leaves: usize = parse_one(fields, "num_leaves")?;
        let num_cat: usize = parse_one(fields, "num_cat")?;
        if num_leaves == 0 {
            return Err("num_leaves is 0".into());
        }
        let leaf_value: Vec<f64> = parse_list(fields, "leaf_value", num_leaves)?;
        let is_linear = match fields.get("is_linear") {
            Some(_) => parse_one::<i64>(fields, "is_linear")? != 0,
            None => false,
        };
        let mut tree = Tree {
            split_feature: Vec::new(),
            threshold: Vec::new(),
            decision_type: Vec::new(),
            left_child: Vec::new(),
            right_child: Vec::new(),
            leaf_value,
            has_categorical: num_cat > 0,
            cat_boundaries: Vec::new(),
            cat_threshold: Vec::new(),
            linear: None,
        };
        if num_leaves == 1 && !is_linear {
            return Ok(tree);
        }
        let inner = num_leaves - 1;
        tree.left_child = parse_list(fields, "left_child", inner)?;
        tree.right_child = parse_list(fields, "right_child", inner)?;
        tree.split_feature = parse_list(fields, "split_feature", inner)?;
        tree.threshold = parse_list(fields, "threshold", inner)?;
        tree.decision_type = match fields.get("decision_type") {
            Some(_) => parse_list::<i8>(fields, "decision_type", inner)?
                .into_iter()
                .map(|d| d as u8)
                .collect(),
            None => vec![0; inner],
        };
        if let Some(&f) = tree.split_feature.iter().find(|&&f| f >= num_features) {
            return Err(format!("split on feature {f} of {num_features}"));
        }
        if num_cat > 0 {
            tree.cat_boundaries = parse_list(fields, "cat_boundaries", num_cat + 1)?;
            let words = *tree.cat_boundaries.last().unwrap_or(&0);
            tree.cat_threshold = parse_list(fields, "cat_threshold", words)?;
            if tree.cat_boundaries.windows(2).any(|w| w[0] > w[1]) {
                return Err("cat_boundaries are not ascending".into());
            }
            for node in 0..inner {
                if tree.decision_type[node] & CATEGORICAL_MASK != 0 {
                    let t = tree.threshold[node];
                    if !(t >= 0.0 && (t as usize) < num_cat) {
                        return Err(format!("node {node}: categorical threshold {t}"));
                    }
                }
            }
        }
        if is_linear {
            tree.linear = Some(LinearLeaves::parse(fields, num_leaves, num_features)?);
        }
        tree.check_structure()?;
        Ok(tree)
    }

    /// Every child index is in range and every node is reached once from the root, so that
    /// prediction neither reads out of bounds nor loops.
    fn check_structure(&self) -> Result<(), String> {
        let inner = self.left_child.len();
        if inner == 0 {
            return Ok(());
        }
        let leaves = self.leaf_value.len();
        let mut seen_node = vec![false; inner];
        let mut seen_leaf = vec![false; leaves];
        let mut stack = vec![0i32];
        while let Some(node) = stack.pop() {
            if node >= 0 {
                let n = node as usize;
                if n >= inner {
                    return Err(format!("child {node} is not a node"));
                }
                if std::mem::replace(&mut seen_node[n], true) {
                    return Err(format!("node {n} is reached twice"));
                }
                stack.push(self.left_child[n]);
                stack.push(self.right_child[n]);
            } else {
                let leaf = !node as usize;
                if leaf >= leaves {
                    return Err(format!("child {node} is not a leaf"));
                }
                if std::mem::replace(&mut seen_leaf[leaf], true) {
                    return Err(format!("leaf {leaf} is reached twice"));
                }
            }
        }
        Ok(())
    }

    /// LightGBM's `Tree::Predict` on a dense row.
    fn predict(&self, row: &[f64]) -> f64 {
        let leaf = if self.left_child.is_empty() {
            0
        } else {
            self.leaf(row)
        };
        if let Some(linear) = &self.linear {
            let mut output = linear.leaf_const[leaf];
            for (&feature, &coeff) in linear.features[leaf].iter().zip(&linear.coeff[leaf]) {
                let x = row[feature];
                if x.is_nan() {
                    return self.leaf_value[leaf];
                }
                output += coeff * x;
            }
            return output;
        }
        self.leaf_value[leaf]
    }

    fn leaf(&self, row: &[f64]) -> usize {
        let mut node = 0i32;
        while node >= 0 {
            let n = node as usize;
            let x = row[self.split_feature[n]];
            node = if self.has_categorical && self.decision_type[n] & CATEGORICAL_MASK != 0 {
                self.categorical_decision(x, n)
            } else {
                self.numerical_decision(x, n)
            };
        }
        !node as usize
    }

    fn numerical_decision(&self, mut x: f64, node: usize) -> i32 {
        let decision = self.decision_type[node];
        let missing = (decision >> 2) & 3;
        if x.is_nan() && missing != MISSING_NAN {
            x = 0.0;
        }
        let is_zero = (-ZERO_THRESHOLD..=ZERO_THRESHOLD).contains(&x);
        if (missing == MISSING_ZERO && is_zero) || (missing == MISSING_NAN && x.is_nan()) {
            if decision & DEFAULT_LEFT_MASK != 0 {
                self.left_child[node]
            } else {
                self.right_child[node]
            }
        } else if x <= self.threshold[node] {
            self.left_child[node]
        } else {
            self.right_child[node]
        }
    }

    fn categorical_decision(&self, x: f64, node: usize) -> i32 {
        if x.is_nan() {
            return self.right_child[node];
        }
        // C++'s static_cast<int> truncates toward zero; Rust's `as` does too (and saturates).
        let category = x as i32;
        if category < 0 {
            return self.right_child[node];
        }
        let set = self.threshold[node] as usize;
        let words = &self.cat_threshold[self.cat_boundaries[set]..self.cat_boundaries[set + 1]];
        let (word, bit) = ((category / 32) as usize, category % 32);
        if words.get(word).is_some_and(|w| (w >> bit) & 1 == 1) {
            self.left_child[node]
        } else {
            self.right_child[node]
        }
    }
}

impl LinearLeaves {
    fn parse(
        fields: &HashMap<&str, &str>,
        leaves: usize,
        num_features: usize,
    ) -> Result<LinearLeaves, String> {
        let leaf_const = match fields.get("leaf_const") {
            Some(_) => parse_list(fields, "leaf_const", leaves)?,
            None => vec![0.0; leaves],
        };
        let counts: Vec<usize> = match fields.get("num_features") {
            Some(_) => parse_list(fields, "num_features", leaves)?,
            None => vec![0; leaves],
        };
        let total = counts.iter().sum();
        let all_features: Vec<usize> = parse_list(fields, "leaf_features", total)?;
        let all_coeff: Vec<f64> = parse_list(fields, "leaf_coeff", total)?;
        if let Some(&f) = all_features.iter().find(|&&f| f >= num_features) {
            return Err(format!("a linear leaf uses feature {f} of {num_features}"));
        }
        let mut features = Vec::with_capacity(leaves);
        let mut coeff = Vec::with_capacity(leaves);
        let mut start = 0;
        for count in counts {
            features.push(all_features[start..start + count].to_vec());
            coeff.push(all_coeff[start..start + count].to_vec());
            start += count;
        }
        Ok(LinearLeaves {
            leaf_const,
            features,
            coeff,
        })
    }
}

/// Parses `objective=<name> <key:value>...` into its canonical name and output transformation.
fn parse_objective(spec: &str, num_class: usize) -> Result<(String, Transform), LoadError> {
    let mut words = spec.split(' ').filter(|w| !w.is_empty());
    let name = canonical_objective(words.next().unwrap_or("custom"));
    let mut sigmoid = 1.0;
    let mut sqrt = false;
    for word in words {
        if word == "sqrt" {
            sqrt = true;
        } else if let Some(v) = word.strip_prefix("sigmoid:") {
            sigmoid = v
                .parse::<f64>()
                .ok()
                .filter(|s| *s > 0.0)
                .ok_or_else(|| invalid(format!("bad sigmoid in objective '{spec}'")))?;
        }
    }
    let single = |t: Transform| {
        if num_class == 1 {
            Ok(t)
        } else {
            Err(invalid(format!(
                "objective '{name}' with num_class {num_class}"
            )))
        }
    };
    let transform = match name {
        "regression" if sqrt => single(Transform::SignedSquare)?,
        "regression" | "regression_l1" | "quantile" | "huber" | "fair" | "mape" => {
            // Only the L2 objective keeps `sqrt`; the others are subclasses that inherit it.
            single(if sqrt {
                Transform::SignedSquare
            } else {
                Transform::Identity
            })?
        }
        "poisson" | "gamma" | "tweedie" => single(Transform::Exp)?,
        "binary" => single(Transform::Sigmoid(sigmoid))?,
        "cross_entropy" => single(Transform::Sigmoid(1.0))?,
        "cross_entropy_lambda" => single(Transform::Log1pExp)?,
        "lambdarank" | "rank_xendcg" => single(Transform::Identity)?,
        "multiclass" => Transform::Softmax,
        "multiclassova" => Transform::SigmoidPerClass(sigmoid),
        "custom" => Transform::Identity,
        other => {
            return Err(LoadError::Unsupported(format!(
                "unknown objective '{other}'"
            )));
        }
    };
    Ok((name.to_owned(), transform))
}

/// LightGBM's `ParseObjectiveAlias`.
fn canonical_objective(name: &str) -> &str {
    match name {
        "regression"
        | "regression_l2"
        | "mean_squared_error"
        | "mse"
        | "l2"
        | "l2_root"
        | "root_mean_squared_error"
        | "rmse" => "regression",
        "regression_l1" | "mean_absolute_error" | "l1" | "mae" => "regression_l1",
        "multiclass" | "softmax" => "multiclass",
        "multiclassova" | "multiclass_ova" | "ova" | "ovr" => "multiclassova",
        "xentropy" | "cross_entropy" => "cross_entropy",
        "xentlambda" | "cross_entropy_lambda" => "cross_entropy_lambda",
        "mean_absolute_percentage_error" | "mape" => "mape",
        "rank_xendcg" | "xendcg" | "xe_ndcg" | "xe_ndcg_mart" | "xendcg_mart" => "rank_xendcg",
        "none" | "null" | "custom" | "na" => "custom",
        other => other,
    }
}

/// Maps `pandas_categorical` (one list of category values per pandas category column, in
/// column order) onto features: the lists belong to the model's categorical features, in order.
fn pandas_categories(
    json: &str,
    categorical_features: Option<&[usize]>,
    feature_names: &[String],
) -> Result<Vec<Option<Vec<Category>>>, LoadError> {
    let mut out = vec![None; feature_names.len()];
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| invalid(format!("bad pandas_categorical: {e}")))?;
    let lists = match value {
        serde_json::Value::Null => return Ok(out),
        serde_json::Value::Array(lists) => lists,
        _ => return Err(invalid("pandas_categorical is not a list")),
    };
    if lists.is_empty() {
        return Ok(out);
    }
    let features = categorical_features.unwrap_or(&[]);
    if features.len() != lists.len() {
        // The category columns cannot be told apart (ordered categories, or categorical
        // features named by hand): codes are still accepted, category values are not.
        return Ok(out);
    }
    for (&feature, list) in features.iter().zip(lists) {
        let serde_json::Value::Array(values) = list else {
            return Err(invalid("pandas_categorical holds a non-list"));
        };
        let categories = values
            .into_iter()
            .map(|v| match v {
                serde_json::Value::String(s) => Ok(Category::Text(s)),
                serde_json::Value::Number(n) => {
                    Ok(Category::Number(n.as_f64().unwrap_or(f64::NAN)))
                }
                serde_json::Value::Bool(b) => Ok(Category::Number(f64::from(u8::from(b)))),
                other => Err(invalid(format!("unsupported pandas category {other}"))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let slot = out
            .get_mut(feature)
            .ok_or_else(|| invalid(format!("categorical feature {feature} out of range")))?;
        *slot = Some(categories);
    }
    Ok(out)
}

fn header_number<T: std::str::FromStr>(
    header: &HashMap<&str, &str>,
    key: &str,
) -> Result<T, LoadError> {
    let value = header
        .get(key)
        .ok_or_else(|| invalid(format!("the model has no {key}")))?;
    value
        .trim()
        .parse()
        .map_err(|_| invalid(format!("bad {key} '{}'", clip(value))))
}

fn parse_one<T: std::str::FromStr>(fields: &HashMap<&str, &str>, key: &str) -> Result<T, String> {
    let value = fields.get(key).ok_or_else(|| format!("no {key}"))?;
    value
        .trim()
        .parse()
        .map_err(|_| format!("bad {key} '{}'", clip(value)))
}

/// A space-separated list of exactly `len` values.
fn parse_list<T: std::str::FromStr>(
    fields: &HashMap<&str, &str>,
    key: &str,
    len: usize,
) -> Result<Vec<T>, String> {
    let value = fields.get(key).ok_or_else(|| format!("no {key}"))?;
    let items = value
        .split_ascii_whitespace()
        .map(|w| {
            w.parse()
                .map_err(|_| format!("bad value '{}' in {key}", clip(w)))
        })
        .collect::<Result<Vec<T>, _>>()?;
    if items.len() != len {
        return Err(format!("{key} has {} values; expected {len}", items.len()));
    }
    Ok(items)
}

fn clip(s: &str) -> &str {
    wasmflow_features::clip_to(s, 80)
}
