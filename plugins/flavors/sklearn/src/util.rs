//! Helpers to read fitted attributes from skops nodes, shared by the estimators.

use wasmflow_skops::{Json, Kind, Node, Value};

use crate::data::{Error, Values};

/// A string parameter (`"uniform"`), or `default` when absent or None.
pub fn opt_str<'a>(node: &'a Node, name: &str, default: &'a str) -> Result<&'a str, Error> {
    match node.get_some(name) {
        Some(n) => Ok(n.str()?),
        None => Ok(default),
    }
}

/// A boolean parameter, or `default` when absent or None.
pub fn opt_bool(node: &Node, name: &str, default: bool) -> Result<bool, Error> {
    match node.get_some(name) {
        Some(n) => Ok(n.bool()?),
        None => Ok(default),
    }
}

/// A numeric parameter, or `default` when absent or None.
pub fn opt_f64(node: &Node, name: &str, default: f64) -> Result<f64, Error> {
    match node.get_some(name) {
        Some(n) => Ok(n.f64()?),
        None => Ok(default),
    }
}

/// A required numeric array attribute, flattened (row-major) with its shape.
pub fn array_f64(node: &Node, name: &str) -> Result<(Vec<f64>, Vec<usize>), Error> {
    let a = node.attr(name)?;
    Ok((a.to_f64_vec()?, a.shape()?))
}

/// `n_features_in_`, when the estimator has it.
pub fn n_features_in(node: &Node) -> Result<Option<usize>, Error> {
    match node.get_some("n_features_in_") {
        Some(n) => Ok(Some(to_usize(n.i64()?, "n_features_in_")?)),
        None => Ok(None),
    }
}

/// `feature_names_in_`, when the estimator was fitted on a DataFrame.
pub fn feature_names_in(node: &Node) -> Result<Option<Vec<String>>, Error> {
    match node.get_some("feature_names_in_") {
        Some(n) => Ok(Some(n.to_strings()?)),
        None => Ok(None),
    }
}

pub fn to_usize(v: i64, what: &str) -> Result<usize, Error> {
    usize::try_from(v).map_err(|_| Error::invalid_model(format!("{what} is {v}")))
}

/// Labels as sklearn keeps them in `classes_`: a string array -> text, an integer array ->
/// int64, a float array -> float64, a bool array -> bool; an object array by its items.
pub fn labels(node: &Node) -> Result<Values, Error> {
    match &node.value {
        Value::Array(a) => {
            let s = a.scalar()?;
            Ok(match s.kind {
                Kind::Unicode | Kind::Bytes => Values::Text(a.to_strings()?),
                Kind::Int | Kind::UInt => Values::I64(a.to_i64()?),
                Kind::Bool => Values::Bool(a.to_bool()?),
                Kind::Float => Values::F64(a.to_f64()?),
                _ => {
                    return Err(Error::unsupported(format!(
                        "classes of dtype {} are not supported",
                        a.dtype.describe()
                    )));
                }
            })
        }
        Value::ObjectArray { items, .. } | Value::List(items) => {
            let j: Vec<&Json> = items.iter().map(|n| n.json()).collect::<Result<_, _>>()?;
            if j.iter().all(|v| matches!(v, Json::Str(_))) {
                Ok(Values::Text(
                    j.iter()
                        .map(|v| v.as_str().unwrap_or_default().to_string())
                        .collect(),
                ))
            } else if j.iter().all(|v| matches!(v, Json::Int(_))) {
                Ok(Values::I64(j.iter().filter_map(|v| v.as_i64()).collect()))
            } else if j.iter().all(|v| matches!(v, Json::Bool(_))) {
                Ok(Values::Bool(j.iter().filter_map(|v| v.as_bool()).collect()))
            } else if j.iter().all(|v| matches!(v, Json::Int(_) | Json::Float(_))) {
                Ok(Values::F64(j.iter().filter_map(|v| v.as_f64()).collect()))
            } else {
                // Mixed labels: as text, as str() would print them.
                Ok(Values::Text(j.iter().map(|v| json_str(v)).collect()))
            }
        }
        _ => Err(Error::invalid_model(format!(
            "{}: classes_ is not an array",
            node.qualname()
        ))),
    }
}

/// A JSON scalar as Python's `str()` prints it (for messages and mixed labels).
pub fn json_str(v: &Json) -> String {
    match v {
        Json::Null => "None".into(),
        Json::Bool(true) => "True".into(),
        Json::Bool(false) => "False".into(),
        Json::Int(i) => i.to_string(),
        Json::BigInt(s) => s.clone(),
        Json::Float(f) => py_float(*f),
        Json::Str(s) => s.clone(),
        other => format!("{other:?}"),
    }
}

/// A float as Python's `repr()` prints it, close enough for messages.
pub fn py_float(f: f64) -> String {
    if f.is_nan() {
        "nan".into()
    } else if f.is_infinite() {
        if f > 0.0 { "inf".into() } else { "-inf".into() }
    } else if f == f.trunc() && f.abs() < 1e16 {
        format!("{f:.1}")
    } else {
        format!("{f}")
    }
}

/// Index of the largest value of `row` (the first on ties, as numpy's argmax; NaN wins as
/// numpy's argmax treats NaN as the maximum).
pub fn argmax(row: &[f64]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v.is_nan() {
            return i;
        }
        if v > row[best] {
            best = i;
        }
    }
    best
}

/// The logistic function, as scipy's expit computes it.
pub fn expit(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Softmax of each row of a `[rows, k]` array, in place, as sklearn's `softmax`.
pub fn softmax_rows(values: &mut [f64], k: usize) {
    for row in values.chunks_mut(k.max(1)) {
        let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mut sum = 0.0;
        for v in row.iter_mut() {
            *v = (*v - max).exp();
            sum += *v;
        }
        for v in row.iter_mut() {
            *v /= sum;
        }
    }
}
