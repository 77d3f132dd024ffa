"""A first start on a new machine: `wasmflow server` with an empty compile cache and an empty
working directory listens and answers `/health` at once (it compiles no plugin to start), and
the first `/serving/...` prediction of an ONNX model compiles the ONNX plugin then and succeeds.
Also checks that the compile logged its progress and that `/metrics` counts it as a miss."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time

import mlflow
import mlflow.onnx
import numpy as np
import pytest
import requests
from conftest import ServerProcess
from sklearn.datasets import load_iris
from sklearn.linear_model import LinearRegression

skl2onnx = pytest.importorskip("skl2onnx")

# Generous for a loaded 2-core machine; the measured time is printed.
HEALTH_WITHIN = 2.0
# The first prediction compiles the ONNX plugin (tens of seconds on a small machine).
FIRST_PREDICTION_TIMEOUT = 300


class ColdServer(ServerProcess):
    """A server started from `workdir` with its own, empty, plugin cache."""

    def __init__(self, binary, store_dir, workdir, cache_dir):
        super().__init__(binary, store_dir, name="cold")
        self.workdir = workdir
        self.cache_dir = cache_dir

    def command(self):
        return super().command() + ["--plugin-cache-dir", str(self.cache_dir)]

    def spawn(self):
        self._log_file = open(self.log_path, "ab")
        env = dict(os.environ)
        env.pop("WASMFLOW_PLUGIN_CACHE_DIR", None)
        env.setdefault("RUST_BACKTRACE", "1")
        self.proc = subprocess.Popen(
            self.command(),
            cwd=self.workdir,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )


def _onnx_model():
    x, _ = load_iris(return_X_y=True)
    features, target = x[:, :3].astype(np.float32), x[:, 3]
    estimator = LinearRegression().fit(features, target)
    onx = skl2onnx.to_onnx(estimator, features[:1])
    return onx, features, estimator


def _metric(text, name):
    match = re.search(rf"^{name}(?:_total)? (\d+)", text, re.M)
    assert match, f"no {name} in /metrics:\n{text}"
    return int(match.group(1))


def test_health_answers_at_once_and_onnx_compiles_on_first_prediction(
    tmp_path, wasmflow_bin, monkeypatch
):
    workdir = tmp_path / "workdir"
    workdir.mkdir()
    cache = tmp_path / "cache"
    srv = ColdServer(wasmflow_bin, tmp_path / "store", workdir, cache)
    spawned = time.monotonic()
    srv.spawn()
    try:
        first_ok = None
        while time.monotonic() - spawned < 30:
            assert srv.proc.poll() is None, f"the server exited:\n{srv.log_tail()}"
            try:
                if requests.get(srv.url + "/health", timeout=1).status_code == 200:
                    first_ok = time.monotonic() - spawned
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.005)
        assert first_ok is not None, f"/health never answered:\n{srv.log_tail()}"
        print(f"\ncold start: spawn to the first /health 200 in {first_ok * 1e3:.0f} ms")
        assert first_ok < HEALTH_WITHIN, f"{first_ok:.3f} s to /health:\n{srv.log_tail()}"
        # Listening compiled nothing: the cache holds no code yet, the metrics no compile.
        assert not list(cache.glob("*.cwasm")), list(cache.iterdir())
        metrics = requests.get(srv.url + "/metrics", timeout=5).text
        assert _metric(metrics, "wasmflow_plugin_cache_misses") == 0, metrics
        # Listing the plugins compiles nothing either.
        plugins = requests.get(srv.url + "/api/2.0/wasmflow/plugins", timeout=5).json()["plugins"]
        assert {"onnx", "linear"} <= {p["name"] for p in plugins}, plugins
        assert not list(cache.glob("*.cwasm"))

        monkeypatch.setenv("MLFLOW_TRACKING_URI", srv.url)
        mlflow.set_tracking_uri(srv.url)
        onx, features, estimator = _onnx_model()
        name = f"cold-onnx-{time.time_ns():x}"
        # This server's own experiment: an experiment id an earlier test made active in the
        # fluent API names nothing here.
        mlflow.set_experiment(name)
        with mlflow.start_run():
            mlflow.onnx.log_model(onx, name="model", registered_model_name=name)

        started = time.monotonic()
        r = requests.post(
            f"{srv.url}/serving/models/{name}/1/invocations",
            json={"inputs": features[:5].tolist()},
            timeout=FIRST_PREDICTION_TIMEOUT,
        )
        took = time.monotonic() - started
        print(f"cold start: first ONNX prediction (compiling the plugin) in {took:.1f} s")
        assert r.status_code == 200, r.text
        (outputs,) = r.json()["predictions"].values()
        np.testing.assert_allclose(
            np.array(outputs).reshape(-1), estimator.predict(features[:5]), atol=1e-4
        )
        # Exactly one plugin was compiled (the ONNX one), and it is now in the cache.
        assert len(list(cache.glob("*.cwasm"))) == 1, list(cache.iterdir())
        metrics = requests.get(srv.url + "/metrics", timeout=5).text
        assert _metric(metrics, "wasmflow_plugin_cache_misses") == 1, metrics
        assert _metric(metrics, "wasmflow_plugin_cache_hits") == 0, metrics
        log = srv.log_tail(400)
        assert "compiling plugin 'onnx'" in log, log
        assert "compiled plugin 'onnx'" in log, log
    finally:
        srv.stop()
        mlflow.set_tracking_uri(None)


def test_models_predict_says_once_that_it_compiles_and_compiles_only_its_plugin(tmp_path, wasmflow_bin):
    from test_plugins import X, expected, records_to_rows, write_linear_model

    model = write_linear_model(tmp_path / "model")
    cache = tmp_path / "cache"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "WASMFLOW_"))}
    command = [wasmflow_bin, "models", "predict", "-m", str(model), "--plugins-dir", str(tmp_path / "plugins"),
               "--plugin-cache-dir", str(cache)]
    payload = json.dumps({"dataframe_split": {"columns": ["x1", "x2"], "data": X}})

    def predict():
        done = subprocess.run(command, input=payload, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert np.allclose(records_to_rows(json.loads(done.stdout)["predictions"]), expected())
        return done.stderr

    first = predict()
    # One line, naming the plugin and where its compiled code is kept.
    want = rf"compiling plugin 'linear' \([\d.]+ MB\) for this machine \(once; cached in {re.escape(str(cache))}\)…\n"
    assert re.fullmatch(want, first), first
    # Only the plugin this model needs was compiled.
    assert len(list(cache.glob("*.cwasm"))) == 1, list(cache.iterdir())
    assert predict() == ""
