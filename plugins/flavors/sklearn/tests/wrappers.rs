//! LightGBM and XGBoost scikit-learn estimators inside scikit-learn skops files (src/wrappers.rs)
//! against MLflow's sklearn pyfunc: `tests/fixtures/make_wrapper_fixtures.py`, run into
//! `WASMFLOW_FLAVOR_FIXTURES`. XGBoost's float32 answers must be bit-identical; LightGBM's
//! float64 ones within 1e-12.

use std::path::PathBuf;

use serde::Deserialize;
use serde_json::Value as Json;
use wasmflow_flavor_sklearn::{Matrix, Output, Values, wrappers};

#[derive(Deserialize)]
struct Expected {
    class: String,
    columns: Vec<String>,
    rows: Vec<Vec<Option<f64>>>,
    predict: Want,
    predict_proba: Option<Want>,
}

#[derive(Deserialize)]
struct Want {
    dtype: String,
    shape: Vec<usize>,
    values: Vec<Json>,
}

fn dir() -> PathBuf {
    PathBuf::from(std::env::var_os("WASMFLOW_FLAVOR_FIXTURES").expect(
        "WASMFLOW_FLAVOR_FIXTURES is not set: run tests/fixtures/make_wrapper_fixtures.py with \
         the e2e venv's python into a directory and point WASMFLOW_FLAVOR_FIXTURES at it",
    ))
}

/// (values, bit-identical) after checking dtype, shape and values.
fn compare(label: &str, got: &Output, want: &Want) -> (usize, usize) {
    assert_eq!(got.shape, want.shape, "{label}: shape");
    let (dtype_ok, floats): (bool, Option<(Vec<f64>, f64)>) = match &got.values {
        Values::F32(v) => (
            want.dtype == "float32",
            // XGBClassifier.predict_proba for multi:softmax is scipy's softmax with numpy's
            // float32 exp, a SIMD approximation that is not correctly rounded: 1e-6 there.
            Some((
                v.iter().map(|&x| f64::from(x)).collect(),
                if label.contains("softmax proba") {
                    1e-6
                } else {
                    0.0
                },
            )),
        ),
        Values::F64(v) => (want.dtype == "float64", Some((v.clone(), 1e-12))),
        Values::I64(v) => {
            assert!(want.dtype.starts_with("int"), "{label}: {}", want.dtype);
            let got: Vec<Json> = v.iter().map(|&x| Json::from(x)).collect();
            assert_eq!(got, want.values, "{label}");
            return (got.len(), got.len());
        }
        Values::Text(v) => {
            assert!(want.dtype.starts_with("<U"), "{label}: {}", want.dtype);
            let got: Vec<Json> = v.iter().map(|x| Json::from(x.as_str())).collect();
            assert_eq!(got, want.values, "{label}");
            return (got.len(), got.len());
        }
        Values::Bool(_) => panic!("{label}: unexpected booleans"),
    };
    assert!(
        dtype_ok,
        "{label}: {:?} vs {}",
        got.values.type_name(),
        want.dtype
    );
    let (values, tolerance) = floats.unwrap();
    assert_eq!(values.len(), want.values.len(), "{label}: count");
    let mut same = 0;
    for (i, (g, w)) in values.iter().zip(&want.values).enumerate() {
        let w = w.as_f64().unwrap_or(f64::NAN);
        if g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()) {
            same += 1;
        } else {
            assert!(
                (g - w).abs() <= tolerance * w.abs().max(1.0),
                "{label}: value {i}: got {g:e}, expected {w:e}"
            );
        }
    }
    (values.len(), same)
}

#[test]
fn wrapped_estimators_match_mlflow() {
    let index: Vec<String> =
        serde_json::from_slice(&std::fs::read(dir().join("wrappers_index.json")).unwrap()).unwrap();
    assert!(index.len() >= 12, "only {} cases", index.len());
    let (mut total, mut identical) = (0, 0);
    for case in &index {
        let expected: Expected = serde_json::from_slice(
            &std::fs::read(dir().join(format!("wrap_{case}.expected.json"))).unwrap(),
        )
        .unwrap();
        let bytes = std::fs::read(dir().join(format!("wrap_{case}.skops"))).unwrap();
        let file = wasmflow_skops::read(&bytes).unwrap();
        assert_eq!(file.root.qualname(), expected.class, "{case}");
        let est = wrappers::build(&file.root).unwrap_or_else(|e| panic!("{case}: {e}"));
        // The caller's column matching: by feature_names_in_ when the estimator has it.
        let order: Vec<usize> = match est.feature_names_in() {
            Some(names) => names
                .iter()
                .map(|n| expected.columns.iter().position(|c| c == n).unwrap())
                .collect(),
            None => (0..expected.columns.len()).collect(),
        };
        let rows = expected.rows.len();
        let columns: Vec<Vec<f64>> = order
            .iter()
            .map(|&c| {
                expected
                    .rows
                    .iter()
                    .map(|r| r[c].unwrap_or(f64::NAN))
                    .collect()
            })
            .collect();
        let x = Matrix::from_columns(rows, columns);
        let got = est.predict(&x).unwrap_or_else(|e| panic!("{case}: {e}"));
        let (n, same) = compare(case, &got, &expected.predict);
        total += n;
        identical += same;
        if let Some(want) = &expected.predict_proba {
            let got = est
                .predict_proba(&x)
                .unwrap_or_else(|e| panic!("{case}: {e}"));
            let (n, same) = compare(&format!("{case} proba"), &got, want);
            total += n;
            identical += same;
        }
    }
    eprintln!(
        "{} wrapper cases: {identical}/{total} values bit-identical (the others: multi:softmax \
         predict_proba within 1e-6, lightgbm within 1e-12)",
        index.len()
    );
}

#[test]
fn truncated_wrapper_files_are_errors() {
    let bytes = std::fs::read(dir().join("wrap_xgb_classifier_multi.skops")).unwrap();
    for cut in (0..bytes.len()).step_by(101) {
        if let Ok(file) = wasmflow_skops::read(&bytes[..cut]) {
            assert!(wrappers::build(&file.root).is_err(), "cut at {cut} built");
        }
    }
}
