//! Predictions of the reader and predictor against real XGBoost, through MLflow's xgboost pyfunc.
//!
//! `tests/fixtures/make_fixtures.py` (run by the test script into the directory named by
//! `WASMFLOW_FLAVOR_FIXTURES`) trained each model, saved it as UBJSON and JSON, and recorded what
//! `mlflow.xgboost`'s `_XGBModelWrapper.predict` answers on probe rows (random rows with NaN,
//! special values, exact split thresholds and their float32 neighbours) under several request
//! params. Every float32 value must be bit-identical.

use std::path::PathBuf;

use serde::Deserialize;
use serde_json::Value as Json;
use wasmflow_flavor_xgboost::input::{match_columns, rows_from_columns};
use wasmflow_flavor_xgboost::model::Booster;
use wasmflow_flavor_xgboost::predict::{self, ModelClass, Options, Prediction, Values};

#[derive(Deserialize)]
struct Case {
    case: String,
    formats: Vec<String>,
}

#[derive(Deserialize)]
struct Expected {
    model_class: String,
    columns: Vec<String>,
    /// null for NaN, "inf" / "-inf" for infinities.
    rows: Vec<Vec<Json>>,
    predictions: Vec<ExpectedPrediction>,
}

#[derive(Deserialize)]
struct ExpectedPrediction {
    params: serde_json::Map<String, Json>,
    dtype: String,
    shape: Vec<usize>,
    values: Vec<Option<f64>>,
}

fn fixtures_dir() -> PathBuf {
    let dir = std::env::var_os("WASMFLOW_FLAVOR_FIXTURES").expect(
        "WASMFLOW_FLAVOR_FIXTURES is not set: run tests/fixtures/make_fixtures.py with the e2e \
         venv's python into a directory and point WASMFLOW_FLAVOR_FIXTURES at it",
    );
    PathBuf::from(dir)
}

fn read(path: &PathBuf) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn features(booster: &Booster, expected: &Expected) -> (Vec<f32>, usize) {
    let names: Vec<&str> = expected.columns.iter().map(String::as_str).collect();
    let chosen = match_columns(&booster.feature_names, booster.num_feature, &names).unwrap();
    let columns: Vec<Vec<f64>> = chosen
        .iter()
        .map(|&c| expected.rows.iter().map(|r| cell(&r[c])).collect())
        .collect();
    let slices: Vec<&[f64]> = columns.iter().map(Vec::as_slice).collect();
    let rows = expected.rows.len();
    (rows_from_columns(&slices, rows), rows)
}

fn cell(v: &Json) -> f64 {
    match v {
        Json::String(s) if s == "inf" => f64::INFINITY,
        Json::String(s) if s == "-inf" => f64::NEG_INFINITY,
        other => other.as_f64().unwrap_or(f64::NAN),
    }
}

fn options(params: &serde_json::Map<String, Json>) -> Options {
    Options {
        output_margin: params.get("output_margin") == Some(&Json::Bool(true)),
        strict_shape: params.get("strict_shape") == Some(&Json::Bool(true)),
        iteration_range: params.get("iteration_range").map(|r| {
            let r = r.as_array().unwrap();
            (
                r[0].as_u64().unwrap() as usize,
                r[1].as_u64().unwrap() as usize,
            )
        }),
    }
}

/// Compares; returns (values, bit-identical values, max absolute difference). Values that are
/// not bit-identical must be within `tolerance` (relative).
fn compare(
    label: &str,
    got: &Prediction,
    want: &ExpectedPrediction,
    tolerance: f64,
) -> (usize, usize, f64) {
    assert_eq!(got.shape, want.shape, "{label}: shape");
    let (dtype, values): (&str, Vec<f64>) = match &got.values {
        Values::Float32(v) => ("float32", v.iter().map(|&x| f64::from(x)).collect()),
        Values::Float64(v) => ("float64", v.clone()),
        Values::Int32(v) => ("int32", v.iter().map(|&x| f64::from(x)).collect()),
        Values::Int64(v) => ("int64", v.iter().map(|&x| x as f64).collect()),
    };
    assert_eq!(dtype, want.dtype, "{label}: dtype");
    assert_eq!(values.len(), want.values.len(), "{label}: value count");
    let mut identical = 0;
    let mut max_diff = 0f64;
    for (i, (g, w)) in values.iter().zip(&want.values).enumerate() {
        let w = w.unwrap_or(f64::NAN);
        if g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()) {
            identical += 1;
        } else {
            max_diff = max_diff.max((g - w).abs());
            if (g - w).abs() > tolerance * w.abs() {
                eprintln!("{label}: value {i}: got {g:e}, xgboost {w:e}");
            }
        }
    }
    (values.len(), identical, max_diff)
}

#[test]
fn predictions_match_xgboost_bit_for_bit() {
    let dir = fixtures_dir();
    let index: Vec<Case> = serde_json::from_slice(&read(&dir.join("index.json"))).unwrap();
    assert!(index.len() >= 30, "only {} cases", index.len());
    let (mut total, mut identical, mut max_diff, mut runs) = (0, 0, 0f64, 0);
    let mut approximate_max = 0f64;
    let mut failures = Vec::new();
    for case in &index {
        let expected: Expected =
            serde_json::from_slice(&read(&dir.join(format!("{}.expected.json", case.case))))
                .unwrap();
        let class = ModelClass::from_name(&expected.model_class).unwrap();
        for format in &case.formats {
            let label = format!("{}.{format}", case.case);
            let booster =
                Booster::load(&read(&dir.join(&label))).unwrap_or_else(|e| panic!("{label}: {e}"));
            let (x, rows) = features(&booster, &expected);
            for want in &expected.predictions {
                let label = format!("{label} {:?}", want.params);
                let proba = want.params.contains_key("predict_proba");
                // XGBClassifier.predict_proba for multi:softmax is scipy's softmax with numpy's
                // float32 exp, a SIMD approximation (not correctly rounded): within 1e-6 there.
                let approximate = proba && booster.objective == "multi:softmax";
                let got = if proba {
                    predict::predict_proba(&booster, &x, rows, None, f32::NAN)
                } else {
                    predict::predict(&booster, class, &x, rows, &options(&want.params), f32::NAN)
                }
                .unwrap_or_else(|e| panic!("{label}: {e}"));
                let tolerance = if approximate { 1e-6 } else { 0.0 };
                let (n, same, diff) = compare(&label, &got, want, tolerance);
                runs += 1;
                if approximate {
                    eprintln!(
                        "{label}: {same}/{n} bit-identical, max difference {diff:e} (numpy's exp)"
                    );
                    approximate_max = approximate_max.max(diff);
                    assert!(diff <= 1e-6, "{label}: max difference {diff:e}");
                    continue;
                }
                total += n;
                identical += same;
                max_diff = max_diff.max(diff);
                if same != n {
                    failures.push(format!("{label}: {} of {n} differ, max {diff:e}", n - same));
                }
            }
        }
    }
    eprintln!(
        "{} cases, {runs} predictions, {identical}/{total} values bit-identical, max difference \
         {max_diff:e} (softmax predict_proba: max difference {approximate_max:e})",
        index.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn booster_refuses_infinite_inputs_as_dmatrix_does() {
    use wasmflow_flavor_xgboost::model::PredictPath;
    let dir = fixtures_dir();
    let booster = Booster::load(&read(&dir.join("reg_squarederror.ubj"))).unwrap();
    let mut row = vec![0.5f32; booster.num_feature];
    row[1] = f32::INFINITY;
    let refused = booster.predict(&row, 1, (0, 0), false, f32::NAN, PredictPath::DMatrix);
    assert!(refused.unwrap_err().contains("inf"));
    let taken = booster.predict(&row, 1, (0, 0), false, f32::NAN, PredictPath::Inplace);
    assert_eq!(taken.unwrap().len(), 1);
    // An iteration range past the last round is an error, as XGBoost's LayerToTree check.
    let rounds = booster.num_rounds();
    let past = booster.predict(
        &row[..],
        1,
        (0, rounds + 1),
        false,
        f32::NAN,
        PredictPath::Inplace,
    );
    assert!(past.is_err());
}
