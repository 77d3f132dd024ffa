"""Flavor plugins in a running server: the built-in `linear` flavor serving a model logged with the
official client under every `models:/` form, a model that carries its own plugin, install and
removal over REST and the CLI, and hostile plugins that fail alone while other models keep
answering."""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import mlflow
import numpy as np
import pytest
import requests
from mlflow import MlflowClient

from conftest import REPO_ROOT

PLUGINS_API = "/api/2.0/wasmflow/plugins"
TEST_PLUGINS = Path(
    os.environ.get("WASMFLOW_TEST_PLUGINS")
    or Path(os.environ.get("CARGO_TARGET_DIR") or REPO_ROOT / "target")
    / "wasm-plugins/wasm32-wasip2/release"
)

COEFS = [[0.5, -1.25], [2.0, 0.0]]
INTERCEPT = [0.25, -1.0]
X = [[1.0, 2.0], [3.5, -4.0], [0.0, 0.0]]


def expected():
    return (np.array(X) @ np.array(COEFS).T + np.array(INTERCEPT)).tolist()


def plugin_file(name: str) -> Path:
    path = TEST_PLUGINS / name
    if not path.exists():
        pytest.fail(f"{path} is missing; `cargo build` builds the test plugins", pytrace=False)
    return path


def write_linear_model(path: Path, extra_flavors: dict | None = None, signature: bool = True) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "model.json").write_text(
        json.dumps(
            {"features": ["x1", "x2"], "coefficients": COEFS, "intercept": INTERCEPT, "outputs": ["y", "z"]}
        )
    )
    flavors = {"linear": {"data": "model.json"}, **(extra_flavors or {})}
    lines = ["artifact_path: model", "flavors:"]
    for name, section in flavors.items():
        lines.append(f"  {name}: {json.dumps(section)}")
    if signature:
        inputs = json.dumps([{"type": "double", "name": "x1"}, {"type": "double", "name": "x2"}])
        lines += ["signature:", f"  inputs: '{inputs}'", "  outputs: null"]
    (path / "MLmodel").write_text("\n".join(lines) + "\n")
    return path


def register(tmp_path: Path, name: str, model_dir: Path) -> str:
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(model_dir), "model")
    mv = mlflow.register_model(f"runs:/{run.info.run_id}/model", name)
    return mv.version


def invoke(server, name: str, ref: str, body, content_type="application/json"):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return requests.post(
        f"{server.url}/serving/models/{name}/{ref}/invocations",
        data=data,
        headers={"Content-Type": content_type},
        timeout=60,
    )


def records_to_rows(predictions):
    return [[p["y"], p["z"]] for p in predictions]


def test_builtin_plugins_are_listed(server):
    plugins = requests.get(server.url + PLUGINS_API, timeout=30).json()["plugins"]
    linear = [p for p in plugins if p["name"] == "linear"]
    assert linear and linear[0]["builtin"] is True and linear[0]["loads"] == ["linear"]
    assert len(linear[0]["sha256"]) == 64


def test_linear_model_predicts_under_every_models_uri_form(server, tmp_path):
    name = "plugins-linear"
    version = register(tmp_path, name, write_linear_model(tmp_path / "model"))
    want = expected()
    payloads = [
        {"dataframe_split": {"columns": ["x1", "x2"], "data": X}},
        {"dataframe_records": [{"x1": a, "x2": b} for a, b in X]},
        {"instances": [{"x1": a, "x2": b} for a, b in X]},
        {"inputs": {"x1": [r[0] for r in X], "x2": [r[1] for r in X]}},
    ]
    for payload in payloads:
        r = invoke(server, name, version, payload)
        assert r.status_code == 200, r.text
        assert np.allclose(records_to_rows(r.json()["predictions"]), want, atol=1e-12), payload
    csv = "x1,x2\n" + "\n".join(f"{a},{b}" for a, b in X) + "\n"
    r = invoke(server, name, version, csv, "text/csv")
    assert r.status_code == 200, r.text
    assert np.allclose(records_to_rows(r.json()["predictions"]), want, atol=1e-12)

    client = MlflowClient()
    client.set_registered_model_alias(name, "champion", version)
    client.transition_model_version_stage(name, version, "Production")
    for ref in ["champion", "latest", "Production", version]:
        r = invoke(server, name, ref, payloads[0])
        assert r.status_code == 200, (ref, r.text)
        assert np.allclose(records_to_rows(r.json()["predictions"]), want, atol=1e-12)

    # Schema enforcement: a missing column and an uncastable value, in MLflow's error shape.
    r = invoke(server, name, version, {"dataframe_split": {"columns": ["x1"], "data": [[1.0]]}})
    assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE", r.text
    assert "x2" in r.json()["message"]
    r = invoke(server, name, version, {"dataframe_records": [{"x1": "abc", "x2": 1}]})
    assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE", r.text
    r = invoke(server, name, version, {"rows": []})
    assert r.status_code == 400 and r.json()["error_code"] == "BAD_REQUEST", r.text
    r = invoke(server, name, version, "x", "text/plain")
    assert r.status_code == 415, r.text
    # As MLflow answers an unknown alias.
    r = invoke(server, name, "no-such-alias", payloads[0])
    assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE", r.text
    assert "no-such-alias" in r.json()["message"]
    r = invoke(server, "no-such-model", "1", payloads[0])
    assert r.status_code == 404 and r.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST", r.text


def test_an_alias_moved_to_another_version_is_served_without_restart(server, tmp_path):
    name = "plugins-alias-move"
    v1 = register(tmp_path, name, write_linear_model(tmp_path / "m1"))
    global COEFS
    saved = COEFS
    try:
        COEFS = [[1.0, 1.0], [0.0, 0.0]]
        v2 = register(tmp_path, name, write_linear_model(tmp_path / "m2"))
        want_v2 = expected()
    finally:
        COEFS = saved
    want_v1 = expected()
    client = MlflowClient()
    client.set_registered_model_alias(name, "prod", v1)
    payload = {"dataframe_split": {"columns": ["x1", "x2"], "data": X}}
    assert np.allclose(records_to_rows(invoke(server, name, "prod", payload).json()["predictions"]), want_v1)
    client.set_registered_model_alias(name, "prod", v2)
    assert np.allclose(records_to_rows(invoke(server, name, "prod", payload).json()["predictions"]), want_v2)


def test_a_model_can_carry_its_own_plugin(server, tmp_path):
    wasm = plugin_file("wasmflow_flavor_linear.wasm").read_bytes()
    sha = hashlib.sha256(wasm).hexdigest()
    good = tmp_path / "carried"
    write_linear_model(good, {"wasmflow": {"component": "plugin/linear.wasm", "sha256": sha, "flavor": "linear"}})
    (good / "plugin").mkdir()
    (good / "plugin" / "linear.wasm").write_bytes(wasm)
    version = register(tmp_path, "plugins-carried", good)
    r = invoke(server, "plugins-carried", version, {"dataframe_split": {"columns": ["x1", "x2"], "data": X}})
    assert r.status_code == 200, r.text
    assert np.allclose(records_to_rows(r.json()["predictions"]), expected())

    bad = tmp_path / "tampered"
    shutil.copytree(good, bad)
    mlmodel = (bad / "MLmodel").read_text().replace(sha, "0" * 64)
    (bad / "MLmodel").write_text(mlmodel)
    version = register(tmp_path, "plugins-tampered", bad)
    r = invoke(server, "plugins-tampered", version, {"dataframe_split": {"columns": ["x1", "x2"], "data": X}})
    assert r.status_code == 400, r.text
    assert "sha256" in r.json()["message"] and sha in r.json()["message"]


def test_install_list_and_remove_over_rest_and_cli(server, wasmflow_bin):
    not_a_flavor = plugin_file("wasmflow_testing_not_a_flavor.wasm").read_bytes()
    r = requests.post(server.url + PLUGINS_API, data=not_a_flavor, timeout=120)
    assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE", r.text
    assert "does not export 'wasmflow:plugin/flavor@0.1.0'" in r.json()["message"]
    r = requests.post(server.url + PLUGINS_API, data=b"\0asm garbage", timeout=120)
    assert r.status_code == 400, r.text

    hostile = plugin_file("wasmflow_testing_hostile.wasm")
    r = requests.post(server.url + PLUGINS_API, data=hostile.read_bytes(), timeout=120)
    assert r.status_code == 200, r.text
    plugin = r.json()["plugin"]
    assert plugin["name"] == "hostile" and plugin["loads"] == ["hostile"] and plugin["builtin"] is False
    assert plugin["sha256"] == hashlib.sha256(hostile.read_bytes()).hexdigest()
    # The same bytes again are not an error.
    assert requests.post(server.url + PLUGINS_API, data=hostile.read_bytes(), timeout=120).status_code == 200

    env = {**os.environ, "MLFLOW_TRACKING_URI": server.url}
    listed = subprocess.run([wasmflow_bin, "plugins", "list"], env=env, capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert "hostile@0.1.0" in listed.stdout and "linear@" in listed.stdout

    removed = subprocess.run(
        [wasmflow_bin, "plugins", "remove", "hostile@0.1.0"], env=env, capture_output=True, text=True, timeout=60
    )
    assert removed.returncode == 0, removed.stderr
    names = [p["name"] for p in requests.get(server.url + PLUGINS_API, timeout=30).json()["plugins"]]
    assert "hostile" not in names
    r = requests.delete(server.url + PLUGINS_API, params={"name": "hostile"}, timeout=30)
    assert r.status_code == 404 and r.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST", r.text
    r = requests.delete(server.url + PLUGINS_API, params={"name": "linear"}, timeout=30)
    assert r.status_code == 400, r.text

    installed = subprocess.run(
        [wasmflow_bin, "plugins", "install", str(hostile)], env=env, capture_output=True, text=True, timeout=120
    )
    assert installed.returncode == 0, installed.stderr
    assert "installed hostile@0.1.0" in installed.stdout


def write_hostile_model(path: Path, behavior: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "MLmodel").write_text(f"flavors:\n  hostile: {{behavior: {behavior}}}\n")
    return path


def test_hostile_models_fail_alone_while_others_keep_answering(server, tmp_path):
    hostile = plugin_file("wasmflow_testing_hostile.wasm").read_bytes()
    assert requests.post(server.url + PLUGINS_API, data=hostile, timeout=120).status_code == 200
    good = register(tmp_path, "plugins-good", write_linear_model(tmp_path / "good"))
    payload = {"dataframe_split": {"columns": ["x1", "x2"], "data": X}}
    cases = {
        "loop": (503, "TEMPORARILY_UNAVAILABLE", "deadline"),
        "alloc": (500, "INVALID_STATE", "memory"),
        "panic": (500, "INVALID_STATE", "trapped"),
        "read-passwd": (400, "INVALID_PARAMETER_VALUE", "/etc/passwd"),
        "socket": (400, "INVALID_PARAMETER_VALUE", "cannot connect"),
        "mismatched-columns": (500, "INVALID_STATE", "different lengths"),
    }
    for behavior, (status, code, needle) in cases.items():
        name = f"plugins-hostile-{behavior}"
        version = register(tmp_path, name, write_hostile_model(tmp_path / behavior, behavior))
        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            bad = pool.submit(invoke, server, name, version, payload)
            # The good model answers while the hostile one misbehaves.
            started = time.monotonic()
            goods = [pool.submit(invoke, server, "plugins-good", good, payload) for _ in range(6)]
            for g in goods:
                assert g.result().status_code == 200, g.result().text
            r = bad.result()
        assert r.status_code == status, (behavior, r.text)
        body = r.json()
        assert body["error_code"] == code, (behavior, body)
        assert body["message"].startswith("plugin 'hostile'"), body
        assert needle in body["message"], (behavior, body)
        assert "backtrace" not in body["message"]
        assert time.monotonic() - started < 60
    assert requests.get(server.url + "/health", timeout=5).status_code == 200


def test_a_plugin_writing_to_stdout_and_stderr_is_answered_on_the_inline_path(server, tmp_path):
    """Short requests are scored as a plain call on the async thread that received them; a plugin's
    writes to stdout and stderr there go to the server log and the request is answered (such a write
    once panicked the worker: wasmtime-wasi waited for it on the runtime that thread drives)."""
    hostile = plugin_file("wasmflow_testing_hostile.wasm").read_bytes()
    assert requests.post(server.url + PLUGINS_API, data=hostile, timeout=120).status_code == 200
    name = "plugins-hostile-stdout"
    version = register(tmp_path, name, write_hostile_model(tmp_path / "stdout", "stdout"))
    payload = {"dataframe_split": {"columns": ["x1", "x2"], "data": X}}
    # The first request loads the model on a blocking thread; the next ones are short (a body of
    # a few bytes, a call of microseconds), so they run inline, several at once too.
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda _: invoke(server, name, version, payload), range(40)))
    for r in answers:
        assert r.status_code == 200, r.text
        assert len(r.json()["predictions"]) == len(X), r.text
    log = Path(server.log_path).read_text(errors="replace")
    assert log.count("a line from the plugin's stderr") >= 40, server.log_tail()
    assert log.count("a line from the plugin's stdout") >= 40, server.log_tail()
    assert requests.get(server.url + "/health", timeout=5).status_code == 200
