"""Serving: `wasmflow models serve` (one model, MLflow's scoring server protocol) and
`wasmflow models predict` on models logged and registered with the official client, the
multi-model path of `wasmflow server` under load while an alias moves, its memory budget, and
`/metrics`. Predictions are compared with the frameworks' own (onnxruntime, LightGBM)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import threading
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests
from mlflow import MlflowClient

from mlflow_answer import assert_same_answer, mlflow_answer
from conftest import PLUGIN_CACHE, ModelServer, free_port
from test_plugins import X, expected, plugin_file, records_to_rows, register, write_hostile_model, write_linear_model

lgb = pytest.importorskip("lightgbm")
onnxruntime = pytest.importorskip("onnxruntime")
skl2onnx = pytest.importorskip("skl2onnx")

LINEAR_PAYLOAD = {"dataframe_split": {"columns": ["x1", "x2"], "data": X}}


@pytest.fixture
def serve(wasmflow_bin, tmp_path, server):
    started = []

    def start(model_uri, *extra, env=None):
        s = ModelServer(wasmflow_bin, model_uri, tmp_path, *extra, env={"MLFLOW_TRACKING_URI": server.url, **(env or {})})
        started.append(s)
        return s.wait_ready()

    yield start
    for s in started:
        s.stop()


def _frame_payloads(frame: pd.DataFrame):
    rows = frame.to_numpy().tolist()
    csv = io.StringIO()
    frame.to_csv(csv, index=False)
    return {
        "dataframe_split": ({"dataframe_split": {"columns": list(frame.columns), "data": rows}}, "application/json"),
        "dataframe_records": ({"dataframe_records": frame.to_dict(orient="records")}, "application/json"),
        "csv": (csv.getvalue(), "text/csv"),
    }


def test_models_serve_an_onnx_model_like_onnxruntime(serve, unique_name, experiment_id):
    from sklearn.datasets import load_iris
    from sklearn.neural_network import MLPRegressor

    x, _ = load_iris(return_X_y=True)
    features, target = x[:, :3], x[:, 3]
    estimator = MLPRegressor(hidden_layer_sizes=(16,), max_iter=2000, random_state=0).fit(features, target)
    onx = skl2onnx.to_onnx(estimator, features[:1].astype(np.float32))
    name = unique_name("serve-onnx")
    with mlflow.start_run():
        mlflow.onnx.log_model(onx, name="model", registered_model_name=name)
    MlflowClient().set_registered_model_alias(name, "champion", "1")
    session = onnxruntime.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    rows = features[::5]
    want = session.run(None, {session.get_inputs()[0].name: rows.astype(np.float32)})[0].reshape(-1)

    s = serve(f"models:/{name}@champion")
    assert "listening on http://127.0.0.1" in s.logs() and "model loaded" in s.logs()
    assert requests.get(s.url + "/health", timeout=5).status_code == 200
    assert requests.get(s.url + "/version", timeout=5).text.strip()
    frame = pd.DataFrame(rows, columns=["a", "b", "c"])
    # As MLflow answers: a frame gets records (its ONNX pyfunc returns a DataFrame), a tensor
    # payload a dict of output arrays.
    for kind, (body, content_type) in _frame_payloads(frame).items():
        r = s.invoke(body, content_type)
        assert r.status_code == 200, (kind, r.text)
        got = [record["variable"] for record in r.json()["predictions"]]
        np.testing.assert_allclose(got, want, atol=1e-5, err_msg=kind)
    for body in ({"instances": rows.tolist()}, {"inputs": rows.tolist()}):
        r = s.invoke(body)
        assert r.status_code == 200, r.text
        predictions = r.json()["predictions"]
        assert list(predictions) == ["variable"], predictions
        np.testing.assert_allclose(np.ravel(predictions["variable"]), want, atol=1e-5)

    # Bad input, as MLflow's scoring server answers it.
    assert s.invoke("x", "text/plain").status_code == 415
    r = s.invoke("{not json")
    assert r.status_code == 400 and r.json()["error_code"] == "BAD_REQUEST", r.text
    r = s.invoke({"rows": []})
    assert r.status_code == 400 and r.json()["error_code"] == "BAD_REQUEST", r.text

    metrics = requests.get(s.url + "/metrics", timeout=5).text
    labels = f'model="{name}",version="1"'
    assert f"wasmflow_serving_requests_total{{{labels}}} 8" in metrics, metrics
    assert f"wasmflow_serving_errors_total{{{labels}}} 3" in metrics, metrics
    assert "wasmflow_serving_request_duration_seconds_bucket{" in metrics
    assert f"wasmflow_serving_pool_instances{{{labels}}}" in metrics


def test_models_serve_and_predict_a_lightgbm_model_like_the_booster(serve, wasmflow_bin, server, unique_name, experiment_id, tmp_path):
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(rng.normal(size=(300, 3)), columns=["a", "b", "c"])
    y = frame.a * 2 - frame.b + rng.normal(scale=0.1, size=300)
    booster = lgb.train({"objective": "regression", "verbose": -1, "num_leaves": 7}, lgb.Dataset(frame, y), 20)
    name = unique_name("serve-lgbm")
    with mlflow.start_run():
        mlflow.lightgbm.log_model(booster, name="model", input_example=frame.head(3), registered_model_name=name)
    MlflowClient().transition_model_version_stage(name, "1", "Production")
    probe = frame.head(25)
    want = booster.predict(probe)

    s = serve(f"models:/{name}/Production", "--workers", "2", "--timeout", "10")
    payloads = {
        **_frame_payloads(probe),
        # The tensor forms, which a column signature takes as records or as named columns.
        "instances": ({"instances": probe.to_dict(orient="records")}, "application/json"),
        "inputs": ({"inputs": probe.to_dict(orient="list")}, "application/json"),
    }
    for kind, (body, content_type) in payloads.items():
        r = s.invoke(body, content_type)
        assert r.status_code == 200, (kind, r.text)
        np.testing.assert_allclose(r.json()["predictions"], want, atol=1e-6, err_msg=kind)
    r = s.invoke({"dataframe_split": {"columns": ["a", "b"], "data": [[1.0, 2.0]]}})
    assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE", r.text
    assert "c" in r.json()["message"]

    # The same model through `models predict`, from a CSV file, over the server's REST API.
    csv = tmp_path / "input.csv"
    probe.to_csv(csv, index=False)
    out = tmp_path / "predictions.json"
    env = {**os.environ, "MLFLOW_TRACKING_URI": server.url, "WASMFLOW_PLUGIN_CACHE_DIR": str(PLUGIN_CACHE)}
    done = subprocess.run(
        [wasmflow_bin, "models", "predict", "-m", f"models:/{name}/latest", "-i", str(csv), "-t", "csv",
         "-o", str(out), "--plugins-dir", str(tmp_path / "plugins")],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    np.testing.assert_allclose(json.loads(out.read_text())["predictions"], want, atol=1e-6)
    # The file holds what `mlflow models predict` writes for the same model and input.
    pyfunc = mlflow.pyfunc.load_model(f"models:/{name}/latest")
    status, theirs = mlflow_answer(pyfunc, csv.read_text(), "text/csv")
    assert status == 200, theirs
    assert_same_answer(out.read_text(), theirs, rtol=1e-6)


def _predict(wasmflow_bin, model_uri, payload, tmp_path, env, *extra):
    done = subprocess.run(
        [wasmflow_bin, "models", "predict", "-m", model_uri, "--plugins-dir", str(tmp_path / "plugins"), *extra],
        input=json.dumps(payload), env=env, capture_output=True, text=True, timeout=300,
    )
    return done


def test_models_predict_resolves_every_model_uri_form(server, wasmflow_bin, tmp_path):
    name = "serving-predict-forms"
    version = register(tmp_path, name, write_linear_model(tmp_path / "model"))
    client = MlflowClient()
    client.set_registered_model_alias(name, "champion", version)
    client.transition_model_version_stage(name, version, "Staging")
    run_id = client.get_model_version(name, version).run_id
    remote = {**os.environ, "MLFLOW_TRACKING_URI": server.url, "WASMFLOW_PLUGIN_CACHE_DIR": str(PLUGIN_CACHE)}
    # The local store: the server's own database and artifact directory, with no server in between.
    local = {k: v for k, v in remote.items() if k != "MLFLOW_TRACKING_URI"}
    local_args = ["--backend-store-uri", server.backend_uri, "--artifacts-destination", str(server.artifacts_dir)]
    uris = [
        f"models:/{name}/{version}", f"models:/{name}@champion", f"models:/{name}/Staging",
        f"models:/{name}/latest", f"runs:/{run_id}/model",
    ]
    for uri in uris:
        for env, extra in ((remote, []), (local, local_args)):
            done = _predict(wasmflow_bin, uri, LINEAR_PAYLOAD, tmp_path, env, *extra)
            assert done.returncode == 0, (uri, done.stderr)
            assert np.allclose(records_to_rows(json.loads(done.stdout)["predictions"]), expected()), uri
    # A plain directory needs no store at all.
    done = _predict(wasmflow_bin, str(tmp_path / "model"), LINEAR_PAYLOAD, tmp_path, local)
    assert done.returncode == 0, done.stderr
    assert np.allclose(records_to_rows(json.loads(done.stdout)["predictions"]), expected())

    for uri, needle in [
        (f"models:/{name}@nope", "nope"),
        ("models:/no-such-model/1", "no-such-model"),
        (f"models:/{name}/7", "7"),
    ]:
        done = _predict(wasmflow_bin, uri, LINEAR_PAYLOAD, tmp_path, remote)
        assert done.returncode != 0 and needle in done.stderr, (uri, done.stderr)
    done = _predict(wasmflow_bin, f"models:/{name}/1", {"dataframe_split": {"columns": ["x1"], "data": [[1.0]]}}, tmp_path, remote)
    assert done.returncode != 0 and "x2" in done.stderr, done.stderr


def test_an_alias_moves_under_load_without_a_failed_request(server, tmp_path):
    name = "serving-alias-under-load"
    v1 = register(tmp_path, name, write_linear_model(tmp_path / "m1"))
    import test_plugins

    saved = test_plugins.COEFS
    try:
        test_plugins.COEFS = [[1.0, 1.0], [0.0, 0.0]]
        v2 = register(tmp_path, name, write_linear_model(tmp_path / "m2"))
        want_v2 = test_plugins.expected()
    finally:
        test_plugins.COEFS = saved
    want_v1 = expected()
    client = MlflowClient()
    client.set_registered_model_alias(name, "prod", v1)
    url = f"{server.url}/serving/models/{name}/prod/invocations"
    answers, failures = [], []
    stop = threading.Event()

    def send():
        with requests.Session() as http:
            while not stop.is_set():
                r = http.post(url, json=LINEAR_PAYLOAD, timeout=60)
                if r.status_code != 200:
                    failures.append(r.text)
                else:
                    rows = records_to_rows(r.json()["predictions"])
                    answers.append("v1" if np.allclose(rows, want_v1) else "v2" if np.allclose(rows, want_v2) else rows)

    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(1.0)
        client.set_registered_model_alias(name, "prod", v2)
        moved_at = len(answers)
        time.sleep(1.5)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert not failures, failures[:3]
    assert set(answers) <= {"v1", "v2"}, [a for a in answers if a not in ("v1", "v2")][:3]
    assert "v1" in answers[:moved_at] and answers[-1] == "v2", (moved_at, answers[-10:])
    # Once the move is seen, no request goes back to the old version.
    first_v2 = answers.index("v2")
    assert set(answers[first_v2 + 8 :]) == {"v2"}, answers[first_v2:]


def test_an_alias_is_served_at_every_spelling_the_ui_shows(server, tmp_path):
    name = "serving-alias-spellings"
    version = register(tmp_path, name, write_linear_model(tmp_path / "m"))
    MlflowClient().set_registered_model_alias(name, "champion", version)
    want = expected()
    for path in (f"{name}/champion", f"{name}/@champion", f"{name}@champion"):
        r = requests.post(f"{server.url}/serving/models/{path}/invocations", json=LINEAR_PAYLOAD, timeout=60)
        assert r.status_code == 200, (path, r.text)
        assert np.allclose(records_to_rows(r.json()["predictions"]), want), path
    r = requests.post(f"{server.url}/serving/models/{name}/invocations", json=LINEAR_PAYLOAD, timeout=60)
    assert r.status_code == 404 and r.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST", r.text
    assert f"/serving/models/{name}/invocations" in r.json()["message"]
    # A missing alias is refused as MLflow's registry refuses it.
    r = requests.post(f"{server.url}/serving/models/{name}@nobody/invocations", json=LINEAR_PAYLOAD, timeout=60)
    assert r.status_code == 400 and r.json()["message"] == "Registered model alias nobody not found.", r.text


def test_the_memory_budget_unloads_the_least_recently_used_version(isolated_server, tmp_path, monkeypatch):
    monkeypatch.setenv("WASMFLOW_SERVING_MEMORY_MIB", "1")
    srv = isolated_server(name="budget")
    # No fluent calls: the active experiment of other tests belongs to the shared server.
    client = MlflowClient(tracking_uri=srv.url)
    exp = client.create_experiment("budget")
    for n in ("a", "b"):
        run = client.create_run(exp)
        client.log_artifacts(run.info.run_id, str(write_linear_model(tmp_path / n)), "model")
        client.create_registered_model(f"budget-{n}")
        client.create_model_version(f"budget-{n}", f"runs:/{run.info.run_id}/model", run.info.run_id)
    for n in ("a", "b", "a"):
        r = requests.post(f"{srv.url}/serving/models/budget-{n}/1/invocations", json=LINEAR_PAYLOAD, timeout=60)
        assert r.status_code == 200, r.text
        assert np.allclose(records_to_rows(r.json()["predictions"]), expected())
    metrics = requests.get(srv.url + "/metrics", timeout=5).text
    assert "wasmflow_serving_evictions_total 2" in metrics, metrics
    # Only the version used last keeps a pool; the other kept its request count.
    assert 'wasmflow_serving_pool_instances{model="budget-a",version="1"}' in metrics
    assert 'wasmflow_serving_pool_instances{model="budget-b"' not in metrics
    assert 'wasmflow_serving_requests_total{model="budget-b",version="1"} 1' in metrics
    assert "unloaded model 'budget-a' version 1" in srv.log_tail(200)


def test_a_hostile_model_served_alone_times_out_and_the_server_stays_up(serve, wasmflow_bin, tmp_path):
    model = write_hostile_model(tmp_path / "loop", "loop")
    # `models serve` reads installed plugins from its own directory: install there too.
    env = {**os.environ, "WASMFLOW_PLUGIN_CACHE_DIR": str(PLUGIN_CACHE)}
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run(
        [wasmflow_bin, "plugins", "--plugins-dir", str(tmp_path / "serve-plugins"), "install",
         str(plugin_file("wasmflow_testing_hostile.wasm"))],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    s = serve(str(model), "--timeout", "1")
    started = time.monotonic()
    r = s.invoke({"dataframe_split": {"columns": ["x"], "data": [[1.0]]}})
    assert r.status_code == 503 and r.json()["error_code"] == "TEMPORARILY_UNAVAILABLE", r.text
    assert "deadline" in r.json()["message"]
    assert time.monotonic() - started < 30
    assert requests.get(s.url + "/ping", timeout=5).status_code == 200


def test_models_serve_refuses_a_model_it_cannot_load(wasmflow_bin, tmp_path):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "MLmodel").write_text("flavors:\n  no_such_flavor: {}\n")
    env = {**os.environ, "WASMFLOW_PLUGIN_CACHE_DIR": str(PLUGIN_CACHE)}
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run(
        [wasmflow_bin, "models", "serve", "-m", str(tmp_path / "broken"), "-p", str(free_port()),
         "--plugins-dir", str(tmp_path / "plugins")],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode != 0
    assert "no_such_flavor" in done.stderr, done.stderr


def test_a_model_the_plugin_does_not_support_is_a_400_naming_the_problem(server, wasmflow_bin, unique_name, experiment_id, tmp_path):
    """The onnx plugin refuses a ZipMap classifier when it loads it (Error::unsupported): a 400
    in MLflow's error shape from `/serving/...`, one line from `models predict` and `models serve`
    (which, like `mlflow models serve`, stops when the model cannot be loaded)."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    onx = skl2onnx.to_onnx(LogisticRegression(max_iter=1000).fit(x, y), x[:1].astype(np.float32))
    name = unique_name("unsupported-zipmap")
    with mlflow.start_run():
        mlflow.onnx.log_model(onx, name="model", registered_model_name=name)
    payload = {"instances": x[:2].tolist()}

    r = requests.post(f"{server.url}/serving/models/{name}/1/invocations", json=payload, timeout=300)
    assert r.status_code == 400, f"{r.status_code}: {r.text}"
    err = r.json()
    assert {"error_code", "message"} <= set(err), err
    assert err["error_code"] == "INVALID_PARAMETER_VALUE", err
    assert "plugin 'onnx'" in err["message"] and "zipmap" in err["message"].lower(), err

    env = {**os.environ, "MLFLOW_TRACKING_URI": server.url, "WASMFLOW_PLUGIN_CACHE_DIR": str(PLUGIN_CACHE)}
    # What a user sees (RUST_BACKTRACE would add the error's backtrace).
    env.pop("RUST_BACKTRACE", None)
    env.pop("RUST_LIB_BACKTRACE", None)
    done = _predict(wasmflow_bin, f"models:/{name}/1", payload, tmp_path, env)
    assert done.returncode != 0 and not done.stdout, done
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "zipmap" in lines[0].lower() and "plugin 'onnx'" in lines[0], done.stderr

    port = free_port()
    done = subprocess.run(
        [wasmflow_bin, "models", "serve", "-m", f"models:/{name}/1", "-p", str(port),
         "--plugins-dir", str(tmp_path / "plugins")],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode != 0, done
    errors = [line for line in done.stderr.splitlines() if "zipmap" in line.lower()]
    assert len(errors) == 1 and "cannot load the model" in errors[0], done.stderr
