//! Predictions of the parser and predictor against real LightGBM's `booster.predict`.
//!
//! `tests/fixtures/make_fixtures.py` trained each model with LightGBM and saved its predictions
//! on probe rows (random rows, NaN, zeros, tiny values, huge values, and exact split thresholds).

use std::path::PathBuf;

use serde::Deserialize;
use wasmflow_flavor_lightgbm::input::{match_columns, text_feature};
use wasmflow_flavor_lightgbm::model::{Booster, LoadError};

#[derive(Deserialize)]
struct Expected {
    columns: Vec<String>,
    rows: Vec<Vec<serde_json::Value>>,
    outputs_per_row: usize,
    predictions: Vec<f64>,
}

fn fixture(name: &str) -> (Booster, Expected) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let text = std::fs::read_to_string(dir.join(format!("{name}.txt"))).unwrap();
    let expected: Expected =
        serde_json::from_str(&std::fs::read_to_string(dir.join(format!("{name}.json"))).unwrap())
            .unwrap();
    (Booster::parse(&text).unwrap(), expected)
}

/// The fixture's rows as feature columns, matched by name; strings go through the category map.
fn columns(booster: &Booster, expected: &Expected) -> Vec<Vec<f64>> {
    let names: Vec<&str> = expected.columns.iter().map(String::as_str).collect();
    let chosen = match_columns(&booster.feature_names, &names).unwrap();
    chosen
        .iter()
        .zip(&booster.pandas_categories)
        .map(|(&c, categories)| {
            let cells = expected.rows.iter().map(|r| &r[c]);
            if let Some(categories) = categories {
                let text: Vec<String> = cells
                    .map(|v| v.as_str().map(str::to_owned).unwrap_or_default())
                    .collect();
                text_feature(&text, Some(categories), &expected.columns[c]).unwrap()
            } else {
                cells.map(|v| v.as_f64().unwrap_or(f64::NAN)).collect()
            }
        })
        .collect()
}

fn check(name: &str) {
    let (booster, expected) = fixture(name);
    assert_eq!(booster.outputs, expected.outputs_per_row, "{name}: outputs");
    let rows = expected.rows.len();
    let got = booster.predict(&columns(&booster, &expected), rows);
    assert_eq!(
        got.len(),
        expected.predictions.len(),
        "{name}: prediction count"
    );
    let mut exact = 0;
    for (i, (g, e)) in got.iter().zip(&expected.predictions).enumerate() {
        let tolerance = 1e-12 * e.abs().max(1.0);
        assert!(
            (g - e).abs() <= tolerance,
            "{name}: row {} output {}: got {g:e}, lightgbm {e:e}",
            i / booster.outputs,
            i % booster.outputs
        );
        exact += usize::from(g == e);
    }
    eprintln!("{name}: {exact}/{} predictions bit-identical", got.len());
}

#[test]
fn regression_with_nan_in_training_data() {
    check("regression_nan");
}

#[test]
fn zero_as_missing() {
    check("zero_as_missing");
}

#[test]
fn missing_type_none() {
    check("no_missing");
}

#[test]
fn binary_with_nan() {
    check("binary_nan");
}

#[test]
fn multiclass_softmax() {
    check("multiclass");
}

#[test]
fn multiclass_one_vs_all_with_sigmoid_parameter() {
    check("multiclassova");
}

#[test]
fn random_forest_averages() {
    check("random_forest");
}

#[test]
fn poisson_exp() {
    check("poisson");
}

#[test]
fn regression_sqrt_squares_back() {
    check("regression_sqrt");
}

#[test]
fn cross_entropy_sigmoid() {
    check("cross_entropy");
}

#[test]
fn linear_trees() {
    check("linear_tree");
}

#[test]
fn single_leaf_trees_and_renamed_features() {
    let (booster, _) = fixture("single_leaf");
    // LightGBM replaced the spaces of "feature one" when it trained.
    assert_eq!(booster.feature_names[0], "feature_one");
    check("single_leaf");
}

#[test]
fn categorical_bitsets() {
    check("categorical");
}

#[test]
fn pandas_categories_map_values_to_codes() {
    let (booster, _) = fixture("pandas_categorical");
    assert!(booster.pandas_categories[0].is_none());
    assert_eq!(booster.pandas_categories[1].as_ref().map(Vec::len), Some(7));
    check("pandas_categorical");
}

#[test]
fn header_fields() {
    let (booster, _) = fixture("multiclass");
    assert_eq!(booster.feature_names, ["f0", "f1", "f2", "f3"]);
    assert_eq!(booster.outputs, 3);
    assert_eq!(booster.objective, "multiclass");
    assert_eq!(booster.num_trees(), 8 * 3);
    let (rf, _) = fixture("random_forest");
    assert!(rf.average_output);
}

#[test]
fn crlf_line_endings_parse_alike() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let text = std::fs::read_to_string(dir.join("categorical.txt")).unwrap();
    let crlf = Booster::parse(&text.replace('\n', "\r\n")).unwrap();
    let lf = Booster::parse(&text).unwrap();
    let cols = vec![
        vec![0.1, f64::NAN],
        vec![-0.3, 2.0],
        vec![4.0, 7.0],
        vec![0.0, 1.0],
    ];
    assert_eq!(crlf.predict(&cols, 2), lf.predict(&cols, 2));
}

const TINY: &str = "tree\nversion=v4\nnum_class=1\nnum_tree_per_iteration=1\nlabel_index=0\n\
max_feature_idx=1\nobjective=regression\nfeature_names=a b\nfeature_infos=none none\n\n\
Tree=0\nnum_leaves=3\nnum_cat=0\nsplit_feature=0 1\nthreshold=0.5 1.5\ndecision_type=2 0\n\
left_child=1 -1\nright_child=-3 -2\nleaf_value=1 2 3\nshrinkage=1\n\n\nend of trees\n";

#[test]
fn a_hand_written_tree() {
    let b = Booster::parse(TINY).unwrap();
    // a <= 0.5 goes to node 1 (b <= 1.5 → leaf 0 = 1, else leaf 1 = 2); a > 0.5 → leaf 2 = 3.
    let cols = vec![vec![0.5, 0.5, 0.6, f64::NAN], vec![1.5, 1.6, 0.0, f64::NAN]];
    assert_eq!(b.predict(&cols, 4), [1.0, 2.0, 3.0, 1.0]);
}

fn load_error(text: &str) -> String {
    match Booster::parse(text) {
        Err(LoadError::Invalid(m)) | Err(LoadError::Unsupported(m)) => m,
        Ok(_) => panic!("loaded a bad model"),
    }
}

#[test]
fn malformed_models_are_refused_not_panicked_on() {
    assert!(
        load_error("").contains("not a lightgbm text model")
            || load_error("").contains("num_class")
    );
    assert!(load_error("{\"name\": \"tree\"}").contains("num_class"));
    // A child pointing back at the root would loop forever.
    assert!(load_error(&TINY.replace("left_child=1 -1", "left_child=1 0")).contains("twice"));
    assert!(
        load_error(&TINY.replace("right_child=-3 -2", "right_child=-3 -9")).contains("not a leaf")
    );
    assert!(load_error(&TINY.replace("left_child=1 -1", "left_child=5 -1")).contains("not a node"));
    assert!(
        load_error(&TINY.replace("split_feature=0 1", "split_feature=0 7")).contains("feature 7")
    );
    assert!(load_error(&TINY.replace("leaf_value=1 2 3", "leaf_value=1 2")).contains("leaf_value"));
    assert!(
        load_error(&TINY.replace("threshold=0.5 1.5", "threshold=0.5 x")).contains("threshold")
    );
    assert!(
        load_error(&TINY.replace("feature_names=a b", "feature_names=a")).contains("feature names")
    );
    assert!(
        load_error(&TINY.replace("objective=regression", "objective=mystery")).contains("mystery")
    );
    assert!(
        load_error(&TINY.replace("num_class=1\n", "num_class=2\n")).contains("trees per iteration")
    );
    let cat = TINY
        .replace("num_cat=0", "num_cat=1")
        .replace("decision_type=2 0", "decision_type=1 0")
        .replace(
            "shrinkage=1",
            "cat_boundaries=0 1\ncat_threshold=5\nshrinkage=1",
        );
    assert!(Booster::parse(&cat).is_ok());
    assert!(
        load_error(&cat.replace("threshold=0.5 1.5", "threshold=3 1.5"))
            .contains("categorical threshold")
    );
    assert!(
        load_error(&cat.replace("cat_boundaries=0 1", "cat_boundaries=0 4"))
            .contains("cat_threshold")
    );
}

#[test]
fn categorical_decisions() {
    // Categories 0 and 2 (bits 0b101) go left to leaf 0 = 1; others right to leaf 1 = 2.
    let text = "tree\nnum_class=1\nmax_feature_idx=0\nobjective=regression\nfeature_names=c\n\n\
Tree=0\nnum_leaves=2\nnum_cat=1\nsplit_feature=0\nthreshold=0\ndecision_type=1\n\
left_child=-1\nright_child=-2\nleaf_value=1 2\ncat_boundaries=0 2\ncat_threshold=5 1\n\nend of trees\n";
    let b = Booster::parse(text).unwrap();
    let values = [
        0.0,
        1.0,
        2.0,
        2.9,
        -0.5,
        -1.0,
        f64::NAN,
        32.0,
        33.0,
        64.0,
        1e300,
    ];
    let got = b.predict(&[values.to_vec()], values.len());
    assert_eq!(got, [1.0, 2.0, 1.0, 1.0, 1.0, 2.0, 2.0, 1.0, 2.0, 2.0, 2.0]);
}

#[test]
fn column_matching() {
    let features: Vec<String> = ["a", "b_c", "d"].iter().map(|s| s.to_string()).collect();
    assert_eq!(
        match_columns(&features, &["d", "b c", "a", "x"]).unwrap(),
        [2, 1, 0]
    );
    assert_eq!(
        match_columns(&features, &["x", "y", "z"]).unwrap(),
        [0, 1, 2]
    );
    let err = match_columns(&features, &["a", "d"]).unwrap_err();
    assert!(err.contains("missing column 'b_c'"), "{err}");
    assert!(match_columns(&features, &["x", "y"]).is_err());
}

#[test]
fn text_columns() {
    assert_eq!(
        text_feature(&["1.5".into(), " -2 ".into()], None, "a").unwrap(),
        [1.5, -2.0]
    );
    assert!(text_feature(&[String::new()], None, "a").unwrap()[0].is_nan());
    let err = text_feature(&["abc".into()], None, "a").unwrap_err();
    assert!(err.contains("'abc'"), "{err}");
}
