//! Pipeline, ColumnTransformer and the identity FunctionTransformer ('passthrough').

use wasmflow_skops::{Json, Node, Value};

use crate::data::{Error, Matrix, Output, Values};
use crate::estimator::{Estimator, build};
use crate::util;

pub const CLASSES: &[&str] = &["Pipeline", "ColumnTransformer", "FunctionTransformer"];

/// The deepest nesting of pipelines and column transformers we build (the skops reader
/// already bounds the node depth; this keeps the recursion of `build` shallow too).
const MAX_NESTING: usize = 32;

thread_local! {
    static DEPTH: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Builds a nested estimator, refusing absurd nesting.
fn build_nested(node: &Node) -> Result<Box<dyn Estimator>, Error> {
    let depth = DEPTH.with(|d| d.get());
    if depth >= MAX_NESTING {
        return Err(Error::invalid_model("pipelines nested too deeply"));
    }
    DEPTH.with(|d| d.set(depth + 1));
    let result = build(node);
    DEPTH.with(|d| d.set(depth));
    result
}

pub fn build_compose(node: &Node) -> Result<Box<dyn Estimator>, Error> {
    match node.class.as_str() {
        "Pipeline" => Ok(Box::new(Pipeline::read(node)?)),
        "ColumnTransformer" => Ok(Box::new(ColumnTransformer::read(node)?)),
        "FunctionTransformer" => {
            if node.get_some("func").is_some() {
                return Err(Error::unsupported(format!(
                    "{} with a function is not supported (only the identity, as 'passthrough')",
                    node.qualname()
                )));
            }
            Ok(Box::new(Identity {
                name: node.qualname(),
                n_features: util::n_features_in(node)?,
            }))
        }
        _ => Err(crate::estimator::unsupported_class(node)),
    }
}

/// 'passthrough', or a FunctionTransformer without a function.
pub struct Identity {
    name: String,
    n_features: Option<usize>,
}

impl Estimator for Identity {
    fn name(&self) -> &str {
        &self.name
    }
    fn n_features_in(&self) -> Option<usize> {
        self.n_features
    }
    fn transform(&self, x: &Matrix) -> Result<Matrix, Error> {
        Ok(x.clone())
    }
}

/// A step of a pipeline: an estimator, or 'passthrough' / None (the identity).
fn step(node: &Node) -> Result<Option<Box<dyn Estimator>>, Error> {
    match &node.value {
        Value::Json(Json::Null) => Ok(None),
        Value::Json(Json::Str(s)) if s == "passthrough" => Ok(None),
        Value::Json(j) => Err(Error::invalid_model(format!(
            "bad pipeline step {}",
            util::json_str(j)
        ))),
        _ => build_nested(node).map(Some),
    }
}

pub struct Pipeline {
    name: String,
    steps: Vec<Box<dyn Estimator>>,
    /// Whether the last step is an estimator (not 'passthrough').
    has_final: bool,
}

impl Pipeline {
    fn read(node: &Node) -> Result<Pipeline, Error> {
        let name = node.qualname();
        let items = node.attr("steps")?.items()?;
        if items.is_empty() {
            return Err(Error::invalid_model(format!("{name} has no steps")));
        }
        let mut steps = Vec::new();
        let mut has_final = false;
        for (i, item) in items.iter().enumerate() {
            let pair = item.items()?;
            let est = pair.get(1).ok_or_else(|| {
                Error::invalid_model(format!("{name}: step {i} is not a (name, estimator) pair"))
            })?;
            match step(est)? {
                Some(e) => {
                    steps.push(e);
                    has_final = i + 1 == items.len();
                }
                None => has_final = false,
            }
        }
        Ok(Pipeline {
            name,
            steps,
            has_final,
        })
    }

    /// Runs every transformer before the final estimator.
    fn prefix<'a>(&self, x: &'a Matrix) -> Result<std::borrow::Cow<'a, Matrix>, Error> {
        let n = if self.has_final {
            self.steps.len() - 1
        } else {
            self.steps.len()
        };
        let mut owned: Option<Matrix> = None;
        for s in &self.steps[..n] {
            owned = Some(s.transform(owned.as_ref().unwrap_or(x))?);
        }
        Ok(owned.map_or(std::borrow::Cow::Borrowed(x), std::borrow::Cow::Owned))
    }

    fn last(&self, method: &str) -> Result<&dyn Estimator, Error> {
        if self.has_final {
            Ok(self
                .steps
                .last()
                .map(|b| b.as_ref())
                .ok_or_else(|| Error::internal("empty pipeline"))?)
        } else {
            Err(Error::unsupported(format!(
                "{} ends with 'passthrough' and has no method '{method}'",
                self.name
            )))
        }
    }
}

impl Estimator for Pipeline {
    fn name(&self) -> &str {
        &self.name
    }
    fn n_features_in(&self) -> Option<usize> {
        self.steps.first().and_then(|s| s.n_features_in())
    }
    fn feature_names_in(&self) -> Option<&[String]> {
        self.steps.first().and_then(|s| s.feature_names_in())
    }
    fn classes(&self) -> Option<&Values> {
        if self.has_final {
            self.steps.last().and_then(|s| s.classes())
        } else {
            None
        }
    }
    fn predict(&self, x: &Matrix) -> Result<Output, Error> {
        let last = self.last("predict")?;
        let x = self.prefix(x)?;
        last.predict(&x)
    }
    fn predict_proba(&self, x: &Matrix) -> Result<Output, Error> {
        let last = self.last("predict_proba")?;
        let x = self.prefix(x)?;
        last.predict_proba(&x)
    }
    fn predict_log_proba(&self, x: &Matrix) -> Result<Output, Error> {
        let last = self.last("predict_log_proba")?;
        let x = self.prefix(x)?;
        last.predict_log_proba(&x)
    }
    fn decision_function(&self, x: &Matrix) -> Result<Output, Error> {
        let last = self.last("decision_function")?;
        let x = self.prefix(x)?;
        last.decision_function(&x)
    }
    fn transform(&self, x: &Matrix) -> Result<Matrix, Error> {
        let mut cur = self.prefix(x)?.into_owned();
        if self.has_final
            && let Some(last) = self.steps.last()
        {
            cur = last.transform(&cur)?;
        }
        Ok(cur)
    }
}

/// One fitted transformer of a ColumnTransformer and the input columns it takes.
struct Part {
    /// None: 'passthrough'.
    transformer: Option<Box<dyn Estimator>>,
    columns: Vec<usize>,
    weight: Option<f64>,
}

pub struct ColumnTransformer {
    name: String,
    n_features: Option<usize>,
    names: Option<Vec<String>>,
    parts: Vec<Part>,
}

impl ColumnTransformer {
    fn read(node: &Node) -> Result<ColumnTransformer, Error> {
        let name = node.qualname();
        let n_features = util::n_features_in(node)?;
        let names = util::feature_names_in(node)?;
        let width = n_features.or(names.as_ref().map(Vec::len));
        let indices = node.get_some("_transformer_to_input_indices");
        let weights = node.get_some("transformer_weights");
        let mut parts = Vec::new();
        for item in node.attr("transformers_")?.items()? {
            let triple = item.items()?;
            let [t_name, t, cols] = triple else {
                return Err(Error::invalid_model(format!(
                    "{name}: a transformer is not a (name, transformer, columns) triple"
                )));
            };
            let t_name = t_name.str()?;
            let transformer = match &t.value {
                Value::Json(Json::Str(s)) if s == "drop" => continue,
                Value::Json(Json::Str(s)) if s == "passthrough" => None,
                Value::Json(j) => {
                    return Err(Error::invalid_model(format!(
                        "{name}: bad transformer {}",
                        util::json_str(j)
                    )));
                }
                _ => Some(build_nested(t)?),
            };
            let columns = match indices.and_then(|d| d.get(t_name)) {
                Some(list) => list
                    .to_i64_vec()?
                    .into_iter()
                    .map(|v| util::to_usize(v, "column index"))
                    .collect::<Result<Vec<_>, _>>()?,
                None => resolve_columns(cols, names.as_deref(), width, &name)?,
            };
            if let Some(w) = width
                && let Some(&bad) = columns.iter().find(|&&c| c >= w)
            {
                return Err(Error::invalid_model(format!(
                    "{name}: column {bad} is past the {w} features"
                )));
            }
            if columns.is_empty() {
                continue;
            }
            let weight = match weights.and_then(|w| w.get_some(t_name)) {
                Some(w) => Some(w.f64()?),
                None => None,
            };
            parts.push(Part {
                transformer,
                columns,
                weight,
            });
        }
        Ok(ColumnTransformer {
            name,
            n_features,
            names,
            parts,
        })
    }
}

/// Column indices from a ColumnTransformer column spec (int, str, list of either, boolean
/// mask, slice), against the fitted feature names.
fn resolve_columns(
    spec: &Node,
    names: Option<&[String]>,
    width: Option<usize>,
    ct: &str,
) -> Result<Vec<usize>, Error> {
    let by_name = |s: &str| -> Result<usize, Error> {
        names
            .and_then(|n| n.iter().position(|x| x == s))
            .ok_or_else(|| Error::invalid_model(format!("{ct}: unknown column '{s}'")))
    };
    let index = |i: i64| -> Result<usize, Error> {
        let w = width.unwrap_or(0) as i64;
        let j = if i < 0 { i + w } else { i };
        usize::try_from(j).map_err(|_| Error::invalid_model(format!("{ct}: bad column index {i}")))
    };
    match &spec.value {
        Value::Json(Json::Int(i)) => Ok(vec![index(*i)?]),
        Value::Json(Json::Str(s)) => Ok(vec![by_name(s)?]),
        Value::Slice { start, stop, step } => {
            let w = width.ok_or_else(|| {
                Error::invalid_model(format!("{ct}: a slice without n_features_in_"))
            })?;
            if !step.is_null() && step.as_i64() != Some(1) {
                return Err(Error::unsupported(format!(
                    "{ct}: column slices with a step are not supported"
                )));
            }
            // Slices of names include their end, as pandas' .loc; slices of ints do not.
            let lo = match start {
                Json::Null => 0,
                Json::Str(s) => by_name(s)?,
                j => index(
                    j.as_i64()
                        .ok_or_else(|| Error::invalid_model(format!("{ct}: bad slice")))?,
                )?,
            };
            let hi = match stop {
                Json::Null => w,
                Json::Str(s) => by_name(s)? + 1,
                j => index(
                    j.as_i64()
                        .ok_or_else(|| Error::invalid_model(format!("{ct}: bad slice")))?,
                )?,
            };
            Ok((lo..hi.min(w)).collect())
        }
        _ => {
            let items = spec.items()?;
            let j: Vec<&Json> = items.iter().map(|n| n.json()).collect::<Result<_, _>>()?;
            if !j.is_empty() && j.iter().all(|v| matches!(v, Json::Bool(_))) {
                return Ok(j
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| v.as_bool() == Some(true))
                    .map(|(i, _)| i)
                    .collect());
            }
            j.iter()
                .map(|v| match v {
                    Json::Str(s) => by_name(s),
                    Json::Int(i) => index(*i),
                    other => Err(Error::unsupported(format!(
                        "{ct}: column selector {} is not supported",
                        util::json_str(other)
                    ))),
                })
                .collect()
        }
    }
}

impl Estimator for ColumnTransformer {
    fn name(&self) -> &str {
        &self.name
    }
    fn n_features_in(&self) -> Option<usize> {
        self.n_features
    }
    fn feature_names_in(&self) -> Option<&[String]> {
        self.names.as_deref()
    }
    fn transform(&self, x: &Matrix) -> Result<Matrix, Error> {
        if let Some(n) = self.n_features {
            x.expect_features(n, &self.name)?;
        }
        let mut outs = Vec::with_capacity(self.parts.len());
        for part in &self.parts {
            if let Some(&bad) = part.columns.iter().find(|&&c| c >= x.n_cols()) {
                return Err(Error::invalid_input(format!(
                    "column {bad} is missing from the input"
                )));
            }
            let sub = x.select(&part.columns);
            let mut out = match &part.transformer {
                None => sub,
                Some(t) => t.transform(&sub)?,
            };
            if out.rows != x.rows {
                return Err(Error::internal(format!(
                    "{} gave {} rows for {}",
                    self.name, out.rows, x.rows
                )));
            }
            if let Some(w) = part.weight {
                for c in 0..out.n_cols() {
                    let v: Vec<f64> = out.num(c)?.iter().map(|v| v * w).collect();
                    out.columns[c] = crate::data::Column::Num(v);
                }
            }
            outs.push(out);
        }
        Ok(Matrix::hstack(x.rows, outs))
    }
}
