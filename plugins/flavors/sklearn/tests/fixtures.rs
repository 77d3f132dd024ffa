//! Predictions of the estimators against what scikit-learn itself answered for the same
//! models, written by `tests/fixtures/make_fixtures.py` into $WASMFLOW_FLAVOR_FIXTURES.

use std::path::PathBuf;

use wasmflow_flavor_sklearn::estimator::{Estimator, build};
use wasmflow_flavor_sklearn::{Column, Matrix, Output, Values, input};
use wasmflow_skops::Json;

/// Relative tolerance for floats (sklearn computes in f64; our sums run in another order).
const RTOL: f64 = 1e-9;
/// Absolute floor for values near zero.
const ATOL: f64 = 1e-12;

fn fixtures_dir() -> PathBuf {
    let dir = std::env::var("WASMFLOW_FLAVOR_FIXTURES").unwrap_or_else(|_| {
        panic!(
            "WASMFLOW_FLAVOR_FIXTURES is not set: run \
             plugins/flavors/sklearn/tests/fixtures/make_fixtures.py with the e2e venv's python \
             and point the variable at the directory it wrote"
        )
    });
    PathBuf::from(dir)
}

fn input_matrix(est: &dyn Estimator, case: &Json) -> Matrix {
    let cols = case.get("input").and_then(Json::as_list).expect("input");
    let table = case.get("table").and_then(Json::as_bool).unwrap_or(false);
    let columns: Vec<(String, Column)> = cols
        .iter()
        .map(|c| {
            let name = c.get("name").and_then(Json::as_str).unwrap().to_string();
            let values = c.get("values").and_then(Json::as_list).unwrap();
            let column = match c.get("kind").and_then(Json::as_str).unwrap() {
                "num" => Column::Num(
                    values
                        .iter()
                        .map(|v| v.as_f64().unwrap_or(f64::NAN))
                        .collect(),
                ),
                _ => Column::Text(
                    values
                        .iter()
                        .map(|v| v.as_str().map(str::to_string))
                        .collect(),
                ),
            };
            (name, column)
        })
        .collect();
    if table {
        input::from_table(est, columns).expect("table input")
    } else {
        let rows = columns.first().map_or(0, |(_, c)| c.len());
        Matrix {
            rows,
            columns: columns.into_iter().map(|(_, c)| c).collect(),
            names: None,
        }
    }
}

/// The largest relative difference seen, and the number of values compared.
#[derive(Default)]
struct Stats {
    max_rel: f64,
    values: usize,
}

fn close(a: f64, b: f64, stats: &mut Stats) -> bool {
    stats.values += 1;
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    if a.is_infinite() || b.is_infinite() {
        return a == b;
    }
    let d = (a - b).abs();
    if b != 0.0 {
        stats.max_rel = stats.max_rel.max(d / b.abs());
    }
    d <= RTOL * b.abs() + ATOL
}

fn compare(
    case: &str,
    method: &str,
    got: &Output,
    expected: &Json,
    stats: &mut Stats,
) -> Result<(), String> {
    let shape: Vec<usize> = expected
        .get("shape")
        .and_then(Json::as_list)
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap() as usize)
        .collect();
    if got.shape != shape {
        return Err(format!(
            "{case}.{method}: shape {:?}, expected {shape:?}",
            got.shape
        ));
    }
    let values = expected.get("values").and_then(Json::as_list).unwrap();
    let kind = expected.get("kind").and_then(Json::as_str).unwrap();
    match (kind, &got.values) {
        ("f64", Values::F64(v)) => {
            for (i, (a, b)) in v.iter().zip(values).enumerate() {
                let b = b.as_f64().unwrap();
                if !close(*a, b, stats) {
                    return Err(format!("{case}.{method}[{i}]: {a} != {b}"));
                }
            }
        }
        ("i64", Values::I64(v)) => {
            let e: Vec<i64> = values.iter().map(|v| v.as_i64().unwrap()).collect();
            if *v != e {
                return Err(format!("{case}.{method}: labels differ"));
            }
        }
        ("bool", Values::Bool(v)) => {
            let e: Vec<bool> = values.iter().map(|v| v.as_bool().unwrap()).collect();
            if *v != e {
                return Err(format!("{case}.{method}: labels differ"));
            }
        }
        ("text", Values::Text(v)) => {
            let e: Vec<&str> = values
                .iter()
                .map(|v| v.as_str().unwrap_or("None"))
                .collect();
            if let Some(i) = (0..v.len()).find(|&i| v[i] != e[i]) {
                return Err(format!("{case}.{method}[{i}]: '{}' != '{}'", v[i], e[i]));
            }
        }
        (k, v) => {
            return Err(format!(
                "{case}.{method}: got {} values, expected {k}",
                v.type_name()
            ));
        }
    }
    Ok(())
}

/// A transform's output as an Output (row-major), text when any column is text.
fn matrix_output(m: &Matrix) -> Output {
    let cols = m.n_cols();
    let shape = vec![m.rows, cols];
    if m.columns.iter().any(|c| matches!(c, Column::Text(_))) {
        let mut v = Vec::with_capacity(m.rows * cols);
        for r in 0..m.rows {
            for c in &m.columns {
                v.push(match c {
                    Column::Text(t) => t[r].clone().unwrap_or_else(|| "None".into()),
                    Column::Num(n) => format!("{}", n[r]),
                });
            }
        }
        Output {
            shape,
            values: Values::Text(v),
        }
    } else {
        Output {
            shape,
            values: Values::F64(m.dense().unwrap()),
        }
    }
}

#[test]
fn estimators_match_scikit_learn() {
    let dir = fixtures_dir();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "json") && p.with_extension("skops").exists()
        })
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 40,
        "only {} fixtures in {}",
        cases.len(),
        dir.display()
    );
    let mut failures = Vec::new();
    let mut total = Stats::default();
    let mut checks = 0;
    for path in &cases {
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let case =
            wasmflow_skops::json::parse(&std::fs::read_to_string(path).unwrap(), 64).unwrap();
        let bytes = std::fs::read(path.with_extension("skops")).unwrap();
        let file = match wasmflow_skops::read(&bytes) {
            Ok(f) => f,
            Err(e) => {
                failures.push(format!("{name}: read: {e}"));
                continue;
            }
        };
        let est = match build(&file.root) {
            Ok(e) => e,
            Err(e) => {
                failures.push(format!("{name}: build: {e}"));
                continue;
            }
        };
        let x = input_matrix(est.as_ref(), &case);
        let Some(Json::Object(methods)) = case.get("methods") else {
            panic!("{name}: no methods")
        };
        let mut stats = Stats::default();
        for (method, expected) in methods {
            let got = match method.as_str() {
                "predict" => est.predict(&x),
                "predict_proba" => est.predict_proba(&x),
                "predict_log_proba" => est.predict_log_proba(&x),
                "decision_function" => est.decision_function(&x),
                "transform" => est.transform(&x).map(|m| matrix_output(&m)),
                other => panic!("unknown method {other}"),
            };
            checks += 1;
            match got {
                Ok(out) => {
                    if let Err(e) = compare(&name, method, &out, expected, &mut stats) {
                        failures.push(e);
                    }
                }
                Err(e) => failures.push(format!("{name}.{method}: {e}")),
            }
        }
        eprintln!(
            "{name}: {} values, max relative difference {:.3e}",
            stats.values, stats.max_rel
        );
        total.max_rel = total.max_rel.max(stats.max_rel);
        total.values += stats.values;
    }
    eprintln!(
        "{} fixtures, {checks} method outputs, {} values, max relative difference {:.3e}",
        cases.len(),
        total.values,
        total.max_rel
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
