"""MLflow 3 logged models: log a tiny sklearn model through the server, load it back, predict."""

from __future__ import annotations

import mlflow
import mlflow.pyfunc
import mlflow.sklearn
import numpy as np
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression


@pytest.fixture
def data():
    rng = np.random.default_rng(42)
    X = rng.normal(size=(60, 3))
    y_cls = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    y_reg = X @ np.array([1.5, -2.0, 0.25]) + 3.0
    return X, y_cls, y_reg


def test_log_and_load_logistic_regression(client, experiment_id, data):
    X, y, _ = data
    model = LogisticRegression().fit(X, y)
    with mlflow.start_run() as run:
        mlflow.log_param("C", model.C)
        info = mlflow.sklearn.log_model(model, name="model", input_example=X[:2])
    run_id = run.info.run_id

    assert info.model_id, "MLflow 3 returns the LoggedModel id"
    assert info.run_id == run_id
    assert info.model_uri == f"models:/{info.model_id}"

    loaded = mlflow.pyfunc.load_model(info.model_uri)
    np.testing.assert_array_equal(np.asarray(loaded.predict(X)), model.predict(X))

    native = mlflow.sklearn.load_model(info.model_uri)
    np.testing.assert_allclose(native.predict_proba(X), model.predict_proba(X))

    # The signature was inferred from the input example, which was stored with the model.
    schema = loaded.metadata.get_input_schema()
    assert schema is not None and len(schema.inputs) >= 1
    assert loaded.metadata.saved_input_example_info is not None


def test_logged_model_entity(client, experiment_id, data):
    X, _, y = data
    model = LinearRegression().fit(X, y)
    with mlflow.start_run() as run:
        info = mlflow.sklearn.log_model(model, name="linreg", input_example=X[:2])

    lm = mlflow.get_logged_model(info.model_id)
    assert lm.model_id == info.model_id
    assert lm.name == "linreg"
    assert lm.experiment_id == experiment_id
    assert lm.source_run_id == run.info.run_id
    assert str(lm.status).endswith("READY"), lm.status
    assert lm.artifact_location, "a logged model has an artifact location"

    # The model's artifacts are listable on the server.
    paths = {f.path for f in client.list_logged_model_artifacts(info.model_id)}
    assert "MLmodel" in paths, paths
    # The serialized estimator: model.skops (MLflow 3.x default) or model.pkl (pickle format).
    assert paths & {"model.skops", "model.pkl"}, paths

    found = mlflow.search_logged_models(experiment_ids=[experiment_id], output_format="list")
    assert [m.model_id for m in found] == [info.model_id]
    by_name = mlflow.search_logged_models(
        experiment_ids=[experiment_id], filter_string="name = 'linreg'", output_format="list"
    )
    assert [m.model_id for m in by_name] == [info.model_id]
    none = mlflow.search_logged_models(
        experiment_ids=[experiment_id], filter_string="name = 'nope'", output_format="list"
    )
    assert none == []
    df = mlflow.search_logged_models(experiment_ids=[experiment_id])
    assert list(df["model_id"]) == [info.model_id]

    # The run lists the model among its outputs.
    outputs = client.get_run(run.info.run_id).outputs
    assert outputs is not None
    assert [o.model_id for o in outputs.model_outputs] == [info.model_id]


def test_load_by_runs_uri(client, experiment_id, data):
    X, _, y = data
    model = LinearRegression().fit(X, y)
    with mlflow.start_run() as run:
        mlflow.sklearn.log_model(model, name="model", input_example=X[:2])
    loaded = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    np.testing.assert_allclose(np.asarray(loaded.predict(X)), model.predict(X))


def test_logged_model_params_and_metrics(client, experiment_id, data):
    X, y, _ = data
    model = LogisticRegression(C=0.5).fit(X, y)
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(model, name="scored", params={"C": "0.5"})
        mlflow.log_metric("accuracy", float(model.score(X, y)), model_id=info.model_id)
    lm = mlflow.get_logged_model(info.model_id)
    assert lm.params == {"C": "0.5"}
    assert [(m.key, m.value) for m in lm.metrics] == [("accuracy", float(model.score(X, y)))]


def test_run_metrics_logged_before_the_model_are_linked_to_it(client, experiment_id, data):
    # MLflow's `Model.log` logs the run's points at the model's step (0) again with the model's
    # id, so the model (and MLflow's UI: the logged model page, the run's "Models" column) shows
    # the metrics its run logged before it; the run keeps its history.
    X, y, _ = data
    model = LogisticRegression().fit(X, y)
    with mlflow.start_run() as run:
        for step in range(3):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        mlflow.log_metric("acc", 0.9)
        info = mlflow.sklearn.log_model(model, name="linked")
    lm = mlflow.get_logged_model(info.model_id)
    assert sorted((m.key, m.value, m.step, m.run_id) for m in lm.metrics) == [
        ("acc", 0.9, 0, run.info.run_id),
        ("loss", 1.0, 0, run.info.run_id),
    ]
    assert [m.value for m in client.get_metric_history(run.info.run_id, "loss")] == [1.0, 0.5, 1.0 / 3]
    found = mlflow.search_logged_models(experiment_ids=[experiment_id], filter_string="metrics.loss = 1.0", output_format="list")
    assert info.model_id in [m.model_id for m in found]
