//! LightGBM scikit-learn estimators saved with skops (MLflow 3's default for
//! `mlflow.lightgbm.log_model(LGBMClassifier(...))`) against what MLflow's lightgbm pyfunc
//! answers: `tests/fixtures/make_sklearn_fixtures.py`, run into `WASMFLOW_FLAVOR_FIXTURES`.

use std::path::PathBuf;

use serde::Deserialize;
use serde_json::Value as Json;
use wasmflow_flavor_lightgbm::input::match_columns;
use wasmflow_flavor_lightgbm::model::LoadError;
use wasmflow_flavor_lightgbm::sklearn::{Labels, Prediction, SklearnModel};

#[derive(Deserialize)]
struct Expected {
    model_class: String,
    columns: Vec<String>,
    rows: Vec<Vec<Option<f64>>>,
    predict: Output,
    predict_proba: Option<Output>,
}

#[derive(Deserialize)]
struct Output {
    dtype: String,
    shape: Vec<usize>,
    values: Vec<Json>,
}

fn dir() -> PathBuf {
    PathBuf::from(std::env::var_os("WASMFLOW_FLAVOR_FIXTURES").expect(
        "WASMFLOW_FLAVOR_FIXTURES is not set: run tests/fixtures/make_sklearn_fixtures.py with \
         the e2e venv's python into a directory and point WASMFLOW_FLAVOR_FIXTURES at it",
    ))
}

fn load(case: &str) -> Result<SklearnModel, LoadError> {
    let bytes = std::fs::read(dir().join(format!("{case}.skops"))).unwrap();
    let file = wasmflow_skops::read(&bytes).map_err(|e| LoadError::Invalid(e.message))?;
    SklearnModel::from_node(&file.root)
}

/// Counts (values, bit-identical), asserting each float is within 1e-12 relative.
fn compare_floats(label: &str, got: &[f64], want: &[Json]) -> (usize, usize) {
    assert_eq!(got.len(), want.len(), "{label}: count");
    let mut same = 0;
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let w = w.as_f64().unwrap_or(f64::NAN);
        if g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()) {
            same += 1;
            continue;
        }
        assert!(
            (g - w).abs() <= 1e-12 * w.abs().max(1.0),
            "{label}: value {i}: got {g:e}, lightgbm {w:e}"
        );
    }
    (got.len(), same)
}

#[test]
fn sklearn_estimators_match_mlflow() {
    let index: Vec<String> =
        serde_json::from_slice(&std::fs::read(dir().join("sklearn_index.json")).unwrap()).unwrap();
    assert!(index.len() >= 10, "only {} cases", index.len());
    let (mut total, mut identical) = (0, 0);
    for case in &index {
        let expected: Expected = serde_json::from_slice(
            &std::fs::read(dir().join(format!("{case}.expected.json"))).unwrap(),
        )
        .unwrap();
        let model = load(case).unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(model.class, expected.model_class, "{case}");
        let names: Vec<&str> = expected.columns.iter().map(String::as_str).collect();
        let chosen = match_columns(&model.booster.feature_names, &names).unwrap();
        let columns: Vec<Vec<f64>> = chosen
            .iter()
            .map(|&c| {
                expected
                    .rows
                    .iter()
                    .map(|r| r[c].unwrap_or(f64::NAN))
                    .collect()
            })
            .collect();
        let rows = expected.rows.len();
        let want = &expected.predict;
        match model.predict(&columns, rows) {
            Prediction::Values { values, shape } => {
                assert_eq!(shape, want.shape, "{case}: shape");
                assert_eq!(want.dtype, "float64", "{case}: dtype");
                let (n, same) = compare_floats(case, &values, &want.values);
                total += n;
                identical += same;
            }
            Prediction::Labels(labels) => {
                assert_eq!(vec![labels.len()], want.shape, "{case}: shape");
                let got: Vec<Json> = match &labels {
                    Labels::Int(v) => {
                        assert_eq!(want.dtype, "int64", "{case}");
                        v.iter().map(|&x| Json::from(x)).collect()
                    }
                    Labels::Text(v) => {
                        assert!(want.dtype.starts_with("<U"), "{case}: {}", want.dtype);
                        v.iter().map(|x| Json::from(x.as_str())).collect()
                    }
                    Labels::Float(v) => v.iter().map(|&x| Json::from(x)).collect(),
                    Labels::Bool(v) => v.iter().map(|&x| Json::from(x)).collect(),
                };
                assert_eq!(got, want.values, "{case}: labels");
                total += got.len();
                identical += got.len();
            }
        }
        if let Some(want) = &expected.predict_proba {
            let got = model.predict_proba(&columns, rows).expect("a classifier");
            assert_eq!(
                vec![rows, model.n_classes().unwrap()],
                want.shape,
                "{case}: proba shape"
            );
            let (n, same) = compare_floats(&format!("{case} proba"), &got, &want.values);
            total += n;
            identical += same;
        }
    }
    eprintln!(
        "{} skops cases: {identical}/{total} values bit-identical, the rest within 1e-12",
        index.len()
    );
}

#[test]
fn truncated_and_corrupted_skops_files_are_errors() {
    let bytes = std::fs::read(dir().join("clf_multi_str.skops")).unwrap();
    for cut in (0..bytes.len()).step_by(97) {
        let result = wasmflow_skops::read(&bytes[..cut])
            .map_err(|e| LoadError::Invalid(e.message))
            .and_then(|f| SklearnModel::from_node(&f.root));
        assert!(result.is_err(), "cut at {cut} loaded");
    }
    // A byte changed anywhere: an error or a model, never a panic.
    for i in (0..bytes.len()).step_by(41) {
        let mut broken = bytes.clone();
        broken[i] ^= 0x5a;
        if let Ok(file) = wasmflow_skops::read(&broken) {
            let _ = SklearnModel::from_node(&file.root);
        }
    }
}
