//! The tree estimators against scikit-learn 1.9's own outputs.
//!
//! `tests/fixtures/make_tree_fixtures.py` (run with the e2e venv's python, writing into
//! `$WASMFLOW_FLAVOR_FIXTURES/trees`) fits every estimator, saves it with `skops.io.dump` and
//! writes scikit-learn's `predict` / `predict_proba` / `decision_function` on probe rows (NaN,
//! exact split thresholds and one float32/float64 step either side, extreme values). Floats
//! must agree within 1e-9 relative, labels exactly.

use std::collections::BTreeMap;
use std::path::PathBuf;

use wasmflow_flavor_sklearn::{Column, ErrorKind, Estimator, Matrix, Output, Values, build};

const TOLERANCE: f64 = 1e-9;

fn fixtures_dir() -> PathBuf {
    let dir = std::env::var_os("WASMFLOW_FLAVOR_FIXTURES").unwrap_or_else(|| {
        panic!(
            "WASMFLOW_FLAVOR_FIXTURES is not set: run `WASMFLOW_FLAVOR_FIXTURES=<dir> \
             <e2e venv>/bin/python plugins/flavors/sklearn/tests/fixtures/make_tree_fixtures.py` \
             and run the tests with the same variable"
        )
    });
    let dir = PathBuf::from(dir).join("trees");
    assert!(
        dir.join("dt_clf_str.txt").exists(),
        "{} has no tree fixtures: run tests/fixtures/make_tree_fixtures.py",
        dir.display()
    );
    dir
}

enum Expected {
    F64 { values: Vec<f64>, cols: usize },
    Str(Vec<String>, usize),
    I64(Vec<i64>, usize),
}

struct Fixture {
    class: String,
    names: Option<Vec<String>>,
    text: BTreeMap<usize, Vec<Option<String>>>,
    rows: usize,
    cols: usize,
    x: Vec<f64>,
    outputs: BTreeMap<String, Expected>,
    errors: Vec<(String, String)>,
}

fn hex(s: &str) -> f64 {
    f64::from_bits(u64::from_str_radix(s, 16).unwrap_or_else(|_| panic!("bad hex {s:?}")))
}

fn parse(text: &str) -> Fixture {
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    let mut next = || {
        i += 1;
        *lines.get(i - 1).expect("truncated fixture")
    };
    let mut f = Fixture {
        class: String::new(),
        names: None,
        text: BTreeMap::new(),
        rows: 0,
        cols: 0,
        x: vec![],
        outputs: BTreeMap::new(),
        errors: vec![],
    };
    let mut remaining = lines.len();
    while remaining > 0 {
        let line = next();
        let w: Vec<&str> = line.split(' ').collect();
        let mut used = 1;
        match w[0] {
            "class" => f.class = w[1].to_string(),
            "names" => f.names = Some(w[1..].iter().map(|s| s.to_string()).collect()),
            "text" => {
                let values = (0..f.rows)
                    .map(|_| Some(next()).filter(|v| *v != "\\N").map(str::to_string))
                    .collect();
                f.text.insert(w[1].parse().unwrap(), values);
                used += f.rows;
            }
            "x" => {
                f.rows = w[1].parse().unwrap();
                f.cols = w[2].parse().unwrap();
                for _ in 0..f.rows {
                    f.x.extend(next().split(' ').map(hex));
                }
                used += f.rows;
                assert_eq!(f.x.len(), f.rows * f.cols);
            }
            "out" => {
                let n: usize = w[3].parse().unwrap();
                used += n;
                let e = match w[2] {
                    "f64" => {
                        let cols: usize = w[4].parse().unwrap();
                        let mut values = vec![];
                        for _ in 0..n {
                            values.extend(next().split(' ').map(hex));
                        }
                        Expected::F64 { values, cols }
                    }
                    // labels; a 5th word: a 2-D array (one row per line, space separated)
                    "str" => Expected::Str(
                        (0..n)
                            .flat_map(|_| next().split(' ').map(str::to_string))
                            .collect(),
                        w.get(4).map_or(0, |c| c.parse().unwrap()),
                    ),
                    "i64" => Expected::I64(
                        (0..n)
                            .flat_map(|_| next().split(' ').map(|v| v.parse::<i64>().unwrap()))
                            .collect(),
                        w.get(4).map_or(0, |c| c.parse().unwrap()),
                    ),
                    t => panic!("unknown output type {t}"),
                };
                f.outputs.insert(w[1].to_string(), e);
            }
            "error" => f.errors.push((w[1].to_string(), w[2].to_string())),
            other => panic!("unknown fixture line {other:?}"),
        }
        remaining -= used;
    }
    f
}

/// The largest relative difference, failing past the tolerance.
fn compare(name: &str, what: &str, got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len(), "{name} {what}: value count");
    let mut max = 0.0f64;
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        if g == w || (g.is_nan() && w.is_nan()) {
            continue;
        }
        let d = (g - w).abs() / w.abs().max(f64::MIN_POSITIVE);
        assert!(
            d <= TOLERANCE,
            "{name} {what}[{i}]: got {g:e}, scikit-learn {w:e} (relative difference {d:e})"
        );
        max = max.max(d);
    }
    max
}

/// The estimator of a fixture, built by the crate's dispatch (`estimator::build`), which
/// routes the tree classes to `tree::build`.
fn load(
    dir: &std::path::Path,
    name: &str,
) -> Result<Box<dyn Estimator>, wasmflow_flavor_sklearn::Error> {
    let bytes = std::fs::read(dir.join(format!("{name}.skops"))).unwrap();
    let file = wasmflow_skops::read(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    build(&file.root)
}

fn check_output(name: &str, method: &str, got: &Output, want: &Expected, rows: usize) -> f64 {
    match want {
        Expected::F64 { values, cols } => {
            let shape = if *cols == 0 {
                vec![rows]
            } else {
                vec![rows, *cols]
            };
            assert_eq!(got.shape, shape, "{name} {method}: shape");
            let Values::F64(v) = &got.values else {
                panic!(
                    "{name} {method}: got {} values, expected float64",
                    got.values.type_name()
                )
            };
            compare(name, method, v, values)
        }
        Expected::Str(labels, cols) => {
            let shape = if *cols == 0 {
                vec![rows]
            } else {
                vec![rows, *cols]
            };
            assert_eq!(got.shape, shape, "{name} {method}: shape");
            assert_eq!(
                got.values,
                Values::Text(labels.clone()),
                "{name} {method}: labels"
            );
            0.0
        }
        Expected::I64(labels, cols) => {
            let shape = if *cols == 0 {
                vec![rows]
            } else {
                vec![rows, *cols]
            };
            assert_eq!(got.shape, shape, "{name} {method}: shape");
            assert_eq!(
                got.values,
                Values::I64(labels.clone()),
                "{name} {method}: labels"
            );
            0.0
        }
    }
}

/// The probe rows as the host hands them: numeric columns, text columns, names.
fn matrix(f: &Fixture) -> Matrix {
    let mut m = Matrix::from_rows(f.rows, f.cols, &f.x);
    for (&c, values) in &f.text {
        m.columns[c] = Column::Text(values.clone());
    }
    m.names = f.names.clone();
    m
}

fn cases(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".txt").map(str::to_string))
        .collect();
    names.sort();
    names
}

#[test]
fn every_estimator_matches_scikit_learn() {
    let dir = fixtures_dir();
    let mut classes = std::collections::BTreeSet::new();
    let mut checked = 0;
    let mut max_all = 0.0f64;
    for name in cases(&dir) {
        let f = parse(&std::fs::read_to_string(dir.join(format!("{name}.txt"))).unwrap());
        if f.errors
            .iter()
            .any(|(_, kind)| kind == "unsupported" || kind == "invalid_model")
        {
            continue; // the refusal tests below
        }
        let est = load(&dir, &name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            est.name().rsplit('.').next().unwrap(),
            f.class,
            "{name}: class"
        );
        classes.insert(f.class.clone());
        let x = matrix(&f);
        if let Some(names) = &f.names {
            assert_eq!(
                est.feature_names_in(),
                Some(&names[..]),
                "{name}: feature_names_in_"
            );
        }
        let mut report = String::new();
        for (method, want) in &f.outputs {
            let got = match method.as_str() {
                "predict" => est.predict(&x),
                "predict_proba" => est.predict_proba(&x),
                "predict_log_proba" => est.predict_log_proba(&x),
                "decision_function" => est.decision_function(&x),
                m => panic!("{name}: unknown method {m}"),
            }
            .unwrap_or_else(|e| panic!("{name} {method}: {e}"));
            let d = check_output(&name, method, &got, want, f.rows);
            max_all = max_all.max(d);
            report += &format!(" {method} (max rel. diff {d:.1e})");
            checked += 1;
        }
        // the methods scikit-learn's class lacks are refused as unsupported
        for (method, has) in [
            ("predict_proba", est.predict_proba(&x)),
            ("predict_log_proba", est.predict_log_proba(&x)),
            ("decision_function", est.decision_function(&x)),
        ] {
            if !f.outputs.contains_key(method) {
                let e = has.expect_err(&format!("{name}: scikit-learn has no {method}"));
                assert_eq!(e.kind, ErrorKind::Unsupported, "{name} {method}: {e}");
            }
        }
        for (method, kind) in &f.errors {
            assert_eq!((method.as_str(), kind.as_str()), ("predict", "nan"));
            let mut bad = f.x[..3 * f.cols].to_vec();
            bad[f.cols + 1] = f64::NAN;
            let e = est
                .predict(&Matrix::from_rows(3, f.cols, &bad))
                .expect_err("NaN must be refused as scikit-learn refuses it");
            assert_eq!(e.kind, ErrorKind::InvalidInput, "{name}: {e}");
            report += " refuses NaN";
        }
        println!("{name} ({}, {} rows):{report}", f.class, f.rows);
    }
    println!("{checked} outputs checked, max relative difference {max_all:e}");
    for c in [
        "DecisionTreeClassifier",
        "DecisionTreeRegressor",
        "RandomForestClassifier",
        "RandomForestRegressor",
        "ExtraTreesClassifier",
        "ExtraTreesRegressor",
        "GradientBoostingClassifier",
        "GradientBoostingRegressor",
        "HistGradientBoostingClassifier",
        "HistGradientBoostingRegressor",
        "ExtraTreeClassifier",
        "ExtraTreeRegressor",
        "Pipeline",
    ] {
        assert!(classes.contains(c), "no fixture for {c}");
    }
}

#[test]
fn refusals() {
    let dir = fixtures_dir();
    let mut seen = 0;
    for name in cases(&dir) {
        let f = parse(&std::fs::read_to_string(dir.join(format!("{name}.txt"))).unwrap());
        for (_, kind) in &f.errors {
            let want = match kind.as_str() {
                "unsupported" => ErrorKind::Unsupported,
                "invalid_model" => ErrorKind::InvalidModel,
                _ => continue,
            };
            let e = load(&dir, &name)
                .err()
                .unwrap_or_else(|| panic!("{name}: loaded"));
            assert_eq!(e.kind, want, "{name}: {e}");
            println!("{name}: {e}");
            seen += 1;
        }
    }
    assert!(seen > 0, "no refusal fixtures");
}

#[test]
fn wrong_feature_count_is_invalid_input() {
    let dir = fixtures_dir();
    let est = load(&dir, "rf_reg").unwrap();
    let e = est
        .predict(&Matrix::from_rows(1, 2, &[1.0, 2.0]))
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidInput);
    let e = est
        .predict(&Matrix::from_rows(
            1,
            6,
            &[1.0, 2.0, f64::INFINITY, 0.0, 0.0, 0.0],
        ))
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidInput, "{e}");
}
