//! Native tests of the inference core on the tiny models in tests/fixtures (written by
//! tests/fixtures/make_fixtures.py). Run with
//! `cargo test --target x86_64-unknown-linux-gnu -p wasmflow-flavor-onnx` in plugins/.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use wasmflow_flavor_onnx::LoadConfig;
use wasmflow_flavor_onnx::dense::{DenseBackend, DenseLayer};
use wasmflow_flavor_onnx::engine::{
    Batch, Column, ErrorKind, NamedTensor, OnnxModel, Values, load, predict,
};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn model(name: &str) -> OnnxModel {
    load(&fixture(name)).unwrap_or_else(|e| panic!("loading {name}: {e}"))
}

fn col(name: &str, values: Values) -> Column {
    Column {
        name: name.into(),
        values,
    }
}

fn tensors(batch: Batch) -> Vec<NamedTensor> {
    match batch {
        Batch::Tensors(t) => t,
        Batch::Table(c) => panic!("expected tensors, got a table {c:?}"),
    }
}

fn table(batch: Batch) -> Vec<Column> {
    match batch {
        Batch::Table(c) => c,
        Batch::Tensors(t) => panic!("expected a table, got tensors {t:?}"),
    }
}

fn f32s(v: &Values) -> &[f32] {
    match v {
        Values::Float32(v) => v,
        other => panic!("expected float32, got {other:?}"),
    }
}

fn close(got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
    for (g, w) in got.iter().zip(want) {
        assert!((f64::from(*g) - w).abs() <= tol, "{got:?} vs {want:?}");
    }
}

// linear.onnx: scores = X @ [[1,-1],[2,0],[0,3]] + [0.5,-0.5]; label = argmax(scores).
const X: [[f64; 3]; 2] = [[1.0, 2.0, 3.0], [0.0, 0.0, -1.0]];
const SCORES: [f64; 4] = [5.5, 7.5, 0.5, -3.5];

fn x_table() -> Batch {
    Batch::Table(vec![
        col("x1", Values::Float64(vec![X[0][0], X[1][0]])),
        col("x2", Values::Float64(vec![X[0][1], X[1][1]])),
        col("x3", Values::Float64(vec![X[0][2], X[1][2]])),
    ])
}

fn check_linear(out: Vec<NamedTensor>) {
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].name, "label");
    assert_eq!(out[0].shape, vec![2]);
    assert_eq!(out[0].values, Values::Int64(vec![1, 0]));
    assert_eq!(out[1].name, "scores");
    assert_eq!(out[1].shape, vec![2, 2]);
    close(f32s(&out[1].values), &SCORES, 1e-6);
}

#[test]
fn describes_inputs_and_outputs() {
    let m = model("linear.onnx");
    assert_eq!(
        m.describe(),
        "inputs (X: float32[N, 3]) -> outputs (label: int64[N], scores: float32[N, 2])"
    );
}

#[test]
fn a_frame_feeds_a_lone_input_as_one_matrix() {
    // Outputs of different lengths (labels and scores) cannot be one frame: tensors come back.
    let out = tensors(predict(&model("linear.onnx"), x_table()).unwrap());
    check_linear(out);
}

#[test]
fn a_lone_tensor_feeds_a_lone_input_whatever_its_name() {
    let m = model("linear.onnx");
    for name in ["X", "", "input"] {
        let batch = Batch::Tensors(vec![NamedTensor {
            name: name.into(),
            shape: vec![2, 3],
            values: Values::Float64(X.iter().flatten().copied().collect()),
        }]);
        check_linear(tensors(m.predict(batch).unwrap()));
    }
    // Integers are cast to the input's float32 too.
    let batch = Batch::Tensors(vec![NamedTensor {
        name: "X".into(),
        shape: vec![2, 3],
        values: Values::Int64(vec![1, 2, 3, 0, 0, -1]),
    }]);
    check_linear(tensors(m.predict(batch).unwrap()));
}

#[test]
fn external_data_is_read_beside_the_model() {
    check_linear(tensors(
        model("linear_external.onnx").predict(x_table()).unwrap(),
    ));
}

#[test]
fn one_plan_serves_every_batch_size() {
    let m = model("linear.onnx");
    for rows in [1usize, 7, 64, 1000, 3] {
        let column = |j: usize| Values::Float32((0..rows).map(|r| (r * 3 + j) as f32).collect());
        let batch = Batch::Table(vec![
            col("a", column(0)),
            col("b", column(1)),
            col("c", column(2)),
        ]);
        let out = tensors(m.predict(batch).unwrap());
        assert_eq!(out[1].shape, vec![rows, 2]);
        let scores = f32s(&out[1].values);
        for r in 0..rows {
            let (a, b, c) = ((r * 3) as f64, (r * 3 + 1) as f64, (r * 3 + 2) as f64);
            close(
                &scores[r * 2..r * 2 + 2],
                &[a + 2.0 * b + 0.5, -a + 3.0 * c - 0.5],
                1e-3,
            );
        }
    }
}

#[test]
fn a_frame_of_the_wrong_width_is_invalid_input() {
    let batch = Batch::Table(vec![
        col("x1", Values::Float64(vec![1.0])),
        col("x2", Values::Float64(vec![2.0])),
    ]);
    let e = model("linear.onnx").predict(batch).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidInput, "{e}");
    assert!(e.message.contains("X: float32[N, 3]"), "{e}");
}

#[test]
fn text_for_a_number_is_invalid_input() {
    let batch = Batch::Table(vec![
        col("x1", Values::Float64(vec![1.0])),
        col("x2", Values::Text(vec!["two".into()])),
        col("x3", Values::Float64(vec![3.0])),
    ]);
    let e = model("linear.onnx").predict(batch).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidInput);
    assert!(e.message.contains("column 'x2' holds text"), "{e}");
}

fn mixed_table(b: Values) -> Batch {
    Batch::Table(vec![
        // Columns in any order: several inputs take one column each, by name.
        col(
            "name",
            Values::Text(vec!["x".into(), "y".into(), "z".into()]),
        ),
        col("a", Values::Float64(vec![1.5, 2.0, -0.25])),
        col("flag", Values::Boolean(vec![true, false, true])),
        col("b", b),
        col("count", Values::Int64(vec![3, 4, 5])),
        col("ignored", Values::Float64(vec![0.0, 0.0, 0.0])),
    ])
}

#[test]
fn several_inputs_take_a_column_each_and_give_a_frame() {
    let m = model("mixed.onnx");
    // Whole doubles are fine for an int64 input.
    for b in [
        Values::Int64(vec![1, 2, 3]),
        Values::Float64(vec![1.0, 2.0, 3.0]),
    ] {
        let out = table(m.predict(mixed_table(b)).unwrap());
        let names: Vec<&str> = out.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["out", "twice", "name_out", "count64"]);
        close(f32s(&out[0].values), &[2.5, -1.0, 2.75], 1e-6);
        assert_eq!(out[1].values, Values::Float64(vec![3.0, 4.0, -0.5]));
        assert_eq!(
            out[2].values,
            Values::Text(vec!["x".into(), "y".into(), "z".into()])
        );
        assert_eq!(out[3].values, Values::Int64(vec![3, 4, 5]));
    }
}

#[test]
fn a_fraction_for_an_integer_input_is_invalid_input() {
    let e = model("mixed.onnx")
        .predict(mixed_table(Values::Float64(vec![1.0, 2.5, 3.0])))
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidInput);
    assert!(
        e.message.contains("column 'b' (row 1) has value 2.5"),
        "{e}"
    );
}

#[test]
fn a_missing_column_is_named() {
    let batch = Batch::Table(vec![col("a", Values::Float64(vec![1.0]))]);
    let e = model("mixed.onnx").predict(batch).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidInput);
    assert!(e.message.contains("missing column 'b'"), "{e}");
}

#[test]
fn tensors_feed_inputs_by_name() {
    let t = |name: &str, shape: Vec<usize>, values: Values| NamedTensor {
        name: name.into(),
        shape,
        values,
    };
    let batch = Batch::Tensors(vec![
        t("count", vec![2], Values::Int32(vec![7, 8])),
        t("a", vec![2, 1], Values::Float32(vec![1.0, 2.0])),
        // [rows] where the input is [N, 1]: the trailing 1 is added.
        t("b", vec![2], Values::Int64(vec![10, 20])),
        t("flag", vec![2, 1], Values::Boolean(vec![false, true])),
        t("name", vec![2], Values::Text(vec!["p".into(), "q".into()])),
    ]);
    let out = tensors(model("mixed.onnx").predict(batch).unwrap());
    assert_eq!(out[0].shape, vec![2, 1]);
    close(f32s(&out[0].values), &[-1.0, 22.0], 1e-6);
    assert_eq!(out[1].values, Values::Float64(vec![2.0, 4.0]));
    assert_eq!(out[3].values, Values::Int64(vec![7, 8]));

    let batch = Batch::Tensors(vec![t("nope", vec![1], Values::Float64(vec![1.0]))]);
    let e = model("mixed.onnx").predict(batch).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidInput);
    assert!(e.message.contains("tensor 'nope' is not an input"), "{e}");
}

#[test]
fn zipmap_is_unsupported_with_a_hint() {
    let e = load(&fixture("zipmap.onnx")).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unsupported);
    assert!(e.message.contains("options={'zipmap': False}"), "{e}");
}

#[test]
fn garbage_is_an_invalid_model() {
    let e = OnnxModel::load_bytes(b"not a model at all").unwrap_err();
    assert!(
        matches!(e.kind, ErrorKind::InvalidModel | ErrorKind::Unsupported),
        "{e}"
    );
    let e = load(&fixture("missing.onnx")).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidModel);
}

#[test]
fn skl2onnx_classifiers_match_onnxruntime() {
    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture("iris_expected.json")).unwrap()).unwrap();
    let rows: Vec<Vec<f64>> = serde_json::from_value(expected["inputs"].clone()).unwrap();
    for name in ["iris_logreg", "iris_mlp"] {
        let m = model(&format!("{name}.onnx"));
        // As a frame of four double columns (dataframe_split) and as one tensor (instances).
        let frame = Batch::Table(
            (0..4)
                .map(|j| {
                    col(
                        &format!("f{j}"),
                        Values::Float64(rows.iter().map(|r| r[j]).collect()),
                    )
                })
                .collect(),
        );
        let tensor = Batch::Tensors(vec![NamedTensor {
            name: String::new(),
            shape: vec![rows.len(), 4],
            values: Values::Float64(rows.iter().flatten().copied().collect()),
        }]);
        for batch in [frame, tensor] {
            let out = tensors(m.predict(batch).unwrap());
            let labels: Vec<i64> = serde_json::from_value(expected[name]["label"].clone()).unwrap();
            let probs: Vec<Vec<f64>> =
                serde_json::from_value(expected[name]["probabilities"].clone()).unwrap();
            assert_eq!(out[0].name, "label");
            assert_eq!(out[0].values, Values::Int64(labels), "{name}");
            assert_eq!(out[1].name, "probabilities");
            assert_eq!(out[1].shape, vec![rows.len(), 3]);
            let want: Vec<f64> = probs.into_iter().flatten().collect();
            close(f32s(&out[1].values), &want, 1e-5);
        }
    }
}

#[test]
fn the_load_config_names_the_file() {
    let c = LoadConfig::parse(r#"{"flavor":"onnx","section":{"data":"model.onnx","providers":["CPUExecutionProvider"],"onnx_session_options":null,"code":null}}"#).unwrap();
    assert_eq!(c.data_path().unwrap(), "model.onnx");
    let c = LoadConfig::parse(r#"{"flavor":"onnx","section":{}}"#).unwrap();
    assert_eq!(c.data_path().unwrap(), "model.onnx");
    for bad in ["../model.onnx", "/etc/passwd", ""] {
        let c = LoadConfig::parse(&format!(r#"{{"section":{{"data":"{bad}"}}}}"#)).unwrap();
        assert_eq!(
            c.data_path().unwrap_err().kind,
            ErrorKind::InvalidModel,
            "{bad}"
        );
    }
}

/// A dense backend in plain Rust (f64 sums): what the host's kernels compute, so that the graph
/// rewrite (`dense::offload`) is checked natively, layer by layer, against tract's own answers.
#[derive(Default)]
struct NaiveBackend {
    refuse: bool,
    /// (k, n, bias, relu) of each layer made.
    made: Mutex<Vec<(usize, usize, bool, bool)>>,
}

struct NaiveLayer {
    k: usize,
    n: usize,
    weights: Vec<f32>,
    bias: Option<Vec<f32>>,
    relu: bool,
}

impl DenseBackend for NaiveBackend {
    fn create(
        &self,
        k: usize,
        n: usize,
        weights: Vec<f32>,
        bias: Option<Vec<f32>>,
        relu: bool,
    ) -> Result<Arc<dyn DenseLayer>, String> {
        if self.refuse {
            return Err("no room".into());
        }
        assert_eq!(weights.len(), k * n);
        self.made.lock().unwrap().push((k, n, bias.is_some(), relu));
        Ok(Arc::new(NaiveLayer {
            k,
            n,
            weights,
            bias,
            relu,
        }))
    }
}

impl DenseLayer for NaiveLayer {
    fn apply(&self, rows: usize, input: &[f32]) -> Result<Vec<f32>, String> {
        assert_eq!(input.len(), rows * self.k);
        let mut out = Vec::with_capacity(rows * self.n);
        for x in input.chunks_exact(self.k) {
            for j in 0..self.n {
                let mut y = self.bias.as_ref().map_or(0.0, |b| f64::from(b[j]));
                for (i, xi) in x.iter().enumerate() {
                    y += f64::from(*xi) * f64::from(self.weights[i * self.n + j]);
                }
                out.push(if self.relu && y < 0.0 { 0.0 } else { y as f32 });
            }
        }
        Ok(out)
    }
}

#[test]
fn dense_layers_run_on_the_backend_with_the_same_answers() {
    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture("iris_expected.json")).unwrap()).unwrap();
    let rows: Vec<Vec<f64>> = serde_json::from_value(expected["inputs"].clone()).unwrap();
    let iris = || {
        Batch::Tensors(vec![NamedTensor {
            name: String::new(),
            shape: vec![rows.len(), 4],
            values: Values::Float64(rows.iter().flatten().copied().collect()),
        }])
    };
    let gemm_input = || {
        Batch::Tensors(vec![NamedTensor {
            name: "X".into(),
            shape: vec![5, 4],
            values: Values::Float32((0..20).map(|i| (i as f32 - 9.5) / 3.0).collect()),
        }])
    };
    // The layers each model should hand over: (k, n, bias folded, relu folded).
    // linear.onnx: MatMul + Add; iris_mlp.onnx: skl2onnx's MLP (MatMul, Add, Relu, then the output
    // layer); gemm_relu.onnx: Gemm with transB and its bias, Relu, Gemm.
    let cases: [(&str, Vec<(usize, usize, bool, bool)>); 3] = [
        ("linear.onnx", vec![(3, 2, true, false)]),
        (
            "iris_mlp.onnx",
            vec![(4, 8, true, true), (8, 3, true, false)],
        ),
        (
            "gemm_relu.onnx",
            vec![(4, 8, true, true), (8, 3, true, false)],
        ),
    ];
    for (name, layers) in cases {
        let plain = model(name);
        let backend = NaiveBackend::default();
        let offloaded = OnnxModel::load_with(&fixture(name), Some(&backend)).unwrap();
        assert_eq!(plain.host_layers(), 0);
        assert_eq!(*backend.made.lock().unwrap(), layers, "{name}");
        assert_eq!(offloaded.host_layers(), layers.len(), "{name}");
        assert!(
            offloaded.describe().contains("on the host's kernels"),
            "{}",
            offloaded.describe()
        );
        let batch = match name {
            "linear.onnx" => x_table(),
            "iris_mlp.onnx" => iris(),
            _ => gemm_input(),
        };
        let want = tensors(plain.predict(batch.clone()).unwrap());
        let got = tensors(offloaded.predict(batch).unwrap());
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert_eq!((&g.name, &g.shape), (&w.name, &w.shape), "{name}");
            match (&g.values, &w.values) {
                (Values::Float32(g), Values::Float32(w)) => {
                    let wide: Vec<f64> = w.iter().map(|&v| f64::from(v)).collect();
                    close(g, &wide, 1e-5);
                }
                (g, w) => assert_eq!(g, w, "{name}"),
            }
        }
        // A backend that refuses a layer leaves it to tract.
        let refusing = NaiveBackend {
            refuse: true,
            ..NaiveBackend::default()
        };
        let refused = OnnxModel::load_with(&fixture(name), Some(&refusing)).unwrap();
        assert_eq!(refused.host_layers(), 0);
    }
}
