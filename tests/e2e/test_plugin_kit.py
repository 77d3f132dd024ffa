"""`wasmflow plugins new` for each of the four languages, built, installed and served.

For Rust, Python, JavaScript and C a session fixture runs `wasmflow plugins new kit-<lang>` into a
temporary directory and builds each project with its own build command (the four in parallel):
`cargo test` + `cargo build --release --target wasm32-wasip2` for Rust (with `--sdk` pointing at
this checkout's plugins/sdk, so that nothing is fetched from GitHub), `./build.sh` for the
others, which run their native unit tests first. The toolchains are the ones
examples/plugins/build.sh installs (scripts/test.sh runs it before pytest): componentize-py from
its venv, `wit-bindgen` from its tools, the JavaScript example's node_modules (jco,
ComponentizeJS, rolldown), clang-19.

Each test installs the component with `wasmflow plugins install` against the shared server, logs a
model whose MLmodel names the template's flavor (written with mlflow's `Model` class, as
test_language_plugins.py does) with the official client, registers it and scores it through
`/serving/models/<name>/1/invocations`, comparing with the linear score computed here.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import time
from pathlib import Path

import mlflow
import pytest
import requests
from mlflow.models import Model
from mlflow.models.signature import ModelSignature
from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema

REPO_ROOT = Path(__file__).resolve().parents[2]
LANGS = ["rust", "python", "javascript", "c"]
COEFFICIENTS = {"features": ["x1", "x2", "x3"], "weights": [0.5, -1.25, 2.0], "bias": 0.75}


def _target_dir() -> Path:
    return Path(os.environ.get("CARGO_TARGET_DIR") or REPO_ROOT / "target").resolve()


def _example_cache() -> Path:
    """examples/plugins/build.sh's cache: its venv (componentize-py) and tools (wit-bindgen)."""
    out = os.environ.get("WASMFLOW_EXAMPLE_PLUGINS")
    return Path(out).resolve().parent if out else _target_dir() / "example-plugins"


def _toolchain() -> str:
    """The pinned Rust toolchain (rust-toolchain.toml), which has the wasm32-wasip2 target."""
    for line in (REPO_ROOT / "rust-toolchain.toml").read_text().splitlines():
        if line.strip().startswith("channel"):
            return line.split("=", 1)[1].strip().strip('"')
    raise AssertionError("no channel in rust-toolchain.toml")


def _build_command(lang: str, project: Path) -> tuple[list[str], dict[str, str]]:
    env = dict(os.environ)
    env.pop("CARGO_TARGET_DIR", None)
    cache = _example_cache()
    if lang == "rust":
        env["RUSTUP_TOOLCHAIN"] = _toolchain()
        # Kept between runs, so a second run compiles only the plugin.
        env["CARGO_TARGET_DIR"] = str(_target_dir() / "plugin-kit" / "rust-target")
        script = "cargo test --quiet && cargo build --release --target wasm32-wasip2 --quiet"
        return ["bash", "-c", script], env
    if lang == "python":
        env["COMPONENTIZE_PY"] = str(cache / "venv" / "bin" / "componentize-py")
    elif lang == "javascript":
        modules = Path(os.environ.get("WASMFLOW_JS_NODE_MODULES")
                       or REPO_ROOT / "examples" / "plugins" / "javascript" / "node_modules")
        if (modules / "@bytecodealliance" / "jco").is_dir():
            (project / "node_modules").symlink_to(modules.resolve(), target_is_directory=True)
    elif lang == "c":
        env["WIT_BINDGEN"] = str(cache / "tools" / "bin" / "wit-bindgen")
        env["RUSTUP_TOOLCHAIN"] = _toolchain()  # for wasm-component-ld
    return ["bash", str(project / "build.sh")], env


def _component(lang: str, project: Path) -> Path:
    if lang == "rust":
        return _target_dir() / "plugin-kit" / "rust-target" / "wasm32-wasip2" / "release" / "kit_rust.wasm"
    return project / f"kit-{lang}.wasm"


def _wasmflow(wasmflow_bin: str, *args: str, env: dict | None = None, timeout: float = 600):
    return subprocess.run([wasmflow_bin, *args], capture_output=True, text=True, timeout=timeout,
                          env=env)


@pytest.fixture(scope="session")
def kit_components(tmp_path_factory, wasmflow_bin) -> dict[str, Path]:
    """`plugins new` + the project's build for the four languages, built in parallel."""
    root = tmp_path_factory.mktemp("plugin-kit")
    procs = {}
    for lang in LANGS:
        project = root / lang
        args = ["plugins", "new", f"kit-{lang}", "--lang", lang, "--dir", str(project)]
        if lang == "rust":
            args += ["--sdk", str(REPO_ROOT / "plugins" / "sdk")]
        made = _wasmflow(wasmflow_bin, *args)
        assert made.returncode == 0, f"plugins new --lang {lang}: {made.stderr}"
        assert (project / "README.md").is_file()
        command, env = _build_command(lang, project)
        log = open(root / f"{lang}.log", "w")
        procs[lang] = (subprocess.Popen(command, cwd=project, env=env, stdout=log, stderr=subprocess.STDOUT),
                       log, time.monotonic())
    components = {}
    for lang, (proc, log, started) in procs.items():
        code = proc.wait(timeout=3600)
        log.close()
        output = (root / f"{lang}.log").read_text()
        assert code == 0, f"building the {lang} project failed ({code}):\n{output[-5000:]}"
        print(f"plugin kit: {lang} built in {time.monotonic() - started:.0f}s")
        components[lang] = _component(lang, root / lang)
        assert components[lang].is_file(), f"{components[lang]} missing after the {lang} build"
    return components


def _expected(rows: list[list[float]], offset: float = 0.0) -> list[float]:
    w, b = COEFFICIENTS["weights"], COEFFICIENTS["bias"]
    return [b + offset + sum(wi * xi for wi, xi in zip(w, row)) for row in rows]


def _invoke(base_url: str, name: str, payload: dict) -> requests.Response:
    return requests.post(f"{base_url}/serving/models/{name}/1/invocations", data=json.dumps(payload),
                         headers={"Content-Type": "application/json"}, timeout=300)


@pytest.mark.parametrize("lang", LANGS)
def test_new_build_install_serve(lang, kit_components, wasmflow_bin, server, tmp_path):
    wasm = kit_components[lang]
    env = dict(os.environ, MLFLOW_TRACKING_URI=server.url)
    help_text = _wasmflow(wasmflow_bin, "plugins", "--help").stdout
    if "check" in help_text.split("Commands:", 1)[-1]:
        checked = _wasmflow(wasmflow_bin, "plugins", "check", str(wasm), env=env)
        assert checked.returncode == 0, f"plugins check {wasm}:\n{checked.stdout}\n{checked.stderr}"
    installed = _wasmflow(wasmflow_bin, "plugins", "install", str(wasm), env=env)
    assert installed.returncode == 0, installed.stderr
    assert installed.stdout.startswith(f"installed kit-{lang}@0.1.0\t"), installed.stdout
    assert f"loads kit_{lang}" in installed.stdout

    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "coefficients.json").write_text(json.dumps(COEFFICIENTS))
    # The host passes a request's params to the plugin only when the signature declares them,
    # as MLflow does.
    signature = ModelSignature(inputs=Schema([ColSpec("double", f) for f in COEFFICIENTS["features"]]),
                               params=ParamSchema([ParamSpec("offset", "double", 0.0)]))
    mlmodel = Model(artifact_path="model", signature=signature)
    mlmodel.add_flavor(f"kit_{lang}", data="coefficients.json")
    mlmodel.save(str(model_dir / "MLmodel"))
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(model_dir), "model")
    name = f"plugin-kit-{lang}"
    assert mlflow.register_model(f"runs:/{run.info.run_id}/model", name).version == "1"

    # Columns in another order than the model's features, an integer column among floats.
    rows = [[1.0, 2.0, 3.0], [-0.5, 0.0, 4.0], [10.0, 3.0, -1.0]]
    split = {"dataframe_split": {"columns": ["x3", "x1", "x2"],
                                 "data": [[r[2], r[0], r[1]] for r in rows]}}
    r = _invoke(server.url, name, split)
    assert r.status_code == 200, r.text
    assert r.json()["predictions"] == pytest.approx(_expected(rows), abs=1e-12)

    records = {"dataframe_records": [{"x1": 2, "x2": 1, "x3": 0}]}
    r = _invoke(server.url, name, records)
    assert r.status_code == 200, r.text
    assert r.json()["predictions"] == pytest.approx(_expected([[2.0, 1.0, 0.0]]), abs=1e-12)

    missing = {"dataframe_split": {"columns": ["x1", "x2"], "data": [[1.0, 2.0]]}}
    r = _invoke(server.url, name, missing)
    assert r.status_code == 400, r.text
    assert "x3" in r.json()["message"], r.text

    if lang != "c":  # the C template reads tables only, and takes no params
        r = _invoke(server.url, name, {"inputs": rows, "params": {"offset": 1.5}})
        assert r.status_code == 200, r.text
        assert r.json()["predictions"] == pytest.approx(_expected(rows, 1.5), abs=1e-12)

    # A null becomes NaN on the way in, and the score of that row is NaN (JSON NaN).
    nan_rows = {"dataframe_split": {"columns": ["x1", "x2", "x3"], "data": [[None, 1.0, 1.0], [1.0, 1.0, 1.0]]}}
    r = _invoke(server.url, name, nan_rows)
    assert r.status_code == 200, r.text
    predictions = json.loads(r.text)["predictions"]
    assert math.isnan(predictions[0]) and predictions[1] == pytest.approx(_expected([[1.0, 1.0, 1.0]])[0])
