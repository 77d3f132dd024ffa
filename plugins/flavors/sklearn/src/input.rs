//! Turning a request into the estimator's input [`Matrix`], and reading what MLflow wrote.

use crate::data::{Column, Error, Matrix};
use crate::estimator::Estimator;

/// A table's columns (name, values) as the estimator's features: matched by name to
/// `feature_names_in_` when the estimator has it (extra columns are ignored), else taken in
/// order.
pub fn from_table(est: &dyn Estimator, columns: Vec<(String, Column)>) -> Result<Matrix, Error> {
    let rows = columns.first().map_or(0, |(_, c)| c.len());
    if let Some((name, c)) = columns.iter().find(|(_, c)| c.len() != rows) {
        return Err(Error::invalid_input(format!(
            "column '{name}' has {} values; expected {rows}",
            c.len()
        )));
    }
    let Some(features) = est.feature_names_in() else {
        let (names, columns): (Vec<String>, Vec<Column>) = columns.into_iter().unzip();
        return Ok(Matrix {
            rows,
            columns,
            names: Some(names),
        });
    };
    let missing: Vec<String> = features
        .iter()
        .filter(|f| !columns.iter().any(|(n, _)| n == *f))
        .map(|f| format!("'{f}'"))
        .collect();
    if !missing.is_empty() {
        let shown: Vec<String> = missing.iter().take(10).cloned().collect();
        return Err(Error::invalid_input(format!(
            "missing column{} {}{}; the model's features are {}",
            if missing.len() == 1 { "" } else { "s" },
            shown.join(", "),
            if missing.len() > shown.len() {
                format!(" and {} more", missing.len() - shown.len())
            } else {
                String::new()
            },
            list(features)
        )));
    }
    // Each feature takes the first column of its name (a column may feed several features
    // only if the model names a feature twice, which sklearn refuses).
    let mut slots: Vec<Option<Column>> = Vec::with_capacity(columns.len());
    let mut names = Vec::with_capacity(columns.len());
    for (n, c) in columns {
        names.push(n);
        slots.push(Some(c));
    }
    let mut out = Vec::with_capacity(features.len());
    for f in features {
        let i = names
            .iter()
            .position(|n| n == f)
            .ok_or_else(|| Error::internal("column vanished"))?;
        let column = match slots[i].take() {
            Some(c) => c,
            None => out
                .iter()
                .zip(features)
                .find(|(_, g)| *g == f)
                .map(|(c, _): (&Column, _)| c.clone())
                .ok_or_else(|| Error::internal("column vanished"))?,
        };
        out.push(column);
    }
    Ok(Matrix {
        rows,
        columns: out,
        names: Some(features.to_vec()),
    })
}

/// A row-major 2-d array `[rows, cols]` as the estimator's features, in order.
pub fn from_array(shape: &[i64], values: Column) -> Result<Matrix, Error> {
    let (rows, cols) = match shape {
        [r, c] if *r >= 0 && *c >= 0 => (*r as usize, *c as usize),
        [r] if *r >= 0 => (*r as usize, 1),
        _ => {
            return Err(Error::invalid_input(format!(
                "expected a 2-d tensor [rows, features], got shape {shape:?}"
            )));
        }
    };
    if rows.checked_mul(cols) != Some(values.len()) {
        return Err(Error::invalid_input(format!(
            "tensor shape {shape:?} does not match its {} values",
            values.len()
        )));
    }
    let columns = match values {
        Column::Num(v) => (0..cols)
            .map(|c| Column::Num((0..rows).map(|r| v[r * cols + c]).collect()))
            .collect(),
        Column::Text(v) => (0..cols)
            .map(|c| Column::Text((0..rows).map(|r| v[r * cols + c].clone()).collect()))
            .collect(),
    };
    Ok(Matrix {
        rows,
        columns,
        names: None,
    })
}

fn list(features: &[String]) -> String {
    wasmflow_features::list_features(features, wasmflow_features::Naming::default())
}

/// The `predict_fn` of MLmodel's `python_function` flavor (what `pyfunc_predict_fn` was),
/// read from the MLmodel YAML text as MLflow writes it (`yaml.safe_dump`, block style):
///
/// ```yaml
/// flavors:
///   python_function:
///     predict_fn: predict_proba
/// ```
///
/// `None` when there is no such key (MLflow's default is `predict`).
pub fn predict_fn_from_mlmodel(text: &str) -> Option<String> {
    let mut in_flavors = false;
    let mut flavors_indent = 0;
    let mut pyfunc_indent: Option<usize> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = line.len() - trimmed.len();
        if let Some(pi) = pyfunc_indent {
            if indent <= pi {
                pyfunc_indent = None;
            } else if let Some(v) = trimmed.strip_prefix("predict_fn:") {
                let v = v.trim().trim_matches(|c| c == '\'' || c == '"');
                return (!v.is_empty()).then(|| v.to_string());
            } else {
                continue;
            }
        }
        if in_flavors && indent <= flavors_indent {
            in_flavors = false;
        }
        if !in_flavors && trimmed == "flavors:" {
            in_flavors = true;
            flavors_indent = indent;
        } else if in_flavors && trimmed == "python_function:" {
            pyfunc_indent = Some(indent);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predict_fn() {
        let text = "artifact_path: m\nflavors:\n  python_function:\n    env:\n      conda: conda.yaml\n    loader_module: mlflow.sklearn\n    predict_fn: predict_proba\n  sklearn:\n    pickled_model: model.skops\n";
        assert_eq!(
            predict_fn_from_mlmodel(text).as_deref(),
            Some("predict_proba")
        );
        let text = "flavors:\n  python_function:\n    loader_module: mlflow.sklearn\n  sklearn:\n    predict_fn: nope\n";
        assert_eq!(predict_fn_from_mlmodel(text), None);
    }
}
