//! Loading as the plugin loads (MLflow's model directories), and the errors a request or a
//! model can cause: each a clear error of the right kind, never a panic.

use std::path::PathBuf;

use wasmflow_flavor_sklearn::estimator::{Estimator, Method, build};
use wasmflow_flavor_sklearn::load::{LoadPlan, load_estimator};
use wasmflow_flavor_sklearn::{Column, ErrorKind, Matrix, Values, input};
use wasmflow_skops::Json;

fn fixtures() -> PathBuf {
    PathBuf::from(std::env::var("WASMFLOW_FLAVOR_FIXTURES").expect(
        "WASMFLOW_FLAVOR_FIXTURES is not set: run tests/fixtures/make_fixtures.py with the e2e venv's python",
    ))
}

fn model(name: &str) -> Box<dyn Estimator> {
    let bytes = std::fs::read(fixtures().join(format!("{name}.skops"))).unwrap();
    build(&wasmflow_skops::read(&bytes).unwrap().root).unwrap()
}

fn table(cols: &[(&str, Column)]) -> Vec<(String, Column)> {
    cols.iter()
        .map(|(n, c)| (n.to_string(), c.clone()))
        .collect()
}

fn text(v: &[&str]) -> Column {
    Column::Text(v.iter().map(|s| Some(s.to_string())).collect())
}

#[test]
fn mlflow_model_directories() {
    let dir = fixtures();
    let mlmodel = std::fs::read_to_string(dir.join("mlflow_proba/MLmodel")).unwrap();
    let config = r#"{"flavor": "sklearn", "section": {"code": null, "pickled_model": "model.skops",
        "serialization_format": "skops", "sklearn_version": "1.9.1", "skops_trusted_types": ["numpy.dtype"]}}"#;
    let plan = LoadPlan::from_config(config, Some(&mlmodel)).unwrap();
    assert_eq!(plan.file, "model.skops");
    assert_eq!(plan.method, Method::PredictProba);
    let default = std::fs::read_to_string(dir.join("mlflow_default/MLmodel")).unwrap();
    assert_eq!(
        LoadPlan::from_config(config, Some(&default))
            .unwrap()
            .method,
        Method::Predict
    );
    assert_eq!(
        LoadPlan::from_config(config, None).unwrap().method,
        Method::Predict
    );
    let with_pyfunc = r#"{"section": {"serialization_format": "skops"}, "python_function": {"predict_fn": "decision_function"}}"#;
    assert_eq!(
        LoadPlan::from_config(with_pyfunc, None).unwrap().method,
        Method::DecisionFunction
    );

    let bytes = std::fs::read(dir.join("mlflow_proba/model.skops")).unwrap();
    let (est, version) = load_estimator(&bytes, "model.skops").unwrap();
    assert_eq!(version.as_deref(), Some("0.16.0"));
    let case = wasmflow_skops::json::parse(
        &std::fs::read_to_string(dir.join("mlflow_expected.json")).unwrap(),
        64,
    )
    .unwrap();
    let cols: Vec<(String, Column)> = case
        .get("input")
        .and_then(Json::as_list)
        .unwrap()
        .iter()
        .map(|c| {
            let values = c.get("values").and_then(Json::as_list).unwrap();
            let col = if c.get("kind").and_then(Json::as_str) == Some("num") {
                Column::Num(
                    values
                        .iter()
                        .map(|v| v.as_f64().unwrap_or(f64::NAN))
                        .collect(),
                )
            } else {
                Column::Text(
                    values
                        .iter()
                        .map(|v| v.as_str().map(str::to_string))
                        .collect(),
                )
            };
            (
                c.get("name").and_then(Json::as_str).unwrap().to_string(),
                col,
            )
        })
        .rev() // columns in another order than at fit: matched by name
        .collect();
    let x = input::from_table(est.as_ref(), cols).unwrap();
    let got = plan.method.call(est.as_ref(), &x).unwrap();
    let expected = case.get("methods").unwrap().get("predict_proba").unwrap();
    let e: Vec<f64> = expected
        .get("values")
        .and_then(Json::as_list)
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let Values::F64(g) = &got.values else {
        panic!()
    };
    assert_eq!(g.len(), e.len());
    for (a, b) in g.iter().zip(&e) {
        assert!((a - b).abs() <= 1e-9 * b.abs() + 1e-12, "{a} != {b}");
    }
    assert_eq!(got.shape, vec![300, 2]);
}

#[test]
fn pickles_are_refused_with_a_way_out() {
    for section in [
        r#"{"section": {"pickled_model": "model.pkl", "serialization_format": "cloudpickle"}}"#,
        r#"{"section": {"pickled_model": "model.pkl", "serialization_format": "pickle"}}"#,
        r#"{"section": {"pickled_model": "model.pkl"}}"#,
    ] {
        let e = LoadPlan::from_config(section, None).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unsupported);
        assert!(
            e.message
                .contains("pickles are not loaded because loading one runs arbitrary code"),
            "{}",
            e.message
        );
        assert!(
            e.message.contains("serialization_format=\"skops\""),
            "{}",
            e.message
        );
        assert!(e.message.contains("onnx"), "{}", e.message);
    }
    let e = LoadPlan::from_config(r#"{"section": {"serialization_format": "skops"}, "python_function": {"predict_fn": "score"}}"#, None).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unsupported);
    assert!(e.message.contains("'score'"));
    assert_eq!(
        LoadPlan::from_config("not json", None).unwrap_err().kind,
        ErrorKind::InvalidModel
    );
}

#[test]
fn unsupported_estimators_are_named() {
    // A skops file of an estimator we do not implement, made from a real one by renaming it.
    let bytes = std::fs::read(fixtures().join("linreg.skops")).unwrap();
    let mut f = wasmflow_skops::read(&bytes).unwrap();
    let mut root = (*f.root).clone();
    root.class = "SVC".into();
    root.module = "sklearn.svm._classes".into();
    let e = build(&root).err().unwrap();
    assert_eq!(e.kind, ErrorKind::Unsupported);
    assert!(
        e.message.contains("sklearn.svm._classes.SVC"),
        "{}",
        e.message
    );
    assert!(
        e.message.contains("LogisticRegression") && e.message.contains("ColumnTransformer"),
        "{}",
        e.message
    );
    // Not sklearn at all.
    root.module = "evil.module".into();
    root.class = "LinearRegression".into();
    assert_eq!(build(&root).err().unwrap().kind, ErrorKind::Unsupported);
    f.root = std::sync::Arc::new(root);
    assert!(build(&f.root).is_err());
}

#[test]
fn bad_requests() {
    let est = model("pipe_onehot_logreg");
    let n = 3;
    let full = table(&[
        ("color", text(&["red", "blue", "green"])),
        ("size", text(&["S", "M", "L"])),
        ("n", Column::Num(vec![1.0, 2.0, 3.0])),
        ("x", Column::Num(vec![0.1, f64::NAN, 0.3])),
        ("y", Column::Num(vec![f64::NAN; n])),
    ]);
    let x = input::from_table(est.as_ref(), full.clone()).unwrap();
    let labels = est.predict(&x).unwrap();
    assert!(
        matches!(&labels.values, Values::Text(v) if v.len() == n && v.iter().all(|l| l == "pos" || l == "neg"))
    );
    let mut missing = full.clone();
    missing.remove(2);
    let e = input::from_table(est.as_ref(), missing).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidInput);
    assert!(e.message.contains("missing column 'n'"), "{}", e.message);

    // A number column holding words.
    let mut words = full.clone();
    words[2].1 = text(&["one", "two", "three"]);
    let x = input::from_table(est.as_ref(), words).unwrap();
    let e = est.predict(&x).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidInput);
    assert!(e.message.contains("'one'"), "{}", e.message);

    // Unknown category with handle_unknown='error'.
    let ohe = model("ohe");
    let x = input::from_table(
        ohe.as_ref(),
        table(&[
            ("color", text(&["red", "black"])),
            ("size", text(&["S", "M"])),
        ]),
    )
    .unwrap();
    let e = ohe.transform(&x).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidInput);
    assert!(e.message.contains("'black'"), "{}", e.message);

    // Wrong number of features, and NaN into k-neighbors.
    let lin = model("linreg");
    let e = lin
        .predict(&Matrix::from_rows(1, 3, &[1.0, 2.0, 3.0]))
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidInput);
    assert!(e.message.contains("x has 3 features"), "{}", e.message);
    let e = lin
        .predict(&Matrix::from_rows(1, 5, &[1.0, f64::NAN, 0.0, 0.0, 0.0]))
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidInput);
    assert!(e.message.contains("nan"), "{}", e.message);
    let knn = model("knn_reg");
    let e = knn
        .predict(&Matrix::from_rows(1, 5, &[1.0, f64::NAN, 0.0, 0.0, 0.0]))
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidInput);

    // Methods an estimator does not have.
    let hinge = model("sgd_hinge");
    let e = hinge
        .predict_proba(&Matrix::from_rows(1, 5, &[0.0; 5]))
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unsupported);
    assert!(e.message.contains("hinge"), "{}", e.message);
    let e = lin
        .predict_proba(&Matrix::from_rows(1, 5, &[0.0; 5]))
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unsupported);
    let scaler = model("standard_scaler");
    assert_eq!(
        scaler
            .predict(&Matrix::from_rows(1, 5, &[0.0; 5]))
            .unwrap_err()
            .kind,
        ErrorKind::Unsupported
    );

    // A 2-d tensor of the wrong shape.
    assert!(input::from_array(&[2, 3], Column::Num(vec![0.0; 5])).is_err());
    assert!(input::from_array(&[-1, 3], Column::Num(vec![])).is_err());
    let m = input::from_array(&[2, 5], Column::Num((0..10).map(f64::from).collect())).unwrap();
    assert_eq!(lin.predict(&m).unwrap().shape, vec![2]);
}
