"""LightGBM boosters logged with `mlflow.lightgbm.log_model` and served by the builtin plugin.

Each test trains a small `lgb.Booster` with `lgb.train`, logs and registers it with the official
client, then scores it over `/serving/models/<name>/<version>/invocations` with MLflow's scoring
protocol (dataframe_split, dataframe_records, text/csv) and compares with `booster.predict`:
MLflow's pyfunc for lightgbm returns `booster.predict(df)`, a 1-D array for regression and
binary objectives and a [rows, classes] array for multiclass ones, which MLflow's scoring server
writes as a list (of lists). Each answer is also compared with what MLflow's own scoring server
answers for the same registered model and payload (`mlflow_answer`: its parsing, the lightgbm
pyfunc, `predictions_to_json`): the same bytes, or the same JSON with floats within 1e-6
relative and formatted as Python formats them.
"""

from __future__ import annotations

import io
import json
import math

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests
from mlflow_answer import assert_same_answer, mlflow_answer

lgb = pytest.importorskip("lightgbm")

PARAMS = {"num_leaves": 15, "min_data_in_leaf": 5, "verbose": -1, "seed": 1, "deterministic": True}


def _frame(rng, rows: int, nan_fraction: float = 0.0, categorical: bool = False) -> pd.DataFrame:
    x = rng.normal(size=(rows, 4))
    if nan_fraction:
        x[rng.random(x.shape) < nan_fraction] = np.nan
    frame = pd.DataFrame(x, columns=["alpha", "beta", "gamma", "delta"])
    if categorical:
        # An integer-coded categorical feature: LightGBM splits on sets of its values.
        frame["color"] = rng.integers(0, 8, size=rows)
    return frame


def _cell(v):
    """A JSON cell: Python's repr of a float round-trips exactly; NaN is sent as null."""
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return None if math.isnan(v) else float(v)
    return v


def _payloads(frame: pd.DataFrame) -> dict[str, tuple[str, str]]:
    """The same rows in each request format: name -> (content type, body)."""
    rows = [[_cell(v) for v in row] for row in frame.astype(object).itertuples(index=False)]
    split = {"dataframe_split": {"columns": list(frame.columns), "data": rows}}
    records = {"dataframe_records": [dict(zip(frame.columns, row)) for row in rows]}
    csv = io.StringIO()
    frame.to_csv(csv, index=False)  # floats at full precision, NaN as an empty field
    # As `json.dumps` (and so `requests`) writes a frame holding NaN: the token NaN, which
    # MLflow's server reads as a missing value.
    tokens = [
        [int(v) if isinstance(v, (int, np.integer)) else float(v) for v in row]
        for row in frame.astype(object).itertuples(index=False)
    ]
    split_tokens = {"dataframe_split": {"columns": list(frame.columns), "data": tokens}}
    return {
        "dataframe_split": ("application/json", json.dumps(split)),
        "dataframe_split_nan_tokens": ("application/json", json.dumps(split_tokens)),
        "dataframe_records": ("application/json", json.dumps(records)),
        "csv": ("text/csv", csv.getvalue()),
    }


def _invoke(base_url: str, name: str, version: str, content_type: str, body: str) -> requests.Response:
    return requests.post(
        f"{base_url}/serving/models/{name}/{version}/invocations",
        data=body.encode(),
        headers={"Content-Type": content_type},
        timeout=120,
    )


def _log(booster, frame: pd.DataFrame, name: str):
    with mlflow.start_run():
        return mlflow.lightgbm.log_model(
            booster, name="model", input_example=frame.head(5), registered_model_name=name
        )


def _check_served(base_url: str, name: str, booster, probe: pd.DataFrame, version: str = "1"):
    expected = np.asarray(booster.predict(probe))
    uri = f"models:/{name}/{version}" if version.isdigit() else f"models:/{name}@{version}"
    pyfunc = mlflow.pyfunc.load_model(uri)
    for kind, (content_type, body) in _payloads(probe).items():
        r = _invoke(base_url, name, version, content_type, body)
        assert r.status_code == 200, f"{kind}: HTTP {r.status_code}: {r.text[:500]}"
        assert r.headers["Content-Type"] == "application/json", r.headers
        got = np.asarray(r.json()["predictions"], dtype=np.float64)
        assert got.shape == expected.shape, f"{kind}: shape {got.shape}, booster.predict {expected.shape}"
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6, err_msg=kind)
        status, theirs = mlflow_answer(pyfunc, body, content_type)
        assert status == 200, f"{kind}: MLflow answers {status}: {theirs[:500]}"
        assert_same_answer(r.text, theirs, rtol=1e-6)


def test_lightgbm_plugin_is_builtin(base_url):
    r = requests.get(f"{base_url}/api/2.0/wasmflow/plugins", timeout=30)
    assert r.status_code == 200, r.text
    plugins = {p["name"]: p for p in r.json()["plugins"]}
    assert "lightgbm" in plugins, sorted(plugins)
    assert plugins["lightgbm"]["loads"] == ["lightgbm"]
    assert plugins["lightgbm"]["builtin"] is True


def test_regression_with_nan(base_url, client, experiment_id, unique_name):
    rng = np.random.default_rng(10)
    train = _frame(rng, 500)
    y = 2 * train.alpha - train.beta + 0.5 * train.gamma**2 + rng.normal(scale=0.1, size=500)
    train[rng.random(train.shape) < 0.15] = np.nan  # missing values learned as NaN splits
    booster = lgb.train({**PARAMS, "objective": "regression"}, lgb.Dataset(train, y), 40)

    name = unique_name("lgbm-reg")
    info = _log(booster, train, name)
    assert int(info.registered_model_version) == 1  # a string over REST, as from MLflow's server

    probe = _frame(rng, 40, nan_fraction=0.2)
    probe.iloc[0] = np.nan  # a row with every feature missing
    probe.iloc[1] = 0.0
    _check_served(base_url, name, booster, probe)

    # The same version through an alias.
    client.set_registered_model_alias(name, "champion", "1")
    _check_served(base_url, name, booster, probe.head(7), version="champion")


def test_binary_with_categorical_feature(base_url, experiment_id, unique_name):
    rng = np.random.default_rng(11)
    train = _frame(rng, 800, nan_fraction=0.1, categorical=True)
    logit = train.alpha.fillna(0) + 1.5 * train.color.isin([1, 4, 6]) - 2 * (train.color == 7)
    y = (logit + rng.normal(scale=0.3, size=800) > 0.3).astype(int)
    booster = lgb.train(
        {**PARAMS, "objective": "binary", "cat_smooth": 1, "min_data_per_group": 5},
        lgb.Dataset(train, y, categorical_feature=["color"]),
        30,
    )
    assert "cat_threshold" in booster.model_to_string(), "the trees split on the categorical feature"

    name = unique_name("lgbm-bin")
    _log(booster, train, name)

    probe = _frame(rng, 40, nan_fraction=0.1, categorical=True)
    probe.loc[0:8, "color"] = [0, 1, 4, 6, 7, 8, 31, 100, 2]  # includes unseen categories
    _check_served(base_url, name, booster, probe)
    preds = np.asarray(booster.predict(probe))
    assert ((preds > 0) & (preds < 1)).all(), "binary outputs are probabilities"


def test_multiclass_probabilities(base_url, experiment_id, unique_name):
    rng = np.random.default_rng(12)
    train = _frame(rng, 600, nan_fraction=0.05)
    score = train.alpha.fillna(0) + 0.5 * train.beta.fillna(0)
    y = np.digitize(score, [-0.6, 0.6])
    booster = lgb.train({**PARAMS, "objective": "multiclass", "num_class": 3}, lgb.Dataset(train, y), 20)

    name = unique_name("lgbm-multi")
    _log(booster, train, name)

    probe = _frame(rng, 30, nan_fraction=0.1)
    _check_served(base_url, name, booster, probe)
    r = _invoke(base_url, name, "1", *_payloads(probe.head(3))["dataframe_split"])
    probabilities = np.asarray(r.json()["predictions"])
    assert probabilities.shape == (3, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-9)


def test_missing_column_is_a_bad_request(base_url, experiment_id, unique_name):
    rng = np.random.default_rng(13)
    train = _frame(rng, 200)
    booster = lgb.train({**PARAMS, "objective": "regression"}, lgb.Dataset(train, train.alpha * 2), 5)
    name = unique_name("lgbm-missing")
    _log(booster, train, name)

    body = json.dumps({"dataframe_split": {"columns": ["alpha", "beta"], "data": [[0.1, 0.2]]}})
    r = _invoke(base_url, name, "1", "application/json", body)
    assert r.status_code == 400, r.text
    assert "message" in r.json()


def test_sklearn_api_models_are_served_like_the_estimator(base_url, experiment_id, unique_name):
    # mlflow saves models of LightGBM's scikit-learn API with skops (its default); the plugin reads
    # the booster inside the skops file (test_framework_flavors.py covers them against MLflow).
    rng = np.random.default_rng(14)
    train = _frame(rng, 200)
    model = lgb.LGBMRegressor(n_estimators=5, verbose=-1).fit(train, train.alpha * 2)
    name = unique_name("lgbm-sklearn")
    with mlflow.start_run():
        mlflow.lightgbm.log_model(model, name="model", input_example=train.head(3), registered_model_name=name)

    probe = _frame(rng, 20, nan_fraction=0.1)
    for kind, (content_type, body) in _payloads(probe).items():
        r = _invoke(base_url, name, "1", content_type, body)
        assert r.status_code == 200, f"{kind}: HTTP {r.status_code}: {r.text[:300]}"
        np.testing.assert_allclose(r.json()["predictions"], model.predict(probe), rtol=1e-6, err_msg=kind)
