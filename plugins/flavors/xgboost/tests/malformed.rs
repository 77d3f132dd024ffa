//! Malformed model files give errors, never panics, hangs or huge allocations.

use std::path::PathBuf;

use wasmflow_flavor_xgboost::model::{Booster, LoadError};
use wasmflow_flavor_xgboost::value::parse_ubjson;

fn fixture(name: &str) -> Vec<u8> {
    let dir = std::env::var_os("WASMFLOW_FLAVOR_FIXTURES").expect(
        "WASMFLOW_FLAVOR_FIXTURES is not set: run tests/fixtures/make_fixtures.py into a directory \
         and point WASMFLOW_FLAVOR_FIXTURES at it",
    );
    let path = PathBuf::from(dir).join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn ubj_len(n: usize) -> [u8; 9] {
    let mut out = [b'L', 0, 0, 0, 0, 0, 0, 0, 0];
    out[1..].copy_from_slice(&(n as i64).to_be_bytes());
    out
}

#[test]
fn truncated_ubjson_models_are_errors() {
    for name in ["multi_softprob.ubj", "dart_binary.ubj", "multi_target.ubj"] {
        let bytes = fixture(name);
        assert!(Booster::load(&bytes).is_ok(), "{name} loads whole");
        let mut checked = 0;
        let mut cut = 0;
        while cut < bytes.len() {
            let result = Booster::load(&bytes[..cut]);
            assert!(result.is_err(), "{name} cut at {cut} loaded");
            checked += 1;
            cut += if cut < 4096 { 1 } else { 61 };
        }
        eprintln!("{name}: {checked} truncations refused");
    }
}

#[test]
fn truncated_json_models_are_errors() {
    let bytes = fixture("multi_softprob.json");
    for cut in (0..bytes.len()).step_by(7) {
        assert!(Booster::load(&bytes[..cut]).is_err(), "cut at {cut} loaded");
    }
}

#[test]
fn corrupted_ubjson_bytes_never_panic() {
    // Every single-byte change of a real model either loads or is an error.
    let bytes = fixture("binary_logistic.ubj");
    let mut errors = 0;
    for i in (0..bytes.len()).step_by(3) {
        for value in [0u8, 0x7f, 0xff, b'[', b'{', b'L'] {
            let mut broken = bytes.clone();
            broken[i] = value;
            if Booster::load(&broken).is_err() {
                errors += 1;
            }
        }
    }
    eprintln!("{errors} corrupted files refused");
}

#[test]
fn absurd_counts_and_nesting_are_errors() {
    let cases: Vec<Vec<u8>> = vec![
        // an object key of 2^62 bytes
        [b"{".as_slice(), &ubj_len(1 << 62)].concat(),
        // a typed float array of 2^61 elements
        [b"{".as_slice(), &ubj_len(1), b"a[$d#", &ubj_len(1 << 61)].concat(),
        // a typed int64 array whose size overflows
        [b"[$L#".as_slice(), &ubj_len(usize::MAX / 4)].concat(),
        // a counted array of 2^40 nulls in a tiny file
        [b"[$Z#".as_slice(), &ubj_len(1 << 40)].concat(),
        // deep nesting
        vec![b'['; 1 << 20],
        [
            vec![b'{'],
            (0..10_000).flat_map(|_| [b'i', 1, b'k', b'{']).collect(),
        ]
        .concat(),
        vec![b'{'; 3],
    ];
    for case in cases {
        assert!(parse_ubjson(&case).is_err());
        assert!(Booster::load(&case).is_err());
    }
    // Deep JSON too.
    let deep = format!("{{\"a\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(Booster::load(deep.as_bytes()).is_err());
}

/// A small JSON model to break in specific ways.
fn model(tree: &str, extra: &str) -> String {
    format!(
        r#"{{"learner": {{"attributes": {{}}, "feature_names": [], "feature_types": [],
        "gradient_booster": {{"name": "gbtree", "model": {{
            "gbtree_model_param": {{"num_parallel_tree": "1", "num_trees": "1"}},
            "iteration_indptr": [0, 1], "tree_info": [0], "trees": [{tree}]}}}},
        "learner_model_param": {{"base_score": "[5E-1]", "num_class": "0", "num_feature": "2",
            "num_target": "1"{extra}}},
        "objective": {{"name": "reg:squarederror"}}}}, "version": [3, 2, 0]}}"#
    )
}

fn tree(left: &str, right: &str, split: &str, split_type: &str) -> String {
    format!(
        r#"{{"left_children": {left}, "right_children": {right}, "split_indices": {split},
        "split_conditions": [0.5, 1.0, 2.0], "default_left": [0, 0, 0],
        "split_type": {split_type}, "tree_param": {{"num_nodes": "3", "size_leaf_vector": "1"}}}}"#
    )
}

#[test]
fn broken_trees_are_errors() {
    let good = model(
        &tree("[1, -1, -1]", "[2, -1, -1]", "[1, 0, 0]", "[0, 0, 0]"),
        "",
    );
    let b = Booster::load(good.as_bytes()).unwrap();
    assert_eq!(
        b.predict(
            &[0.0, 0.4],
            1,
            (0, 0),
            false,
            f32::NAN,
            wasmflow_flavor_xgboost::model::PredictPath::DMatrix
        )
        .unwrap(),
        vec![1.5]
    );

    let invalid = [
        // a cycle back to the root
        tree("[1, 0, -1]", "[2, 0, -1]", "[1, 0, 0]", "[0, 0, 0]"),
        // a child outside the tree
        tree("[1, -1, -1]", "[7, -1, -1]", "[1, 0, 0]", "[0, 0, 0]"),
        // both children the same node
        tree("[1, -1, -1]", "[1, -1, -1]", "[1, 0, 0]", "[0, 0, 0]"),
        // a split on feature 9 of 2
        tree("[1, -1, -1]", "[2, -1, -1]", "[9, 0, 0]", "[0, 0, 0]"),
        // arrays of different lengths
        tree("[1, -1]", "[2, -1, -1]", "[1, 0, 0]", "[0, 0, 0]"),
        // not numbers
        tree("[\"a\", -1, -1]", "[2, -1, -1]", "[1, 0, 0]", "[0, 0, 0]"),
    ];
    for t in invalid {
        let result = Booster::load(model(&t, "").as_bytes());
        assert!(
            matches!(result, Err(LoadError::Invalid(_))),
            "{t}: {result:?}"
        );
    }
    let categorical = tree("[1, -1, -1]", "[2, -1, -1]", "[1, 0, 0]", "[1, 0, 0]");
    let result = Booster::load(model(&categorical, "").as_bytes());
    assert!(
        matches!(&result, Err(LoadError::Unsupported(m)) if m.contains("categorical")),
        "{result:?}"
    );
    // absurd header counts
    let huge = good.replace("\"num_feature\": \"2\"", "\"num_feature\": \"99999999999\"");
    assert!(Booster::load(huge.as_bytes()).is_err());
    let bad_base = good.replace("[5E-1]", "[5E-1,1,2]");
    assert!(Booster::load(bad_base.as_bytes()).is_err());
    let nan_base = good.replace("[5E-1]", "[nan]");
    assert!(Booster::load(nan_base.as_bytes()).is_err());
    let unknown = good.replace("reg:squarederror", "reg:mystery");
    assert!(matches!(
        Booster::load(unknown.as_bytes()),
        Err(LoadError::Unsupported(_))
    ));
    let linear = good.replace("\"gbtree\", \"model\"", "\"gblinear\", \"model\"");
    assert!(matches!(
        Booster::load(linear.as_bytes()),
        Err(LoadError::Unsupported(_))
    ));
}

#[test]
fn categorical_models_are_unsupported() {
    for name in ["categorical.ubj", "categorical.json"] {
        let result = Booster::load(&fixture(name));
        assert!(
            matches!(&result, Err(LoadError::Unsupported(m)) if m.contains("categorical")),
            "{name}: {result:?}"
        );
    }
}
