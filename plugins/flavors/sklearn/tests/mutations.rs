//! Hostile models: every fixture's node tree mutated many ways (arrays cut short or reshaped,
//! integers made negative or huge, list items dropped, attributes removed), then built and run
//! on the fixture's input. Each must give a result or an error — never a panic (a panic is a
//! trap in the plugin).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Arc;

use wasmflow_flavor_sklearn::estimator::build;
use wasmflow_flavor_sklearn::{Column, Matrix, input};
use wasmflow_skops::{Json, NdArray, Node, Value};

/// A small deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Applies one mutation to the `target`-th node (pre-order), counting with `counter`.
fn mutate(node: &Node, target: usize, counter: &mut usize, rng: &mut Rng) -> Node {
    let here = *counter;
    *counter += 1;
    let mut n = node.clone();
    if here == target {
        n.value = match &node.value {
            Value::Array(a) => {
                let mut a: NdArray = a.clone();
                match rng.below(3) {
                    0 => {
                        // One element fewer, shape adjusted.
                        if let Some(first) = a.shape.first_mut() {
                            *first = first.saturating_sub(1);
                        }
                        let len: usize = a.shape.iter().product::<usize>() * a.dtype.itemsize();
                        a.data.truncate(len);
                    }
                    1 => {
                        // Flattened.
                        a.shape = vec![a.shape.iter().product()];
                    }
                    _ => {
                        // All bytes 0xff: huge integers, NaN floats, -1 indices.
                        a.data.iter_mut().for_each(|b| *b = 0xff);
                    }
                }
                Value::Array(a)
            }
            Value::Json(Json::Int(_)) => Value::Json(match rng.below(3) {
                0 => Json::Int(-1),
                1 => Json::Int(i64::MAX),
                _ => Json::Int(0),
            }),
            Value::Json(Json::Float(_)) => Value::Json(Json::Float(f64::NAN)),
            Value::Json(Json::Str(_)) => Value::Json(Json::Str("bogus".into())),
            Value::Json(Json::Bool(b)) => Value::Json(Json::Bool(!b)),
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
    let m = |c: &Arc<Node>, counter: &mut usize, rng: &mut Rng| {
        Arc::new(mutate(c, target, counter, rng))
    };
    n.value = match &node.value {
        Value::Object(Some(a)) => Value::Object(Some(m(a, counter, rng))),
        Value::Reduce { args, state } => Value::Reduce {
            args: m(args, counter, rng),
            state: m(state, counter, rng),
        },
        Value::Dict { entries, key_types } => Value::Dict {
            entries: entries
                .iter()
                .map(|(k, v)| (k.clone(), m(v, counter, rng)))
                .collect(),
            key_types: key_types.clone(),
        },
        Value::List(v) => Value::List(v.iter().map(|c| m(c, counter, rng)).collect()),
        Value::Tuple(v) => Value::Tuple(v.iter().map(|c| m(c, counter, rng)).collect()),
        Value::ObjectArray { shape, items } => Value::ObjectArray {
            shape: shape.clone(),
            items: items.iter().map(|c| m(c, counter, rng)).collect(),
        },
        other => other.clone(),
    };
    n
}

fn count(node: &Node) -> usize {
    1 + match &node.value {
        Value::Object(Some(a)) => count(a),
        Value::Reduce { args, state } => count(args) + count(state),
        Value::Dict { entries, .. } => entries.iter().map(|(_, v)| count(v)).sum(),
        Value::List(v) | Value::Tuple(v) | Value::ObjectArray { items: v, .. } => {
            v.iter().map(|c| count(c)).sum()
        }
        _ => 0,
    }
}

fn input_of(case: &Json) -> (Vec<(String, Column)>, bool) {
    let cols = case.get("input").and_then(Json::as_list).unwrap();
    let table = case.get("table").and_then(Json::as_bool).unwrap_or(false);
    let columns = cols
        .iter()
        .map(|c| {
            let name = c.get("name").and_then(Json::as_str).unwrap().to_string();
            let values = c.get("values").and_then(Json::as_list).unwrap();
            let column = match c.get("kind").and_then(Json::as_str).unwrap() {
                "num" => Column::Num(
                    values
                        .iter()
                        .take(20)
                        .map(|v| v.as_f64().unwrap_or(f64::NAN))
                        .collect(),
                ),
                _ => Column::Text(
                    values
                        .iter()
                        .take(20)
                        .map(|v| v.as_str().map(str::to_string))
                        .collect(),
                ),
            };
            (name, column)
        })
        .collect();
    (columns, table)
}

#[test]
fn mutated_models_never_panic() {
    let dir = PathBuf::from(std::env::var("WASMFLOW_FLAVOR_FIXTURES").expect(
        "WASMFLOW_FLAVOR_FIXTURES is not set: run tests/fixtures/make_fixtures.py with the e2e venv's python",
    ));
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "skops") && p.with_extension("json").exists()
        })
        .collect();
    paths.sort();
    assert!(!paths.is_empty());
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let (mut runs, mut errors) = (0, 0);
    let mut panics = Vec::new();
    // Quiet the default hook: panics are collected and reported below.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for path in &paths {
        let file = wasmflow_skops::read(&std::fs::read(path).unwrap()).unwrap();
        let case = wasmflow_skops::json::parse(
            &std::fs::read_to_string(path.with_extension("json")).unwrap(),
            64,
        )
        .unwrap();
        let (columns, table) = input_of(&case);
        let total = count(&file.root);
        for round in 0..150 {
            let target = rng.below(total as u64) as usize;
            let mut counter = 0;
            let mutated = mutate(&file.root, target, &mut counter, &mut rng);
            let columns = columns.clone();
            let result = catch_unwind(AssertUnwindSafe(|| -> Result<(), String> {
                let est = build(&mutated).map_err(|e| e.message)?;
                let x = if table {
                    input::from_table(est.as_ref(), columns).map_err(|e| e.message)?
                } else {
                    let rows = columns.first().map_or(0, |(_, c)| c.len());
                    Matrix {
                        rows,
                        columns: columns.into_iter().map(|(_, c)| c).collect(),
                        names: None,
                    }
                };
                let _ = est.predict(&x);
                let _ = est.predict_proba(&x);
                let _ = est.decision_function(&x);
                let _ = est.transform(&x);
                Ok(())
            }));
            runs += 1;
            match result {
                Ok(Ok(())) => {}
                Ok(Err(_)) => errors += 1,
                Err(p) => {
                    let msg = p
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    panics.push(format!(
                        "{} round {round} (node {target}): {msg}",
                        path.display()
                    ));
                }
            }
        }
    }
    std::panic::set_hook(hook);
    eprintln!(
        "{runs} mutated models, {errors} refused at build or input, {} panics",
        panics.len()
    );
    assert!(
        panics.is_empty(),
        "{} panics:\n{}",
        panics.len(),
        panics.join("\n")
    );
}
