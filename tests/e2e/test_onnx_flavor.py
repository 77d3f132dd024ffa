"""The builtin `onnx` flavor plugin: scikit-learn models converted with skl2onnx, logged with
`mlflow.onnx.log_model` through the official client, served at
`/serving/models/<name>/<version>/invocations`, compared with onnxruntime within 1e-5 and with
what MLflow's own scoring server answers for the same model and payload (`mlflow_answer`: the
server's parsing, MLflow's ONNX pyfunc on onnxruntime, `predictions_to_json`).

`mlflow.onnx.log_model` stores no signature, so MLflow's ONNX wrapper gets a DataFrame for
frames (`dataframe_split`, `dataframe_records`, CSV) and an ndarray or dict for
`instances`/`inputs`, and MLflow answers:
  * frames: a DataFrame of the outputs, each flattened (`p.reshape(-1)`): records,
    `[{"variable": 0.21}, ...]`; the plugin answers a table, which the host writes as records;
  * `instances`/`inputs`: a dict of the output arrays, even for one output,
    `{"variable": [[0.21], ...]}`; the plugin answers named tensors, written as a dict;
  * classifiers, frames: HTTP 400 "All arrays must be of the same length" (labels, one per row,
    and probabilities, three per row, cannot make a DataFrame); wasmflow answers the dict it
    answers for `instances` instead.
"""

from __future__ import annotations

import json

import mlflow
import mlflow.onnx
import numpy as np
import pytest
import requests
from mlflow_answer import assert_same_answer, mlflow_answer
from sklearn.datasets import load_iris
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.neural_network import MLPClassifier, MLPRegressor

onnx = pytest.importorskip("onnx")

onnxruntime = pytest.importorskip("onnxruntime")
skl2onnx = pytest.importorskip("skl2onnx")

TOLERANCE = 1e-5
# The first call may compile the plugin (a large component: tract) and load the model.
TIMEOUT = 180
COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def _iris():
    x, y = load_iris(return_X_y=True)
    return x, y


# name -> (estimator, which features, target, is classifier)
def _estimators():
    x, y = _iris()
    return {
        "linreg": (LinearRegression(), x[:, :3], x[:, 3], False),
        "logreg": (LogisticRegression(max_iter=1000), x, y, True),
        # The "small MLP": two hidden layers, MatMul/Add/Relu (and Softmax, ArgMax,
        # ArrayFeatureExtractor for the classifier).
        "mlp_regressor": (
            MLPRegressor(hidden_layer_sizes=(32, 16), max_iter=2000, random_state=0),
            x[:, :3],
            x[:, 3],
            False,
        ),
        "mlp_classifier": (
            MLPClassifier(hidden_layer_sizes=(32, 16), max_iter=2000, random_state=0),
            x,
            y,
            True,
        ),
    }


class Served:
    def __init__(self, name, onx, features, classifier, registered):
        self.name = name
        self.onx = onx
        self.features = features  # float64, as JSON carries them
        self.classifier = classifier
        self.registered = registered
        self.session = onnxruntime.InferenceSession(
            onx.SerializeToString(), providers=["CPUExecutionProvider"]
        )
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        # MLflow's own pyfunc for the registered model, for what its scoring server answers.
        self.pyfunc = mlflow.pyfunc.load_model(f"models:/{registered}/1")

    def expected(self, rows):
        """onnxruntime's outputs for these rows, fed as MLflow's wrapper feeds them (float32)."""
        feed = {self.input_name: np.asarray(rows, dtype=np.float32)}
        return dict(zip(self.output_names, self.session.run(None, feed)))

    @property
    def columns(self):
        return COLUMNS[: self.features.shape[1]]


@pytest.fixture(scope="module")
def served(server):
    """Trains, converts, logs and registers the four models once for this module."""
    mlflow.set_tracking_uri(server.url)
    client = mlflow.MlflowClient(tracking_uri=server.url)
    exp_id = client.create_experiment(f"onnx-flavor-{np.random.default_rng().integers(1 << 40):x}")
    mlflow.set_experiment(experiment_id=exp_id)
    models = {}
    for name, (estimator, x, y, classifier) in _estimators().items():
        estimator.fit(x, y)
        x32 = x.astype(np.float32)
        options = {"zipmap": False} if classifier else None
        onx = skl2onnx.to_onnx(estimator, x32[:1], options=options)
        registered = f"onnx-{name}-{exp_id}"
        with mlflow.start_run():
            info = mlflow.onnx.log_model(
                onx, name="model", input_example=x32[:3], registered_model_name=registered
            )
        assert str(info.registered_model_version) == "1"
        models[name] = Served(name, onx, x, classifier, registered)
    while mlflow.active_run() is not None:
        mlflow.end_run()
    return models


def _url(server, name, version="1"):
    return f"{server.url}/serving/models/{name}/{version}/invocations"


def _post_raw(server, model, body, content_type="application/json", version="1"):
    data = body if isinstance(body, str) else json.dumps(body)
    r = requests.post(
        _url(server, model.registered, version),
        data=data,
        headers={"Content-Type": content_type},
        timeout=TIMEOUT,
    )
    assert r.status_code == 200, f"{r.status_code}: {r.text[:2000]}"
    assert r.headers["Content-Type"] == "application/json", r.headers
    return r.text


def _post(server, model, body, content_type="application/json", version="1"):
    return json.loads(_post_raw(server, model, body, content_type, version))["predictions"]


def _payloads(model, rows):
    cols = model.columns
    data = rows.tolist()
    csv = ",".join(cols) + "\n" + "\n".join(",".join(repr(v) for v in row) for row in data) + "\n"
    return {
        "dataframe_split": ({"dataframe_split": {"columns": cols, "data": data}}, "frame"),
        "dataframe_records": (
            {"dataframe_records": [dict(zip(cols, row)) for row in data]},
            "frame",
        ),
        "csv": (csv, "frame"),
        "instances": ({"instances": data}, "tensors"),
        "inputs": ({"inputs": data}, "tensors"),
        "inputs_by_name": ({"inputs": {model.input_name: data}}, "tensors"),
    }


def _as_arrays(model, predictions, kind, rows):
    """The predictions as {output: array}, checking that they have MLflow's shape."""
    n = len(rows)
    if kind == "frame" and not model.classifier:
        # A DataFrame: records, one per row, holding each output's value.
        assert isinstance(predictions, list) and len(predictions) == n, predictions
        assert all(list(r) == model.output_names for r in predictions), predictions[:2]
        return {o: np.array([r[o] for r in predictions]) for o in model.output_names}
    # A dict of the output arrays, with their full shapes.
    assert isinstance(predictions, dict), predictions
    assert list(predictions) == model.output_names, predictions.keys()
    return {o: np.array(predictions[o]) for o in model.output_names}


def _compare(model, got, rows, flattened):
    expected = model.expected(rows)
    for name, want in expected.items():
        have = got[name]
        if flattened:
            want = want.reshape(-1)
        assert have.shape == want.shape, (name, have.shape, want.shape)
        if want.dtype.kind in "iub":
            np.testing.assert_array_equal(have, want, err_msg=f"{model.name}.{name}")
        else:
            np.testing.assert_allclose(have, want, rtol=0, atol=TOLERANCE, err_msg=f"{model.name}.{name}")


def test_the_onnx_plugin_is_builtin(server):
    r = requests.get(f"{server.url}/api/2.0/wasmflow/plugins", timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    plugins = {p["name"]: p for p in r.json()["plugins"]}
    assert "onnx" in plugins, plugins
    assert plugins["onnx"]["loads"] == ["onnx"]
    assert plugins["onnx"]["builtin"] is True


@pytest.mark.parametrize("name", ["linreg", "logreg", "mlp_regressor", "mlp_classifier"])
@pytest.mark.parametrize(
    "payload", ["dataframe_split", "dataframe_records", "csv", "instances", "inputs", "inputs_by_name"]
)
def test_predictions_match_onnxruntime(server, served, name, payload):
    model = served[name]
    rows = model.features[::7]  # 22 rows across all three classes
    body, kind = _payloads(model, rows)[payload]
    content_type = "text/csv" if payload == "csv" else "application/json"
    ours = _post_raw(server, model, body, content_type)
    got = _as_arrays(model, json.loads(ours)["predictions"], kind, rows)
    # A frame's answer holds each output flattened into a column (MLflow's `p.reshape(-1)`).
    _compare(model, got, rows, flattened=(kind == "frame" and not model.classifier))

    # The same bytes as MLflow's scoring server, up to float32 rounding between tract and
    # onnxruntime (labels and shapes identical).
    status, theirs = mlflow_answer(model.pyfunc, body, content_type)
    if model.classifier and kind == "frame":
        assert status == 400 and "same length" in theirs, (status, theirs[:300])
        return
    assert status == 200, theirs[:2000]
    assert_same_answer(ours, theirs, rtol=1e-6, atol=1e-6)


def test_one_row_and_many_rows(server, served):
    """The plan is symbolic in the batch size: one row, then every row, then one again."""
    model = served["mlp_classifier"]
    for rows in [model.features[:1], model.features, model.features[-1:]]:
        predictions = _post(server, model, {"instances": rows.tolist()})
        _compare(model, _as_arrays(model, predictions, "tensors", rows), rows, flattened=False)


def test_alias_serves_the_same_model(server, served):
    model = served["logreg"]
    mlflow.MlflowClient(tracking_uri=server.url).set_registered_model_alias(
        model.registered, "champion", "1"
    )
    rows = model.features[:5]
    predictions = _post(server, model, {"instances": rows.tolist()}, version="champion")
    _compare(model, _as_arrays(model, predictions, "tensors", rows), rows, flattened=False)


def test_the_wrong_number_of_features_is_a_bad_request(server, served):
    model = served["logreg"]
    body = {"dataframe_split": {"columns": ["a", "b"], "data": [[1.0, 2.0]]}}
    r = requests.post(_url(server, model.registered), json=body, timeout=TIMEOUT)
    assert r.status_code == 400, r.text
    err = r.json()
    # MLflow's scoring server says BAD_REQUEST for a model that fails on its input.
    assert err["error_code"] in ("BAD_REQUEST", "INVALID_PARAMETER_VALUE"), err
    assert "X" in err["message"], err


def test_zipmap_classifiers_are_refused_with_a_hint(server, served, unique_name):
    """skl2onnx's default ZipMap output (a list of dicts) has no tensor form in tract."""
    x, y = _iris()
    estimator = LogisticRegression(max_iter=1000).fit(x, y)
    onx = skl2onnx.to_onnx(estimator, x[:1].astype(np.float32))
    registered = unique_name("onnx-zipmap")
    with mlflow.start_run():
        mlflow.onnx.log_model(onx, name="model", registered_model_name=registered)
    r = requests.post(
        _url(server, registered), json={"instances": x[:2].tolist()}, timeout=TIMEOUT
    )
    assert 400 <= r.status_code < 600 and r.status_code != 404, f"{r.status_code}: {r.text}"
    assert "zipmap" in r.text.lower(), r.text


def test_external_data_beside_the_model_is_read(server, served, unique_name):
    """mlflow.onnx.save_model moves raw tensors of 1 KiB or more into a side file; the plugin
    reads it from the model directory the host mounts. (skl2onnx writes its weights as
    float_data, which stays inline, so this model is made by hand.)"""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(7)
    w = rng.normal(size=(32, 32)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["X", "W"], ["Y"])],
        "external",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 32])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 32])],
        [numpy_helper.from_array(w, "W")],
    )
    onx = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    registered = unique_name("onnx-external")
    with mlflow.start_run():
        info = mlflow.onnx.log_model(onx, name="model", registered_model_name=registered)
    files = {a.path.split("/")[-1] for a in mlflow.artifacts.list_artifacts(info.model_uri)}
    assert "model.onnx" in files and len(files - {"model.onnx", "MLmodel", "conda.yaml",
        "python_env.yaml", "requirements.txt", "registered_model_meta"}) >= 1, files

    x = rng.normal(size=(3, 32))
    r = requests.post(_url(server, registered), json={"instances": x.tolist()}, timeout=TIMEOUT)
    assert r.status_code == 200, f"{r.status_code}: {r.text[:2000]}"
    got = np.array(r.json()["predictions"]["Y"])  # a dict of the output arrays, as MLflow
    np.testing.assert_allclose(got, x.astype(np.float32) @ w, rtol=0, atol=1e-4)
