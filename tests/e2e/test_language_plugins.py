"""Flavor plugins written in Python, JavaScript and C (examples/plugins), installed over REST.

A session fixture builds the three components with `examples/plugins/build.sh` (or takes them
from `$WASMFLOW_EXAMPLE_PLUGINS`, a directory holding py_knn.wasm, js_tree.wasm and
c_logistic.wasm) and installs each into the shared server with `POST /api/2.0/wasmflow/plugins`.
Each test writes a model directory by hand (an MLmodel naming the plugin's flavor, written with
mlflow's own `Model` class, plus the plugin's model file), logs it with `mlflow.log_artifacts`,
registers it from `runs:/<run>/model`, scores it over
`/serving/models/<name>/1/invocations` and compares with numbers computed here in Python
(scikit-learn fits the models and is the reference where its algorithm is the plugin's):
within 1e-9 for float64 inputs and 1e-6 where the inputs are float32.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import mlflow
import numpy as np
import pytest
import requests
from mlflow.models import Model
from mlflow.models.signature import ModelSignature
from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "examples" / "plugins" / "build.sh"
COMPONENTS = {"py_knn": "py_knn.wasm", "js_tree": "js_tree.wasm", "c_logistic": "c_logistic.wasm"}
PLUGIN_NAMES = {"py_knn": "knn-python", "js_tree": "tree-js", "c_logistic": "logistic-c"}
# The request parameter of the classifiers: "label" (default) or "proba" (a column per class).
OUTPUT_PARAM = ParamSchema([ParamSpec("output", "string", "label")])


# ---- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def example_plugins() -> Path:
    """The directory with the three components, built (idempotently) unless given."""
    given = os.environ.get("WASMFLOW_EXAMPLE_PLUGINS")
    if given:
        out = Path(given)
    else:
        target = Path(os.environ.get("CARGO_TARGET_DIR") or REPO_ROOT / "target")
        out = target / "example-plugins" / "out"
        proc = subprocess.run(
            ["bash", str(BUILD_SCRIPT), str(out)], capture_output=True, text=True, timeout=3600
        )
        if proc.returncode != 0:
            pytest.fail(
                f"{BUILD_SCRIPT} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}",
                pytrace=False,
            )
    missing = [f for f in COMPONENTS.values() if not (out / f).is_file()]
    assert not missing, f"{out} lacks {missing}"
    return out


@pytest.fixture(scope="session")
def installed(server, example_plugins) -> dict[str, dict]:
    """Installs each component into the shared server: flavor -> the `plugin` answer."""
    plugins = {}
    for flavor, file_name in COMPONENTS.items():
        body = (example_plugins / file_name).read_bytes()
        r = requests.post(
            f"{server.url}/api/2.0/wasmflow/plugins",
            data=body,
            headers={"Content-Type": "application/wasm"},
            timeout=600,
        )
        assert r.status_code == 200, f"installing {file_name}: HTTP {r.status_code}: {r.text[:500]}"
        plugin = r.json()["plugin"]
        assert plugin["sha256"] == hashlib.sha256(body).hexdigest()
        plugins[flavor] = plugin
    return plugins


# ---- helpers -----------------------------------------------------------------------------------


def _columns(names, type_="double"):
    return Schema([ColSpec(type_, n) for n in names])


def _log_and_register(tmp_path: Path, name: str, flavor: str, section: dict, files: dict[str, str],
                      signature: ModelSignature | None) -> str:
    """Writes a model directory (MLmodel + files), logs it in a run and registers version 1."""
    model_dir = tmp_path / name
    model_dir.mkdir()
    for file_name, text in files.items():
        (model_dir / file_name).write_text(text)
    mlmodel = Model(artifact_path="model", signature=signature)
    mlmodel.add_flavor(flavor, **section)
    mlmodel.save(str(model_dir / "MLmodel"))
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(model_dir), "model")
    mv = mlflow.register_model(f"runs:/{run.info.run_id}/model", name)
    assert mv.version == "1"
    return name


def _invoke(base_url: str, name: str, payload: dict, version: str = "1") -> requests.Response:
    return requests.post(
        f"{base_url}/serving/models/{name}/{version}/invocations",
        data=json.dumps(payload),
        headers={"Content-Type": "application/json"},
        timeout=300,
    )


def _predict(base_url: str, name: str, payload: dict, column: str | None = None):
    """The predictions; with `column`, the values of the plugin's one output column, which the
    answer holds as records (a DataFrame of one column, as MLflow writes it)."""
    r = _invoke(base_url, name, payload)
    assert r.status_code == 200, f"HTTP {r.status_code}: {r.text[:500]}"
    predictions = r.json()["predictions"]
    if column is None:
        return predictions
    assert isinstance(predictions, list), predictions
    assert all(isinstance(p, dict) and list(p) == [column] for p in predictions), predictions[:3]
    return [p[column] for p in predictions]


def _split(columns, x: np.ndarray, params: dict | None = None) -> dict:
    payload = {"dataframe_split": {"columns": list(columns), "data": x.tolist()}}
    if params is not None:
        payload["params"] = params
    return payload


def _assert_bad_request(r: requests.Response, *words: str):
    assert r.status_code == 400, f"HTTP {r.status_code}: {r.text[:300]}"
    message = r.json()["message"].lower()
    for w in words:
        assert w in message, message


# ---- install -----------------------------------------------------------------------------------


def test_plugins_are_installed_and_listed(base_url, installed):
    for flavor, plugin in installed.items():
        assert plugin["name"] == PLUGIN_NAMES[flavor]
        assert plugin["loads"] == [flavor]
        assert plugin["version"] == "0.1.0"
        assert plugin["builtin"] is False
        assert plugin["description"]
    r = requests.get(f"{base_url}/api/2.0/wasmflow/plugins", timeout=30)
    assert r.status_code == 200, r.text
    listed = {p["name"]: p for p in r.json()["plugins"]}
    for flavor, plugin in installed.items():
        assert listed[plugin["name"]]["sha256"] == plugin["sha256"]
        assert listed[plugin["name"]]["loads"] == [flavor]


# ---- Python: k-nearest neighbours ---------------------------------------------------------------

KNN_FEATURES = ["x1", "x2", "x3"]


def _knn_model(x, y, task, k, weights, output="prediction") -> str:
    return json.dumps({"features": KNN_FEATURES, "task": task, "k": k, "weights": weights,
                       "X": x.tolist(), "y": list(y), "output": output})


def test_python_knn_regression(base_url, installed, experiment_id, unique_name, tmp_path):
    rng = np.random.default_rng(21)
    x = rng.normal(size=(80, 3))
    y = x @ np.array([1.5, -2.0, 0.25]) + rng.normal(scale=0.1, size=80)
    signature = ModelSignature(_columns(KNN_FEATURES), _columns(["prediction"]),
                               ParamSchema([ParamSpec("k", "long", 4)]))
    name = _log_and_register(tmp_path, unique_name("knn-reg"), "py_knn", {"data": "knn.json"},
                             {"knn.json": _knn_model(x, y.tolist(), "regression", 4, "distance")}, signature)

    probe = rng.normal(size=(25, 3))
    probe[0] = x[3]  # on a training point: distance weighting gives it all the weight
    # kd_tree computes exact Euclidean distances (brute force uses a less exact expansion).
    reference = KNeighborsRegressor(n_neighbors=4, weights="distance", algorithm="kd_tree").fit(x, y)
    got = np.asarray(_predict(base_url, name, _split(KNN_FEATURES, probe), "prediction"), dtype=np.float64)
    np.testing.assert_allclose(got, reference.predict(probe), rtol=0, atol=1e-9)
    assert got[0] == pytest.approx(y[3], abs=1e-12)

    # A request parameter overrides k; columns may come in any order.
    reference1 = KNeighborsRegressor(n_neighbors=1, algorithm="kd_tree").fit(x, y)
    reordered = {"dataframe_split": {"columns": ["x3", "x1", "x2"], "data": probe[:, [2, 0, 1]].tolist()},
                 "params": {"k": 1}}
    np.testing.assert_allclose(np.asarray(_predict(base_url, name, reordered, "prediction")), reference1.predict(probe),
                               rtol=0, atol=1e-9)

    _assert_bad_request(_invoke(base_url, name, _split(["x1", "x2"], probe[:, :2])), "x3")


def test_python_knn_classification_with_text_labels(base_url, installed, experiment_id, unique_name,
                                                    tmp_path):
    rng = np.random.default_rng(22)
    x = rng.normal(size=(90, 3))
    labels = np.array(["setosa", "versicolor", "virginica"])
    y = labels[np.digitize(x[:, 0] + 0.5 * x[:, 1], [-0.5, 0.5])]
    # Parameters reach a model only when its signature declares them, as in MLflow.
    signature = ModelSignature(_columns(KNN_FEATURES), _columns(["species"], "string"), OUTPUT_PARAM)
    name = _log_and_register(tmp_path, unique_name("knn-cls"), "py_knn", {"data": "knn.json"},
                             {"knn.json": _knn_model(x, y.tolist(), "classification", 5, "uniform", "species")},
                             signature)

    probe = rng.normal(size=(30, 3))
    reference = KNeighborsClassifier(n_neighbors=5, algorithm="kd_tree").fit(x, y)
    assert _predict(base_url, name, _split(KNN_FEATURES, probe), "species") == reference.predict(probe).tolist()

    # Class probabilities: one column per class, so MLflow's shape is a list of records.
    records = _predict(base_url, name, _split(KNN_FEATURES, probe, {"output": "proba"}))
    got = np.array([[rec[c] for c in reference.classes_] for rec in records])
    np.testing.assert_allclose(got, reference.predict_proba(probe), rtol=0, atol=1e-9)

    _assert_bad_request(_invoke(base_url, name, _split(KNN_FEATURES, probe[:2], {"output": "logits"})), "output")


# ---- JavaScript: a decision tree -----------------------------------------------------------------

TREE_FEATURES = ["f0", "f1", "f2", "f3"]


def _tree_json(model, task: str) -> str:
    """A fitted scikit-learn tree in the plugin's format (scikit-learn's own arrays)."""
    t = model.tree_
    doc = {
        "features": TREE_FEATURES,
        "task": task,
        "children_left": t.children_left.tolist(),
        "children_right": t.children_right.tolist(),
        "feature": t.feature.tolist(),
        "threshold": t.threshold.tolist(),
        "value": t.value[:, 0, :].tolist(),  # one output: per node, a target or class weights
        "float32_inputs": True,  # scikit-learn compares float32 copies of the inputs
    }
    if task == "classification":
        doc["classes"] = model.classes_.tolist()
    return json.dumps(doc)


def test_javascript_tree_regression(base_url, installed, experiment_id, unique_name, tmp_path):
    rng = np.random.default_rng(31)
    x = rng.normal(size=(300, 4))
    y = np.sin(2 * x[:, 0]) + x[:, 1] * x[:, 2] + rng.normal(scale=0.05, size=300)
    model = DecisionTreeRegressor(max_depth=7, random_state=0).fit(x, y)
    signature = ModelSignature(_columns(TREE_FEATURES), _columns(["prediction"]))
    name = _log_and_register(tmp_path, unique_name("tree-reg"), "js_tree", {"data": "tree.json"},
                             {"tree.json": _tree_json(model, "regression")}, signature)

    probe = rng.normal(size=(40, 4))
    probe[:5] = x[:5]  # training points sit next to thresholds, where float32 rounding matters
    got = np.asarray(_predict(base_url, name, _split(TREE_FEATURES, probe), "prediction"), dtype=np.float64)
    np.testing.assert_allclose(got, model.predict(probe), rtol=0, atol=1e-9)

    # The same rows as records.
    records = {"dataframe_records": [dict(zip(TREE_FEATURES, row)) for row in probe[:7].tolist()]}
    np.testing.assert_allclose(np.asarray(_predict(base_url, name, records, "prediction")), model.predict(probe[:7]),
                               rtol=0, atol=1e-9)


def test_javascript_tree_classification(base_url, installed, experiment_id, unique_name, tmp_path):
    rng = np.random.default_rng(32)
    x = rng.normal(size=(400, 4))
    y = np.digitize(x[:, 0] - x[:, 3] + 0.3 * rng.normal(size=400), [-0.7, 0.7])  # classes 0, 1, 2
    model = DecisionTreeClassifier(max_depth=5, min_samples_leaf=4, random_state=0).fit(x, y)
    signature = ModelSignature(_columns(TREE_FEATURES), _columns(["prediction"]), OUTPUT_PARAM)
    name = _log_and_register(tmp_path, unique_name("tree-cls"), "js_tree", {"data": "tree.json"},
                             {"tree.json": _tree_json(model, "classification")}, signature)

    probe = rng.normal(size=(50, 4))
    got = np.asarray(_predict(base_url, name, _split(TREE_FEATURES, probe), "prediction"), dtype=np.float64)
    np.testing.assert_array_equal(got, model.predict(probe).astype(np.float64))

    records = _predict(base_url, name, _split(TREE_FEATURES, probe, {"output": "proba"}))
    proba = np.array([[rec[str(c)] for c in model.classes_] for rec in records])
    np.testing.assert_allclose(proba, model.predict_proba(probe), rtol=0, atol=1e-9)

    _assert_bad_request(_invoke(base_url, name, _split(TREE_FEATURES[:3], probe[:, :3])), "f3")


def test_javascript_tree_refuses_text_input(base_url, installed, experiment_id, unique_name, tmp_path):
    rng = np.random.default_rng(33)
    x = rng.normal(size=(50, 4))
    model = DecisionTreeRegressor(max_depth=3, random_state=0).fit(x, x[:, 0])
    # No MLmodel signature: the host enforces the signature the plugin reports (double columns),
    # so the strings are refused before the plugin sees them.
    name = _log_and_register(tmp_path, unique_name("tree-text"), "js_tree", {"data": "tree.json"},
                             {"tree.json": _tree_json(model, "regression")}, None)
    payload = {"dataframe_split": {"columns": TREE_FEATURES, "data": [["a", "b", "c", "d"]]}}
    _assert_bad_request(_invoke(base_url, name, payload), "f0", "cannot convert")


# ---- C: logistic regression --------------------------------------------------------------------

LR_FEATURES = ["age", "income", "score"]


def _logistic_fit(seed: int):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(200, 3)) * np.array([10.0, 2.0, 1.0]) + np.array([40.0, 5.0, 0.0])
    logit = 0.08 * (x[:, 0] - 40) - 0.9 * (x[:, 1] - 5) + 1.3 * x[:, 2]
    y = (logit + rng.logistic(size=200) > 0).astype(int)
    model = LogisticRegression(C=10.0, max_iter=1000).fit(x, y)
    # The plugin's text format; repr() writes each float so that it reads back exactly.
    text = "\n".join([
        "# binary logistic regression, fitted with scikit-learn",
        "features " + " ".join(LR_FEATURES),
        f"intercept {float(model.intercept_[0])!r}",
        "coefficients " + " ".join(repr(float(c)) for c in model.coef_[0]),
        "",
    ])
    return model, text, rng


def _sigmoid(model, x: np.ndarray) -> np.ndarray:
    z = model.intercept_[0] + x @ model.coef_[0]
    return 1.0 / (1.0 + np.exp(-z))


def test_c_logistic_probabilities(base_url, installed, experiment_id, unique_name, tmp_path):
    model, text, rng = _logistic_fit(41)
    signature = ModelSignature(_columns(LR_FEATURES), _columns(["probability"]))
    name = _log_and_register(tmp_path, unique_name("logit-p"), "c_logistic", {"data": "model.txt"},
                             {"model.txt": text}, signature)
    probe = rng.normal(size=(60, 3)) * np.array([10.0, 2.0, 1.0]) + np.array([40.0, 5.0, 0.0])
    got = np.asarray(_predict(base_url, name, _split(LR_FEATURES, probe), "probability"), dtype=np.float64)
    np.testing.assert_allclose(got, model.predict_proba(probe)[:, 1], rtol=0, atol=1e-9)
    np.testing.assert_allclose(got, _sigmoid(model, probe), rtol=0, atol=1e-12)

    _assert_bad_request(_invoke(base_url, name, _split(["age", "score"], probe[:, [0, 2]])), "income")


def test_c_logistic_labels_and_float32_columns(base_url, installed, experiment_id, unique_name, tmp_path):
    model, text, rng = _logistic_fit(42)
    # MLflow `float` columns reach the plugin as float32 values.
    signature = ModelSignature(_columns(LR_FEATURES, "float"), _columns(["label"]))
    name = _log_and_register(tmp_path, unique_name("logit-l"), "c_logistic",
                             {"data": "model.txt", "output": "label", "threshold": 0.5},
                             {"model.txt": text}, signature)
    probe = rng.normal(size=(60, 3)) * np.array([10.0, 2.0, 1.0]) + np.array([40.0, 5.0, 0.0])
    probe32 = probe.astype(np.float32).astype(np.float64)
    got = np.asarray(_predict(base_url, name, _split(LR_FEATURES, probe32), "label"), dtype=np.float64)
    expected = (_sigmoid(model, probe32) >= 0.5).astype(np.float64)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(got, model.predict(probe32).astype(np.float64))


def test_c_logistic_float32_probabilities(base_url, installed, experiment_id, unique_name, tmp_path):
    model, text, rng = _logistic_fit(43)
    signature = ModelSignature(_columns(LR_FEATURES, "float"), _columns(["probability"]))
    name = _log_and_register(tmp_path, unique_name("logit-f32"), "c_logistic", {"data": "model.txt"},
                             {"model.txt": text}, signature)
    probe = rng.normal(size=(30, 3)) * np.array([10.0, 2.0, 1.0]) + np.array([40.0, 5.0, 0.0])
    got = np.asarray(_predict(base_url, name, _split(LR_FEATURES, probe), "probability"), dtype=np.float64)
    np.testing.assert_allclose(got, model.predict_proba(probe)[:, 1], rtol=0, atol=1e-6)


def test_c_logistic_tensor_input(base_url, installed, experiment_id, unique_name, tmp_path):
    # No MLmodel signature: the plugin's reported one (three double columns) names the values.
    model, text, rng = _logistic_fit(44)
    name = _log_and_register(tmp_path, unique_name("logit-t"), "c_logistic", {"data": "model.txt"},
                             {"model.txt": text}, None)
    probe = rng.normal(size=(12, 3)) * np.array([10.0, 2.0, 1.0]) + np.array([40.0, 5.0, 0.0])
    got = np.asarray(_predict(base_url, name, {"inputs": probe.tolist()}, "probability"), dtype=np.float64)
    np.testing.assert_allclose(got.reshape(-1), model.predict_proba(probe)[:, 1], rtol=0, atol=1e-9)
    # The plugin's reported signature names three columns; two values per row are refused.
    _assert_bad_request(_invoke(base_url, name, {"inputs": probe[:, :2].tolist()}), "expects 3")


def test_c_logistic_bad_model_file_is_reported(base_url, installed, experiment_id, unique_name, tmp_path):
    text = "features a b\nintercept 0.5\ncoefficients 1.0\n"  # one coefficient for two features
    name = _log_and_register(tmp_path, unique_name("logit-bad"), "c_logistic", {"data": "model.txt"},
                             {"model.txt": text}, None)
    r = _invoke(base_url, name, {"dataframe_split": {"columns": ["a", "b"], "data": [[1.0, 2.0]]}})
    assert r.status_code >= 400 and r.status_code != 404, f"HTTP {r.status_code}: {r.text[:300]}"
    assert "coefficients" in r.json()["message"].lower()
