//! The tree estimators against scikit-learn 1.9's own outputs.
//!
//! `tests/fixtures/make_tree_fixtures.py` (run with the e2e venv's python, writing into
//! `$WASMFLOW_FLAVOR_FIXTURES/trees`) fits every estimator, saves it with `skops.io.dump` and
//! writes scikit-learn's `predict` / `predict_proba` / `decision_function` on probe rows (NaN,
//! exact split thresholds and one float32/float64 step either side, extreme values). Floats
//! must agree within 1e-9 relative, labels exactly.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use wasmflow_flavor_sklearn::{Column, ErrorKind, Estimator, Matrix, Output, Values, build};
use wasmflow_skops::{Json, Node, Value};

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

/// A small deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// The nodes of a skops tree, pre-order.
fn count_nodes(node: &Node) -> usize {
    1 + match &node.value {
        Value::Object(Some(a)) => count_nodes(a),
        Value::Reduce { args, state } => count_nodes(args) + count_nodes(state),
        Value::Dict { entries, .. } => entries.iter().map(|(_, v)| count_nodes(v)).sum(),
        Value::List(v) | Value::Tuple(v) | Value::ObjectArray { items: v, .. } => {
            v.iter().map(|c| count_nodes(c)).sum()
        }
        _ => 0,
    }
}

/// The tree with its `target`-th node (pre-order) damaged: an array cut short, flattened, or
/// filled with 0xff bytes (NaN, -1, huge) or with small integers (children pointing anywhere);
/// a number made -1, huge, 0 or NaN; a string changed; a list, tuple or dict shortened.
fn mutate(node: &Node, target: usize, at: &mut usize, rng: &mut Rng) -> Node {
    let here = *at;
    *at += 1;
    let mut n = node.clone();
    if here == target {
        n.value = match &node.value {
            Value::Array(a) => {
                let mut a = a.clone();
                match rng.below(4) {
                    0 => {
                        if let Some(first) = a.shape.first_mut() {
                            *first = first.saturating_sub(1);
                        }
                        let len = a.shape.iter().product::<usize>() * a.dtype.itemsize();
                        a.data.truncate(len);
                    }
                    1 => a.shape = vec![a.shape.iter().product()],
                    2 => a.data.iter_mut().for_each(|b| *b = 0xff),
                    _ => {
                        let k = rng.below(7) as u8;
                        a.data.iter_mut().step_by(8).for_each(|b| *b = k);
                    }
                }
                Value::Array(a)
            }
            Value::Json(Json::Int(_)) => Value::Json(Json::Int(match rng.below(3) {
                0 => -1,
                1 => i64::MAX,
                _ => 0,
            })),
            Value::Json(Json::Float(_)) => Value::Json(Json::Float(f64::NAN)),
            Value::Json(Json::Str(_)) => Value::Json(Json::Str("bogus".into())),
            Value::List(v) if !v.is_empty() => Value::List(v[..v.len() - 1].to_vec()),
            Value::Tuple(v) if !v.is_empty() => Value::Tuple(v[..v.len() - 1].to_vec()),
            Value::ObjectArray { shape, items } if !items.is_empty() => Value::ObjectArray {
                shape: shape.clone(),
                items: items[..items.len() - 1].to_vec(),
            },
            Value::Dict { entries, key_types } if !entries.is_empty() => {
                let mut e = entries.clone();
                e.remove(rng.below(e.len() as u64) as usize);
                Value::Dict {
                    entries: e,
                    key_types: key_types.clone(),
                }
            }
            other => other.clone(),
        };
        return n;
    }
    let mut m = |c: &Arc<Node>| Arc::new(mutate(c, target, at, rng));
    n.value = match &node.value {
        Value::Object(Some(a)) => Value::Object(Some(m(a))),
        Value::Reduce { args, state } => Value::Reduce {
            args: m(args),
            state: m(state),
        },
        Value::Dict { entries, key_types } => Value::Dict {
            entries: entries.iter().map(|(k, v)| (k.clone(), m(v))).collect(),
            key_types: key_types.clone(),
        },
        Value::List(v) => Value::List(v.iter().map(&mut m).collect()),
        Value::Tuple(v) => Value::Tuple(v.iter().map(&mut m).collect()),
        Value::ObjectArray { shape, items } => Value::ObjectArray {
            shape: shape.clone(),
            items: items.iter().map(&mut m).collect(),
        },
        other => other.clone(),
    };
    n
}

/// Damaged tree models must build and predict, or fail with an error: never panic (a panic is
/// a trap in the plugin) nor loop.
#[test]
fn mutated_tree_models_never_panic() {
    let dir = fixtures_dir();
    let mut rng = Rng(0x7eee_5eed_0bad_cafe);
    let (mut runs, mut refused) = (0, 0);
    let mut panics = Vec::new();
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for name in cases(&dir) {
        if name.starts_with("bad_") || name.ends_with("_bench") {
            continue;
        }
        let f = parse(&std::fs::read_to_string(dir.join(format!("{name}.txt"))).unwrap());
        let bytes = std::fs::read(dir.join(format!("{name}.skops"))).unwrap();
        let root = wasmflow_skops::read(&bytes).unwrap().root;
        let total = count_nodes(&root);
        let rows = f.rows.min(20);
        let mut x = matrix(&f);
        x.rows = rows;
        for c in &mut x.columns {
            match c {
                Column::Num(v) => v.truncate(rows),
                Column::Text(v) => v.truncate(rows),
            }
        }
        for round in 0..120 {
            let target = rng.below(total as u64) as usize;
            let mutated = mutate(&root, target, &mut 0, &mut rng);
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let est = build(&mutated)?;
                let _ = est.predict(&x);
                let _ = est.predict_proba(&x);
                let _ = est.predict_log_proba(&x);
                let _ = est.decision_function(&x);
                Ok::<(), wasmflow_flavor_sklearn::Error>(())
            }));
            runs += 1;
            match result {
                Ok(Ok(())) => {}
                Ok(Err(_)) => refused += 1,
                Err(p) => panics.push(format!(
                    "{name} round {round} (node {target}): {}",
                    p.downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default()
                )),
            }
        }
    }
    std::panic::set_hook(hook);
    println!(
        "{runs} damaged models, {refused} refused, {} panics",
        panics.len()
    );
    assert!(
        panics.is_empty(),
        "{} panics:\n{}",
        panics.len(),
        panics.join("\n")
    );
}
