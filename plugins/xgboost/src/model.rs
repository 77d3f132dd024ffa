//! XGBoost's model document (what `Booster.save_model` writes as `model.ubj` or `model.json`)
//! and prediction with it, as XGBoost's CPU predictor computes it.
//!
//! The document (JSON shown; UBJSON holds the same with typed numeric arrays):
//!
//! ```text
//! {"learner": {
//!    "attributes": {"best_iteration": "11", "scikit_learn": "{...}"},
//!    "feature_names": ["a", "b"], "feature_types": ["float", "float"],
//!    "gradient_booster": {"name": "gbtree", "model": {
//!        "gbtree_model_param": {"num_parallel_tree": "1", "num_trees": "3"},
//!        "iteration_indptr": [0, 1, 2, 3], "tree_info": [0, 0, 0],
//!        "trees": [{"left_children": [1, -1, -1], "right_children": [2, -1, -1],
//!                   "split_indices": [0, 0, 0], "split_conditions": [0.5, -0.2, 0.3],
//!                   "default_left": [0, 0, 0], "split_type": [0, 0, 0],
//!                   "tree_param": {"num_nodes": "3", "size_leaf_vector": "1", ...}, ...}]}},
//!    "learner_model_param": {"base_score": "[4.7E-1]", "num_class": "0",
//!                            "num_feature": "2", "num_target": "1", ...},
//!    "objective": {"name": "binary:logistic", ...}},
//!  "version": [3, 2, 0]}
//! ```
//!
//! A dart booster is `{"name": "dart", "gbtree": {"model": ...}, "weight_drop": [...]}`. A leaf is
//! a node whose left child is -1; a scalar tree keeps its leaf value in `split_conditions`, a
//! multi-target tree (`size_leaf_vector` > 1) maps a leaf through `right_children` to a row of
//! `leaf_weights`. `base_score` is `"5E-1"` in XGBoost 2.x and `"[5E-1]"` (one value per output)
//! from 3.1.
//!
//! Prediction, in float32 as XGBoost's CPU predictor: each value is cast to float32; a feature is
//! missing when it is NaN or equals `missing`, and then goes to the node's default child;
//! otherwise `value < split_condition` goes left. Each output starts at the base margin (the
//! objective's link applied to `base_score`) and adds its trees' leaf values in tree order
//! (dart: each leaf times its tree's weight); the objective's transformation comes last.

use std::collections::BTreeMap;
use std::fmt;

use crate::value::{Value, parse_json, parse_ubjson};

/// Why a model could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadError {
    /// The file is not a well-formed XGBoost model.
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

impl std::error::Error for LoadError {}

fn invalid<T>(message: impl Into<String>) -> Result<T, LoadError> {
    Err(LoadError::Invalid(message.into()))
}

fn unsupported<T>(message: impl Into<String>) -> Result<T, LoadError> {
    Err(LoadError::Unsupported(message.into()))
}

/// The objectives this implementation predicts for.
pub const SUPPORTED_OBJECTIVES: &[&str] = &[
    "reg:squarederror",
    "reg:linear",
    "reg:squaredlogerror",
    "reg:logistic",
    "reg:pseudohubererror",
    "reg:absoluteerror",
    "reg:quantileerror",
    "reg:gamma",
    "reg:tweedie",
    "binary:logistic",
    "binary:logitraw",
    "binary:hinge",
    "multi:softprob",
    "multi:softmax",
    "count:poisson",
    "rank:pairwise",
    "rank:ndcg",
    "rank:map",
    "survival:cox",
    "survival:aft",
];

/// The objective's output transformation (XGBoost's `PredTransform`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transform {
    /// The margin itself.
    Identity,
    /// `1 / (1 + exp(-x))`, as XGBoost's `common::Sigmoid`.
    Sigmoid,
    /// `expf(x)`.
    Exp,
    /// `x > 0 ? 1 : 0`.
    Hinge,
    /// Softmax over each row's classes.
    Softprob,
    /// The index of each row's largest margin (one output per row).
    Softmax,
}

/// How `base_score` (in the objective's output space) becomes a margin (`ProbToMargin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Identity,
    Logit,
    Log,
}

fn objective_kind(name: &str) -> Option<(Transform, Link)> {
    Some(match name {
        "reg:squarederror"
        | "reg:linear"
        | "reg:squaredlogerror"
        | "reg:pseudohubererror"
        | "reg:absoluteerror"
        | "reg:quantileerror"
        | "binary:logitraw"
        | "rank:pairwise"
        | "rank:ndcg"
        | "rank:map" => (Transform::Identity, Link::Identity),
        "reg:logistic" | "binary:logistic" => (Transform::Sigmoid, Link::Logit),
        "binary:hinge" => (Transform::Hinge, Link::Identity),
        "multi:softprob" => (Transform::Softprob, Link::Identity),
        "multi:softmax" => (Transform::Softmax, Link::Identity),
        "count:poisson" | "reg:gamma" | "reg:tweedie" | "survival:cox" | "survival:aft" => {
            (Transform::Exp, Link::Log)
        }
        _ => return None,
    })
}

/// How dart trees are added, which differs (by rounding) between XGBoost's two predict paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PredictPath {
    /// `Booster.predict(DMatrix)` (MLflow's pyfunc for a Booster): `out += leaf * w`; infinite
    /// inputs are refused.
    DMatrix,
    /// `Booster.inplace_predict` (the scikit-learn wrappers' `predict`):
    /// `out += ((base + leaf) - base) * w`; infinite inputs are values.
    Inplace,
}

/// One node of a [`Tree`], 12 bytes.
#[derive(Debug, Clone, Copy)]
struct Node {
    /// The split condition of an inner node; NaN for a leaf.
    condition: f32,
    /// The split feature, with [`DEFAULT_LEFT`] set when missing values go left; [`LEAF`] (and
    /// feature 0, missing values right) for a leaf.
    feature: u32,
    /// The left child; the right child is `left + 1` (wrapping). A leaf's `left` is its own
    /// index minus 1: as no value is below NaN, a step from a leaf goes "right", to itself.
    left: u32,
}

/// The flag of [`Node::feature`] sending missing values left.
const DEFAULT_LEFT: u32 = 1 << 31;
/// The flag of [`Node::feature`] marking a leaf.
const LEAF: u32 = 1 << 30;
/// The feature bits of [`Node::feature`].
const FEATURE: u32 = LEAF - 1;

/// Trees at most this deep are walked a fixed number of steps, several rows at a time; deeper
/// ones row by row until a leaf.
const MAX_LOCKSTEP_DEPTH: usize = 16;
/// Rows walked together through a shallow tree.
const LANES: usize = 8;

/// One tree, validated: every reachable node is visited once from the root. Nodes are
/// renumbered breadth first so that siblings are adjacent; unreachable nodes are dropped.
#[derive(Debug, Clone)]
struct Tree {
    nodes: Vec<Node>,
    /// The value of each scalar leaf (0 elsewhere), by node.
    values: Vec<f32>,
    /// The longest path from the root to a leaf, in steps.
    depth: usize,
    /// Outputs per leaf: 1 for a scalar tree.
    leaf_size: usize,
    /// Multi-target trees: the index in `leaf_weights` of each leaf's first value, by node.
    leaf_start: Vec<usize>,
    /// Multi-target trees: `leaf_size` values per leaf.
    leaf_weights: Vec<f32>,
}

/// One step down from node `i` for `row` (a leaf steps to itself). `row` holds every split
/// feature, and feature 0 when there is a split (checked on load).
#[inline(always)]
fn step(nodes: &[Node], i: usize, row: &[f32], missing: f32) -> usize {
    let node = &nodes[i];
    let x = row[(node.feature & FEATURE) as usize];
    let go_left = if x.is_nan() || x == missing {
        node.feature & DEFAULT_LEFT != 0
    } else {
        x < node.condition
    };
    node.left.wrapping_add(u32::from(!go_left)) as usize
}

impl Tree {
    /// The leaf `row` reaches.
    fn leaf(&self, row: &[f32], missing: f32) -> usize {
        let mut i = 0;
        while self.nodes[i].feature & LEAF == 0 {
            i = step(&self.nodes, i, row, missing);
        }
        i
    }

    /// The leaves of the rows of `block` (`width` features each) into `leaves`, one per row.
    fn leaves(&self, block: &[f32], width: usize, missing: f32, leaves: &mut [usize]) {
        let n = leaves.len();
        if width == 0 {
            // No features, so no splits (checked on load).
            leaves.fill(0);
            return;
        }
        let nodes = self.nodes.as_slice();
        let mut r = 0;
        if self.depth <= MAX_LOCKSTEP_DEPTH {
            while r + LANES <= n {
                let lanes: [&[f32]; LANES] =
                    std::array::from_fn(|j| &block[(r + j) * width..(r + j + 1) * width]);
                let mut at = [0usize; LANES];
                for _ in 0..self.depth {
                    for (i, row) in at.iter_mut().zip(lanes) {
                        *i = step(nodes, *i, row, missing);
                    }
                }
                leaves[r..r + LANES].copy_from_slice(&at);
                r += LANES;
            }
        }
        for (r, leaf) in leaves.iter_mut().enumerate().skip(r) {
            *leaf = self.leaf(&block[r * width..(r + 1) * width], missing);
        }
    }

    fn leaf_vector(&self, leaf: usize) -> &[f32] {
        let k = self.leaf_start[leaf];
        &self.leaf_weights[k..k + self.leaf_size]
    }
}

/// A loaded XGBoost booster.
#[derive(Debug, Clone)]
pub struct Booster {
    /// `gbtree` or `dart`.
    pub booster: String,
    pub objective: String,
    pub transform: Transform,
    /// Feature names saved with the model (empty when it was trained without names).
    pub feature_names: Vec<String>,
    pub num_feature: usize,
    /// `num_class` (0 for anything but multi:*).
    pub num_class: usize,
    /// Margins per row: max(num_target, num_class, 1).
    pub outputs: usize,
    /// `base_score` as saved (output space), one per output.
    pub base_score: Vec<f32>,
    /// The base margin, one per output.
    pub base_margin: Vec<f32>,
    /// The learner's attributes (`best_iteration`, `scikit_learn`, ...).
    pub attributes: BTreeMap<String, String>,
    /// The XGBoost version that saved the model, when recorded.
    pub version: Option<[i64; 3]>,
    trees: Vec<Tree>,
    tree_group: Vec<usize>,
    /// Trees of boosting round `i`: `iteration_indptr[i]..iteration_indptr[i + 1]`.
    iteration_indptr: Vec<usize>,
    /// Dart's per-tree weights (empty for gbtree).
    weight_drop: Vec<f32>,
}

/// Largest sizes accepted, far beyond real models, so that a lying header cannot make us
/// allocate or loop without bound (the arrays themselves are bounded by the file's size).
const MAX_FEATURES: usize = 1 << 24;
const MAX_OUTPUTS: usize = 1 << 16;

/// Rows taken through the trees together.
const BLOCK_ROWS: usize = 64;

impl Booster {
    /// Reads a model file: UBJSON or JSON, told apart by their first bytes (`{"` or `{` then
    /// whitespace is JSON; `{L` or `{i`/`{U`... is UBJSON). XGBoost's legacy binary format is
    /// refused as unsupported.
    pub fn load(bytes: &[u8]) -> Result<Booster, LoadError> {
        let document = match sniff(bytes) {
            Format::Json => parse_json(bytes).map_err(|e| LoadError::Invalid(e.to_string()))?,
            Format::Ubjson => parse_ubjson(bytes).map_err(|e| LoadError::Invalid(e.to_string()))?,
            Format::Legacy => {
                return unsupported(
                    "the file is not json or ubjson: xgboost's legacy binary model format is not \
                     supported; save the model as model.ubj or model.json (xgboost >= 1.0, \
                     mlflow's default)",
                );
            }
        };
        Booster::from_document(&document)
    }

    /// Builds a booster from a parsed model document.
    pub fn from_document(doc: &Value) -> Result<Booster, LoadError> {
        // A pickled Booster (`XGBoosterSerializeToBuffer`, as skops saves an XGBClassifier's
        // booster) is `{"Config": {...}, "Model": <the model document>}`.
        let doc = match (doc.get("learner"), doc.get("Model")) {
            (None, Some(model)) => model,
            _ => doc,
        };
        let learner = doc
            .get("learner")
            .ok_or_else(|| LoadError::Invalid("no 'learner' in the model document".into()))?;
        let version = doc.get("version").and_then(Value::to_i64s).and_then(|v| {
            if v.len() == 3 {
                Some([v[0], v[1], v[2]])
            } else {
                None
            }
        });

        let mut attributes = BTreeMap::new();
        if let Some(Value::Object(members)) = learner.get("attributes") {
            for (k, v) in members {
                if let Some(s) = v.as_str() {
                    attributes.insert(k.clone(), s.to_owned());
                }
            }
        }

        let param = learner
            .get("learner_model_param")
            .ok_or_else(|| LoadError::Invalid("no 'learner_model_param'".into()))?;
        let num_feature = count_param(param, "num_feature", MAX_FEATURES)?.unwrap_or(0);
        let num_class = count_param(param, "num_class", MAX_OUTPUTS)?.unwrap_or(0);
        let num_target = count_param(param, "num_target", MAX_OUTPUTS)?.unwrap_or(1);
        let outputs = num_target.max(num_class).max(1);

        let objective = learner
            .get("objective")
            .and_then(|o| o.get("name"))
            .and_then(Value::as_str)
            .ok_or_else(|| LoadError::Invalid("no objective name".into()))?
            .to_owned();
        let Some((transform, link)) = objective_kind(&objective) else {
            return unsupported(format!(
                "objective '{objective}' is not supported; supported objectives: {}",
                SUPPORTED_OBJECTIVES.join(", ")
            ));
        };
        if matches!(transform, Transform::Softprob | Transform::Softmax) && num_class < 1 {
            return invalid(format!(
                "objective '{objective}' with num_class {num_class}"
            ));
        }

        let base_score = base_score(param, outputs, num_class, num_target)?;
        let base_margin = base_score.iter().map(|&b| to_margin(link, b)).collect();

        let feature_names = match learner.get("feature_names") {
            None | Some(Value::Null) => Vec::new(),
            Some(v) => v.to_strings().ok_or_else(|| {
                LoadError::Invalid("'feature_names' is not a list of strings".into())
            })?,
        };
        if !feature_names.is_empty() && feature_names.len() != num_feature {
            return invalid(format!(
                "{} feature names for {num_feature} features",
                feature_names.len()
            ));
        }
        if let Some(types) = learner.get("feature_types").and_then(Value::to_strings)
            && let Some((i, _)) = types.iter().enumerate().find(|(_, t)| *t == "c")
        {
            return unsupported(format!(
                "feature {} is categorical (feature type 'c'): categorical features are not \
                     supported",
                feature_names
                    .get(i)
                    .map_or_else(|| i.to_string(), |n| format!("'{n}'"))
            ));
        }

        let gb = learner
            .get("gradient_booster")
            .ok_or_else(|| LoadError::Invalid("no 'gradient_booster'".into()))?;
        let booster = gb
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| LoadError::Invalid("no gradient booster name".into()))?
            .to_owned();
        let (model, weight_drop) = match booster.as_str() {
            "gbtree" => (gb.get("model"), Vec::new()),
            "dart" => {
                let weights = gb
                    .get("weight_drop")
                    .and_then(Value::to_f32s)
                    .ok_or_else(|| LoadError::Invalid("dart without 'weight_drop'".into()))?;
                (gb.get("gbtree").and_then(|g| g.get("model")), weights)
            }
            "gblinear" => {
                return unsupported(
                    "the gblinear booster is not supported; supported boosters: gbtree, dart",
                );
            }
            other => {
                return unsupported(format!(
                    "booster '{other}' is not supported; supported boosters: gbtree, dart"
                ));
            }
        };
        let model = model.ok_or_else(|| LoadError::Invalid("no tree model".into()))?;

        let tree_values = model
            .get("trees")
            .and_then(Value::as_array)
            .ok_or_else(|| LoadError::Invalid("no 'trees' list".into()))?;
        let n_trees = tree_values.len();
        let mut trees = Vec::with_capacity(n_trees);
        for (i, t) in tree_values.iter().enumerate() {
            trees.push(
                parse_tree(t, num_feature, outputs)
                    .map_err(|e| prefix(e, &format!("tree {i}: ")))?,
            );
        }
        if !weight_drop.is_empty() || booster == "dart" {
            if weight_drop.len() != n_trees {
                return invalid(format!(
                    "dart has {} tree weights for {n_trees} trees",
                    weight_drop.len()
                ));
            }
            if trees.iter().any(|t| t.leaf_size > 1) {
                return unsupported("dart with multi-target trees is not supported");
            }
        }

        let tree_group: Vec<usize> = match model.get("tree_info") {
            Some(v) => v
                .to_i64s()
                .ok_or_else(|| LoadError::Invalid("'tree_info' is not a list of integers".into()))?
                .into_iter()
                .map(|g| usize::try_from(g).ok().filter(|&g| g < outputs))
                .collect::<Option<_>>()
                .ok_or_else(|| {
                    LoadError::Invalid("'tree_info' has an out-of-range group".into())
                })?,
            None => vec![0; n_trees],
        };
        if tree_group.len() != n_trees {
            return invalid(format!(
                "'tree_info' has {} entries for {n_trees} trees",
                tree_group.len()
            ));
        }
        for (i, t) in trees.iter().enumerate() {
            if t.leaf_size > 1 && t.leaf_size != outputs {
                return invalid(format!(
                    "tree {i} has {} values per leaf for {outputs} outputs",
                    t.leaf_size
                ));
            }
        }

        let iteration_indptr = match model.get("iteration_indptr") {
            Some(v) => {
                let raw = v.to_i64s().ok_or_else(|| {
                    LoadError::Invalid("'iteration_indptr' is not a list of integers".into())
                })?;
                let mut out = Vec::with_capacity(raw.len());
                for &x in &raw {
                    let x = usize::try_from(x).ok().filter(|&x| x <= n_trees);
                    match (x, out.last()) {
                        (Some(x), Some(&prev)) if x >= prev => out.push(x),
                        (Some(0), None) => out.push(0),
                        _ => return invalid("'iteration_indptr' is not increasing from 0"),
                    }
                }
                if out.last() != Some(&n_trees) {
                    return invalid("'iteration_indptr' does not end at the number of trees");
                }
                out
            }
            None => {
                // Models saved before XGBoost 2.0: a round is num_parallel_tree trees per output.
                let parallel = model
                    .get("gbtree_model_param")
                    .map(|p| count_param(p, "num_parallel_tree", 1 << 20))
                    .transpose()?
                    .flatten()
                    .unwrap_or(1)
                    .max(1);
                let per_round = parallel
                    * if trees.first().is_some_and(|t| t.leaf_size > 1) {
                        1
                    } else {
                        outputs
                    };
                if n_trees % per_round != 0 {
                    return invalid(format!(
                        "{n_trees} trees is not a whole number of rounds of {per_round}"
                    ));
                }
                (0..=n_trees / per_round).map(|r| r * per_round).collect()
            }
        };

        Ok(Booster {
            booster,
            objective,
            transform,
            feature_names,
            num_feature,
            num_class,
            outputs,
            base_score,
            base_margin,
            attributes,
            version,
            trees,
            tree_group,
            iteration_indptr,
            weight_drop,
        })
    }

    /// The number of trees.
    pub fn num_trees(&self) -> usize {
        self.trees.len()
    }

    /// The number of boosting rounds (layers of trees).
    pub fn num_rounds(&self) -> usize {
        self.iteration_indptr.len() - 1
    }

    /// `best_iteration` from the learner's attributes (set by early stopping).
    pub fn best_iteration(&self) -> Option<usize> {
        self.attributes
            .get("best_iteration")
            .and_then(|s| s.trim().parse().ok())
    }

    /// The number of values per row of a prediction: 1 for multi:softmax's class, the number
    /// of margins for margins and for every other objective.
    pub fn output_width(&self, output_margin: bool) -> usize {
        if !output_margin && self.transform == Transform::Softmax {
            1
        } else {
            self.outputs
        }
    }

    /// Predicts for `rows` rows of `num_feature` float32 values each (row-major): margins, or
    /// the objective's transformed outputs, `output_width` values per row.
    ///
    /// `rounds` is XGBoost's `iteration_range` (`(0, 0)`: all rounds). `missing` is the value
    /// that counts as missing besides NaN (NaN for none).
    pub fn predict(
        &self,
        features: &[f32],
        rows: usize,
        rounds: (usize, usize),
        output_margin: bool,
        missing: f32,
        path: PredictPath,
    ) -> Result<Vec<f32>, String> {
        let width = self.num_feature;
        if features.len() != rows.saturating_mul(width) {
            return Err(format!(
                "{} values for {rows} rows of {width} features",
                features.len()
            ));
        }
        if path == PredictPath::DMatrix
            && !missing.is_infinite()
            && let Some(i) = features.iter().position(|x| x.is_infinite())
        {
            return Err(format!(
                "input data contains `inf` or a value too large for float32 (row {}, \
                     feature {}), while `missing` is not set to `inf`",
                i / width.max(1),
                i % width.max(1)
            ));
        }
        let (begin, end) = self.tree_range(rounds)?;
        let k = self.outputs;
        let mut out = Vec::with_capacity(rows.saturating_mul(k));
        for _ in 0..rows {
            out.extend_from_slice(&self.base_margin);
        }
        // Blocks of rows through each tree in turn: each row's margins still add the trees' values
        // in the trees' order.
        let mut blocks = features.chunks(BLOCK_ROWS * width.max(1));
        for margins in out.chunks_mut(BLOCK_ROWS * k) {
            let block = if width == 0 {
                &[][..]
            } else {
                blocks.next().unwrap_or_default()
            };
            self.accumulate(block, width, margins, begin..end, missing, path);
        }
        if output_margin {
            return Ok(out);
        }
        Ok(match self.transform {
            Transform::Identity => out,
            Transform::Sigmoid => out.into_iter().map(sigmoid).collect(),
            Transform::Exp => out.into_iter().map(f32::exp).collect(),
            Transform::Hinge => out
                .into_iter()
                .map(|x| if x > 0.0 { 1.0 } else { 0.0 })
                .collect(),
            Transform::Softprob => {
                for row in out.chunks_exact_mut(k) {
                    softmax(row);
                }
                out
            }
            Transform::Softmax => out.chunks_exact(k).map(argmax).collect(),
        })
    }

    /// Adds trees `trees` to the margins of the rows of `block` (`width` features each), at most
    /// [`BLOCK_ROWS`] rows.
    fn accumulate(
        &self,
        block: &[f32],
        width: usize,
        margins: &mut [f32],
        trees: std::ops::Range<usize>,
        missing: f32,
        path: PredictPath,
    ) {
        let k = self.outputs;
        let mut leaves = [0usize; BLOCK_ROWS];
        let leaves = &mut leaves[..margins.len() / k];
        for t in trees {
            let tree = &self.trees[t];
            tree.leaves(block, width, missing, leaves);
            if tree.leaf_size > 1 {
                for (m, &leaf) in margins.chunks_exact_mut(k).zip(leaves.iter()) {
                    for (m, &v) in m.iter_mut().zip(tree.leaf_vector(leaf)) {
                        *m += v;
                    }
                }
                continue;
            }
            let g = self.tree_group[t];
            let values = tree.values.as_slice();
            if self.weight_drop.is_empty() {
                if k == 1 {
                    for (m, &leaf) in margins.iter_mut().zip(leaves.iter()) {
                        *m += values[leaf];
                    }
                } else {
                    for (m, &leaf) in margins.chunks_exact_mut(k).zip(leaves.iter()) {
                        m[g] += values[leaf];
                    }
                }
                continue;
            }
            let w = self.weight_drop[t];
            for (m, &leaf) in margins.chunks_exact_mut(k).zip(leaves.iter()) {
                let value = values[leaf];
                let contribution = match path {
                    PredictPath::DMatrix => value * w,
                    PredictPath::Inplace => {
                        let base = self.base_margin[g];
                        ((base + value) - base) * w
                    }
                };
                m[g] += contribution;
            }
        }
    }

    /// The trees of rounds `begin..end` (`end` 0: to the last round), as XGBoost's `LayerToTree`.
    fn tree_range(&self, (begin, end): (usize, usize)) -> Result<(usize, usize), String> {
        let rounds = self.num_rounds();
        let end = if end == 0 { rounds } else { end };
        if end > rounds {
            return Err(format!(
                "iteration_range end {end} is out of range: the model has {rounds} rounds"
            ));
        }
        if begin > end {
            return Err(format!(
                "iteration_range begin {begin} is after its end {end}"
            ));
        }
        Ok((self.iteration_indptr[begin], self.iteration_indptr[end]))
    }
}

/// XGBoost's `common::Sigmoid` in float32.
fn sigmoid(x: f32) -> f32 {
    let x = (-x).min(88.7);
    let denom = x.exp() + 1.0 + 1e-16_f32;
    1.0 / denom
}

/// XGBoost's `common::Softmax`: float32 exponentials summed in float64.
fn softmax(row: &mut [f32]) {
    let mut wmax = row[0];
    for &x in &row[1..] {
        wmax = x.max(wmax);
    }
    let mut wsum = 0.0f64;
    for x in row.iter_mut() {
        *x = (*x - wmax).exp();
        wsum += f64::from(*x);
    }
    let wsum = wsum as f32;
    for x in row.iter_mut() {
        *x /= wsum;
    }
}

/// The index of the first largest value (`std::max_element`), as a float.
fn argmax(row: &[f32]) -> f32 {
    let mut best = 0;
    for (i, &x) in row.iter().enumerate() {
        if row[best] < x {
            best = i;
        }
    }
    best as f32
}

fn to_margin(link: Link, base: f32) -> f32 {
    match link {
        Link::Identity => base,
        Link::Logit => {
            // XGBoost bounds the base score to [1e-6, 1 - 1e-6] first.
            let eps = 1e-6_f32;
            let b = base.max(eps).min(1.0 - eps);
            -(1.0 / b - 1.0).ln()
        }
        Link::Log => base.ln(),
    }
}

enum Format {
    Json,
    Ubjson,
    Legacy,
}

fn sniff(bytes: &[u8]) -> Format {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    match (bytes.get(start), bytes.get(start + 1)) {
        (Some(b'{'), Some(b'"' | b'}' | b' ' | b'\n' | b'\r' | b'\t')) => Format::Json,
        (Some(b'{'), _) if start == 0 => Format::Ubjson,
        _ => Format::Legacy,
    }
}

fn prefix(e: LoadError, p: &str) -> LoadError {
    match e {
        LoadError::Invalid(m) => LoadError::Invalid(format!("{p}{m}")),
        LoadError::Unsupported(m) => LoadError::Unsupported(format!("{p}{m}")),
    }
}

/// A count saved as a string (`"3"`) or a number, at most `max`.
fn count_param(obj: &Value, key: &str, max: usize) -> Result<Option<usize>, LoadError> {
    let Some(v) = obj.get(key) else {
        return Ok(None);
    };
    let n = match v {
        Value::Str(s) => s.trim().parse::<i64>().ok(),
        other => other.as_i64(),
    };
    match n.and_then(|n| usize::try_from(n).ok()) {
        Some(n) if n <= max => Ok(Some(n)),
        _ => invalid(format!("'{key}' is {v:?}; expected a count up to {max}")),
    }
}

/// `base_score`, one value per output: a scalar (`"5E-1"`, XGBoost < 3.1) is repeated, a list
/// (`"[5E-1]"`, `"[1E-1,2E-1]"`) must have one value per class or target.
fn base_score(
    param: &Value,
    outputs: usize,
    num_class: usize,
    num_target: usize,
) -> Result<Vec<f32>, LoadError> {
    let raw = param
        .get("base_score")
        .ok_or_else(|| LoadError::Invalid("no 'base_score'".into()))?;
    let parse = |s: &str| -> Result<f32, LoadError> {
        s.trim()
            .parse::<f32>()
            .map_err(|_| LoadError::Invalid(format!("base_score value '{s}' is not a number")))
    };
    let values: Vec<f32> = match raw {
        Value::Str(s) => {
            let s = s.trim();
            match s.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
                Some(inner) if inner.trim().is_empty() => Vec::new(),
                Some(inner) => {
                    if inner.len() > 64 * MAX_OUTPUTS {
                        return invalid("base_score is too long");
                    }
                    inner.split(',').map(parse).collect::<Result<_, _>>()?
                }
                None => vec![parse(s)?],
            }
        }
        other => match other.as_f64() {
            Some(x) => vec![x as f32],
            None => other
                .to_f32s()
                .ok_or_else(|| LoadError::Invalid(format!("base_score is {other:?}")))?,
        },
    };
    if values.iter().any(|v| !v.is_finite()) {
        return invalid(format!("base_score {values:?} is not finite"));
    }
    match values.len() {
        1 => Ok(vec![values[0]; outputs]),
        n if n == outputs && (n == num_class || n == num_target) => Ok(values),
        n => invalid(format!(
            "base_score has {n} values; the model has {num_class} classes and {num_target} targets"
        )),
    }
}

fn to_bools(v: &Value) -> Option<Vec<bool>> {
    match v {
        Value::Array(items) => items
            .iter()
            .map(|x| match x {
                Value::Bool(b) => Some(*b),
                other => other.as_i64().map(|i| i != 0),
            })
            .collect(),
        other => other
            .to_i64s()
            .map(|v| v.into_iter().map(|i| i != 0).collect()),
    }
}

fn parse_tree(t: &Value, num_feature: usize, outputs: usize) -> Result<Tree, LoadError> {
    let field = |key: &str| {
        t.get(key)
            .ok_or_else(|| LoadError::Invalid(format!("no '{key}'")))
    };
    let ints = |key: &str| -> Result<Vec<i64>, LoadError> {
        field(key)?
            .to_i64s()
            .ok_or_else(|| LoadError::Invalid(format!("'{key}' is not a list of integers")))
    };
    let left = ints("left_children")?;
    let n = left.len();
    if n == 0 {
        return invalid("no nodes");
    }
    let right = ints("right_children")?;
    let feature = ints("split_indices")?;
    let condition = field("split_conditions")?
        .to_f32s()
        .ok_or_else(|| LoadError::Invalid("'split_conditions' is not a list of numbers".into()))?;
    let default_left = to_bools(field("default_left")?)
        .ok_or_else(|| LoadError::Invalid("'default_left' is not a list of flags".into()))?;
    for (key, len) in [
        ("right_children", right.len()),
        ("split_indices", feature.len()),
        ("split_conditions", condition.len()),
        ("default_left", default_left.len()),
    ] {
        if len != n {
            return invalid(format!("'{key}' has {len} entries for {n} nodes"));
        }
    }
    let split_type = match t.get("split_type") {
        Some(v) => v
            .to_i64s()
            .ok_or_else(|| LoadError::Invalid("'split_type' is not a list of integers".into()))?,
        None => Vec::new(),
    };
    let leaf_size = match t.get("tree_param") {
        Some(p) => count_param(p, "size_leaf_vector", MAX_OUTPUTS)?
            .unwrap_or(1)
            .max(1),
        None => 1,
    };
    let leaf_weights = if leaf_size > 1 {
        field("leaf_weights")?
            .to_f32s()
            .ok_or_else(|| LoadError::Invalid("'leaf_weights' is not a list of numbers".into()))?
    } else {
        Vec::new()
    };
    if leaf_size > 1 && leaf_size != outputs {
        return invalid(format!("{leaf_size} values per leaf for {outputs} outputs"));
    }

    if u32::try_from(n).is_err() {
        return invalid(format!("{n} nodes"));
    }
    // Walk the tree breadth first from the root: children in range, each node reached once (no
    // cycles), split features in range, leaves' weights in range. `order[i]` is the old index
    // of new node `i`; the children of an inner node get the next two new indices.
    let mut seen = vec![false; n];
    seen[0] = true;
    let mut order = vec![0usize];
    let mut nodes = Vec::new();
    let mut values = Vec::new();
    let mut leaf_start = Vec::new();
    let mut depths = vec![0usize];
    let mut depth = 0;
    let mut i = 0;
    while let Some(&node) = order.get(i) {
        let d = depths[i];
        i += 1;
        if left[node] == -1 {
            // `i - 1` fits in u32 (checked above); the root leaf's "left" wraps to u32::MAX.
            nodes.push(Node {
                condition: f32::NAN,
                feature: LEAF,
                left: ((i - 1) as u32).wrapping_sub(1),
            });
            depth = depth.max(d);
            if leaf_size > 1 {
                let k = usize::try_from(right[node]).ok().filter(|&k| {
                    k.checked_add(1)
                        .and_then(|e| e.checked_mul(leaf_size))
                        .is_some_and(|e| e <= leaf_weights.len())
                });
                let Some(k) = k else {
                    return invalid(format!(
                        "leaf {node} points to leaf weights {} outside the {} values",
                        right[node],
                        leaf_weights.len()
                    ));
                };
                leaf_start.push(k * leaf_size);
                values.push(0.0);
            } else {
                values.push(condition[node]);
            }
            continue;
        }
        if split_type.get(node).is_some_and(|&s| s != 0) {
            return unsupported(
                "the model has categorical splits, which are not supported; train with \
                 numerical (e.g. one-hot or ordinal encoded) features instead",
            );
        }
        let child = |c: i64| usize::try_from(c).ok().filter(|&c| c < n);
        let (Some(l), Some(r)) = (child(left[node]), child(right[node])) else {
            return invalid(format!(
                "node {node} has children {} and {} outside the {n} nodes",
                left[node], right[node]
            ));
        };
        let f = usize::try_from(feature[node])
            .ok()
            .filter(|&f| f < num_feature);
        let Some(f) = f else {
            return invalid(format!(
                "node {node} splits on feature {} of {num_feature}",
                feature[node]
            ));
        };
        for c in [l, r] {
            if std::mem::replace(&mut seen[c], true) {
                return invalid(format!("node {c} is reached twice"));
            }
        }
        // At most n nodes are numbered (each once), so the indices fit in u32 (checked above),
        // and `f` < MAX_FEATURES fits in FEATURE.
        nodes.push(Node {
            condition: condition[node],
            feature: f as u32 | if default_left[node] { DEFAULT_LEFT } else { 0 },
            left: order.len() as u32,
        });
        values.push(0.0);
        if leaf_size > 1 {
            leaf_start.push(0);
        }
        order.push(l);
        order.push(r);
        depths.push(d + 1);
        depths.push(d + 1);
    }
    Ok(Tree {
        nodes,
        values,
        depth,
        leaf_size,
        leaf_start,
        leaf_weights,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_formats() {
        assert!(matches!(sniff(b"{\"learner\": 1}"), Format::Json));
        assert!(matches!(
            sniff(b"{L\0\0\0\0\0\0\0\x07learner"),
            Format::Ubjson
        ));
        assert!(matches!(sniff(b"binf\0\0\0"), Format::Legacy));
        assert!(matches!(sniff(b""), Format::Legacy));
    }

    #[test]
    fn refuses_legacy_binary() {
        assert!(matches!(
            Booster::load(b"binf\x00\x00\x00\x3f"),
            Err(LoadError::Unsupported(_))
        ));
    }
}
