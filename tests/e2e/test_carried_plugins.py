"""Models that carry their plugin, plugins that follow a model to the client, and plugins removed
while the versions they serve are loaded.

- `wasmflow models attach-plugin` and the Python helper in examples/carried_plugin.py (also in the
  README) make models that serve; a wrong sha256, a `flavor:` the MLmodel lacks and a plugin that
  does not load that flavor are each a clear 400 through `/serving/...`;
- `GET /api/2.0/wasmflow/plugins/<sha256>` returns a component; `wasmflow models predict` against
  the server downloads the server's plugin when no local one loads the model;
- removing a plugin (over REST or with the CLI in the server's directory) unloads the versions it
  serves: the next request fails with a clear error, and answers again once it is reinstalled;
- a core module (not a component) is refused with the hint to build for wasm32-wasip2.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import json
import os
import shutil
import subprocess
from pathlib import Path

import mlflow
import numpy as np
import requests
import yaml

from conftest import PLUGIN_CACHE, REPO_ROOT
from test_plugins import (
    PLUGINS_API,
    X,
    expected,
    invoke,
    plugin_file,
    records_to_rows,
    register,
    write_linear_model,
)

SPLIT = {"dataframe_split": {"columns": ["x1", "x2"], "data": X}}
# The smallest core module: the preamble, no sections.
CORE_MODULE = b"\0asm\x01\0\0\0"


def cli(wasmflow_bin, *args, env=None, timeout=120):
    env = {**os.environ, "WASMFLOW_PLUGIN_CACHE_DIR": str(PLUGIN_CACHE), **(env or {})}
    return subprocess.run([wasmflow_bin, *args], env=env, capture_output=True, text=True, timeout=timeout)


def message(r):
    assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE", r.text
    return r.json()["message"]


def carried_linear_model(path: Path, wasm: bytes, section: dict) -> Path:
    write_linear_model(path, {"wasmflow": {"component": "plugin/p.wasm", **section}})
    (path / "plugin").mkdir()
    (path / "plugin" / "p.wasm").write_bytes(wasm)
    return path


def test_attach_plugin_makes_a_model_that_serves(server, wasmflow_bin, tmp_path):
    linear = plugin_file("wasmflow_flavor_linear.wasm")
    sha = hashlib.sha256(linear.read_bytes()).hexdigest()
    model = write_linear_model(tmp_path / "model")
    before = yaml.safe_load((model / "MLmodel").read_text())
    plugins_dir = ["--plugins-dir", str(tmp_path / "plugins")]

    done = cli(wasmflow_bin, "models", "attach-plugin", str(model), str(linear), "--flavor", "linear", *plugins_dir)
    assert done.returncode == 0, done.stderr
    assert f"sha256 {sha[:12]}" in done.stdout and "wasmflow/linear.wasm" in done.stdout, done.stdout
    after = yaml.safe_load((model / "MLmodel").read_text())
    assert after["flavors"]["wasmflow"] == {"component": "wasmflow/linear.wasm", "sha256": sha, "flavor": "linear"}
    # Everything else is as it was, in its order.
    del after["flavors"]["wasmflow"]
    assert after == before and list(after) == list(before)
    assert (model / "wasmflow" / "linear.wasm").read_bytes() == linear.read_bytes()

    version = register(tmp_path, "carried-attached", model)
    r = invoke(server, "carried-attached", version, SPLIT)
    assert r.status_code == 200, r.text
    assert np.allclose(records_to_rows(r.json()["predictions"]), expected())
    log = Path(server.log_path).read_text()
    assert f"plugin 'linear@" in log and f"(carried by the model, sha256 {sha[:12]})" in log

    # A plugin that does not load the flavor, and a flavor the model lacks, are refused before
    # anything is written.
    hostile = plugin_file("wasmflow_testing_hostile.wasm")
    refused = cli(wasmflow_bin, "models", "attach-plugin", str(model), str(hostile), "--flavor", "linear", *plugins_dir)
    assert refused.returncode != 0
    assert "plugin 'hostile@0.1.0' does not load flavor 'linear' (it loads [\"hostile\"])" in refused.stderr
    refused = cli(wasmflow_bin, "models", "attach-plugin", str(model), str(linear), "--flavor", "onnx", *plugins_dir)
    assert refused.returncode != 0
    assert "the MLmodel has no flavor 'onnx' for the plugin to load; its flavors are [\"linear\"]" in refused.stderr
    assert yaml.safe_load((model / "MLmodel").read_text())["flavors"]["wasmflow"]["sha256"] == sha


def load_helper():
    spec = importlib.util.spec_from_file_location("carried_plugin", REPO_ROOT / "examples" / "carried_plugin.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_python_helper_logs_a_model_that_serves(server, tmp_path):
    helper = load_helper()
    # The README shows the helper as it is in examples/.
    readme = (REPO_ROOT / "README.md").read_text()
    for function in (helper.attach_plugin, helper.log_model_with_plugin):
        assert inspect.getsource(function) in readme, function.__name__
    linear = plugin_file("wasmflow_flavor_linear.wasm")
    with mlflow.start_run():
        uri = helper.log_model_with_plugin(
            lambda p: write_linear_model(Path(p)), linear, "linear", registered_model_name="carried-python"
        )
    name, version = uri.removeprefix("models:/").split("/")
    r = invoke(server, name, version, SPLIT)
    assert r.status_code == 200, r.text
    assert np.allclose(records_to_rows(r.json()["predictions"]), expected())


def test_carried_plugin_mistakes_are_clear_400s(server, tmp_path):
    linear = plugin_file("wasmflow_flavor_linear.wasm").read_bytes()
    hostile = plugin_file("wasmflow_testing_hostile.wasm").read_bytes()
    sha = hashlib.sha256(linear).hexdigest()

    wrong_sha = carried_linear_model(tmp_path / "wrong-sha", linear, {"sha256": "0" * 64, "flavor": "linear"})
    version = register(tmp_path, "carried-wrong-sha", wrong_sha)
    text = message(invoke(server, "carried-wrong-sha", version, SPLIT))
    assert f"the model's plugin has sha256 {sha}, but its MLmodel says '{'0' * 64}'" in text

    no_section = carried_linear_model(tmp_path / "no-section", linear, {"sha256": sha, "flavor": "lineaar"})
    version = register(tmp_path, "carried-no-section", no_section)
    text = message(invoke(server, "carried-no-section", version, SPLIT))
    assert text == (
        "the model's plugin is to load flavor 'lineaar', which is not a section of its MLmodel "
        "(the sections are [\"linear\"])"
    )

    other_flavor = carried_linear_model(
        tmp_path / "other-flavor", hostile, {"sha256": hashlib.sha256(hostile).hexdigest(), "flavor": "linear"}
    )
    version = register(tmp_path, "carried-other-flavor", other_flavor)
    text = message(invoke(server, "carried-other-flavor", version, SPLIT))
    assert text == "the model's plugin 'hostile@0.1.0' does not load flavor 'linear' (it loads [\"hostile\"])"


def test_a_plugins_component_is_served_by_sha256(server):
    hostile = plugin_file("wasmflow_testing_hostile.wasm").read_bytes()
    sha = hashlib.sha256(hostile).hexdigest()
    assert requests.post(server.url + PLUGINS_API, data=hostile, timeout=120).status_code == 200
    r = requests.get(f"{server.url}{PLUGINS_API}/{sha}", timeout=30)
    assert r.status_code == 200 and r.headers["content-type"] == "application/wasm"
    assert r.content == hostile
    # Built-in plugins too, upper-case hex too.
    linear = next(p for p in requests.get(server.url + PLUGINS_API, timeout=30).json()["plugins"] if p["name"] == "linear")
    r = requests.get(f"{server.url}{PLUGINS_API}/{linear['sha256'].upper()}", timeout=30)
    assert r.status_code == 200 and hashlib.sha256(r.content).hexdigest() == linear["sha256"]
    r = requests.get(f"{server.url}{PLUGINS_API}/{'a' * 64}", timeout=30)
    assert r.status_code == 404 and r.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST", r.text
    assert r.json()["message"] == f"no plugin with sha256 '{'a' * 64}'"
    r = requests.get(f"{server.url}{PLUGINS_API}/not-a-hash", timeout=30)
    assert message(r) == "invalid plugin sha256 'not-a-hash': it must be 64 hexadecimal digits"


def write_echo_model(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "MLmodel").write_text("flavors:\n  hostile: {behavior: echo}\n")
    return path


def test_models_predict_uses_a_plugin_installed_only_on_the_server(server, wasmflow_bin, tmp_path):
    hostile = plugin_file("wasmflow_testing_hostile.wasm").read_bytes()
    sha = hashlib.sha256(hostile).hexdigest()
    assert requests.post(server.url + PLUGINS_API, data=hostile, timeout=120).status_code == 200
    version = register(tmp_path, "server-plugin-echo", write_echo_model(tmp_path / "echo"))
    served = invoke(server, "server-plugin-echo", version, SPLIT)
    assert served.status_code == 200, served.text
    (tmp_path / "input.json").write_text(json.dumps(SPLIT))
    local_plugins = tmp_path / "local-plugins"
    cache = tmp_path / "cache"
    args = ["models", "predict", "-m", f"models:/server-plugin-echo/{version}", "-i", str(tmp_path / "input.json")]
    args += ["--plugins-dir", str(local_plugins)]

    # Without the server, no local plugin loads it: the error says where it looked.
    env = {"MLFLOW_TRACKING_URI": "", "XDG_CACHE_HOME": str(cache)}
    local = cli(wasmflow_bin, "models", "predict", "-m", str(tmp_path / "echo"), "-i", str(tmp_path / "input.json"),
                "--plugins-dir", str(local_plugins), env=env)
    assert local.returncode != 0
    assert "no plugin loads any of this model's flavors [\"hostile\"]" in local.stderr, local.stderr
    assert f"the plugin directory '{local_plugins}' (--plugins-dir or WASMFLOW_PLUGINS_DIR)" in local.stderr

    env["MLFLOW_TRACKING_URI"] = server.url
    for _ in range(2):  # downloaded, then from the cache
        done = cli(wasmflow_bin, *args, env=env)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == served.json()
    downloaded = cache / "wasmflow" / "plugins" / f"{sha}.wasm"
    assert downloaded.read_bytes() == hostile
    assert not (local_plugins / f"{sha}.wasm").exists()

    # A tampered cache file is downloaded again.
    downloaded.write_bytes(b"tampered")
    done = cli(wasmflow_bin, *args, env=env)
    assert done.returncode == 0, done.stderr
    assert downloaded.read_bytes() == hostile


def test_removing_a_plugin_unloads_the_versions_it_serves(server, wasmflow_bin, tmp_path):
    hostile = plugin_file("wasmflow_testing_hostile.wasm").read_bytes()
    assert requests.post(server.url + PLUGINS_API, data=hostile, timeout=120).status_code == 200
    version = register(tmp_path, "removed-plugin-echo", write_echo_model(tmp_path / "echo"))
    assert invoke(server, "removed-plugin-echo", version, SPLIT).status_code == 200

    r = requests.delete(server.url + PLUGINS_API, params={"name": "hostile"}, timeout=30)
    assert r.status_code == 200, r.text
    text = message(invoke(server, "removed-plugin-echo", version, SPLIT))
    assert text.startswith("no plugin loads any of this model's flavors [\"hostile\"]; searched the built-in plugins"), text
    assert "unloaded model 'removed-plugin-echo' version" in Path(server.log_path).read_text()

    # Installed again: the next request loads with it.
    assert requests.post(server.url + PLUGINS_API, data=hostile, timeout=120).status_code == 200
    assert invoke(server, "removed-plugin-echo", version, SPLIT).status_code == 200

    # Removed by the CLI in the server's plugin directory, without the server knowing.
    env = {"MLFLOW_TRACKING_URI": ""}
    done = cli(wasmflow_bin, "plugins", "--plugins-dir", str(server.store_dir / "plugins"), "remove", "hostile", env=env)
    assert done.returncode == 0, done.stderr
    text = message(invoke(server, "removed-plugin-echo", version, SPLIT))
    assert text.startswith("no plugin loads any of this model's flavors [\"hostile\"]"), text
    assert requests.post(server.url + PLUGINS_API, data=hostile, timeout=120).status_code == 200


def test_a_core_module_gets_the_hint_to_build_a_component(server, wasmflow_bin, tmp_path):
    hint = "this is a core wasm module; build a component for wasm32-wasip2"
    text = message(requests.post(server.url + PLUGINS_API, data=CORE_MODULE, timeout=60))
    assert text.startswith(hint) and "component parser" not in text, text
    module = tmp_path / "core.wasm"
    module.write_bytes(CORE_MODULE)
    done = cli(wasmflow_bin, "plugins", "--plugins-dir", str(tmp_path / "plugins"), "install", str(module),
               env={"MLFLOW_TRACKING_URI": ""})
    assert done.returncode != 0 and hint in done.stderr, done.stderr
