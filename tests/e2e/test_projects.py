"""`wasmflow run`: MLflow Projects run by executor plugins, checked with the official client.

Against the shared server (MLFLOW_TRACKING_URI) and against the local store (no tracking URI; a
server started afterwards over the same files shows the run): typed and defaulted parameters,
a bad parameter refused before any run exists, MLflow's project tags, FINISHED / FAILED /
KILLED, an executor without the `process` grant, a project from a git repository, the
`virtualenv` executor on examples/sklearn-project, and examples/wasm-train trained in the
`wasi` executor's sandbox, registered and served.

examples/wasm-train/train.wasm is built by examples/wasm-train/build.sh (scripts/test.sh calls
it); the virtual environment of examples/sklearn-project is cached under
$WASMFLOW_PROJECTS_CACHE (default <target>/projects-cache).
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import requests
from mlflow import MlflowClient

from conftest import PLUGIN_CACHE, REPO_ROOT

TARGET = Path(os.environ.get("CARGO_TARGET_DIR") or REPO_ROOT / "target")
PROJECTS_CACHE = Path(os.environ.get("WASMFLOW_PROJECTS_CACHE") or TARGET / "projects-cache")
TEST_PLUGINS = Path(os.environ.get("WASMFLOW_TEST_PLUGINS") or TARGET / "wasm-plugins/wasm32-wasip2/release")
WASM_TRAIN = REPO_ROOT / "examples" / "wasm-train"
SKLEARN_PROJECT = REPO_ROOT / "examples" / "sklearn-project"

# A project whose entry points log with the mlflow client, fail, or sleep until stopped.
MLPROJECT = """\
name: e2e-project
entry_points:
  main:
    parameters:
      alpha: float
      n: {type: int, default: 3}
      label: {type: string, default: "a b"}
    command: "python log.py --alpha {alpha} --n {n} --label {label}"
  fail:
    command: "echo about to fail; exit 3"
  sleep:
    command: "echo $$ > pid; sleep 60 & echo $! > child; wait"
"""

LOG_PY = """\
import argparse, mlflow
p = argparse.ArgumentParser()
p.add_argument("--alpha", type=float)
p.add_argument("--n", type=int)
p.add_argument("--label")
p.add_argument("--seed")
a = p.parse_args()
with mlflow.start_run():
    for step in range(a.n):
        mlflow.log_metric("loss", a.alpha / (step + 1), step=step)
print(f"logged {a.n} steps for {a.label!r} seed={a.seed}")
"""


def write_project(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "MLproject").write_text(MLPROJECT)
    (path / "log.py").write_text(LOG_PY)
    return path


def run_env(tracking_uri: str | None) -> dict:
    env = dict(os.environ)
    env.pop("MLFLOW_TRACKING_URI", None)
    # mlflow.set_experiment in other tests exports these; the runs here choose their own.
    env.pop("MLFLOW_EXPERIMENT_ID", None)
    env.pop("MLFLOW_EXPERIMENT_NAME", None)
    if tracking_uri is not None:
        env["MLFLOW_TRACKING_URI"] = tracking_uri
    # The projects' `python` is the suite's, which has the mlflow client.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["WASMFLOW_PLUGIN_CACHE_DIR"] = str(PLUGIN_CACHE)
    env["WASMFLOW_CACHE_DIR"] = str(PROJECTS_CACHE)
    env.pop("RUST_BACKTRACE", None)
    return env


def wasmflow_run(wasmflow_bin, args, tracking_uri=None, cwd=None, timeout=120):
    return subprocess.run(
        [wasmflow_bin, "run", *map(str, args)],
        env=run_env(tracking_uri),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_id_of(result) -> str:
    m = re.search(r"\(run '([0-9a-f]{32})'\)", result.stderr)
    assert m, f"no run id in the output:\n{result.stdout}\n{result.stderr}"
    return m.group(1)


def train_wasm() -> Path:
    path = WASM_TRAIN / "train.wasm"
    if not path.exists():
        pytest.fail(f"{path} is missing; build it with examples/wasm-train/build.sh", pytrace=False)
    return path


def test_a_project_runs_with_typed_parameters_and_mlflow_tags(server, client, wasmflow_bin, tmp_path, unique_name):
    project = write_project(tmp_path / "proj")
    experiment = unique_name("projects")
    result = wasmflow_run(
        wasmflow_bin,
        [project, "-P", "alpha=0.5", "-P", "seed=7", "--experiment-name", experiment,
         "--run-name", "first", "--env-manager", "local"],
        tracking_uri=server.url,
    )
    assert result.returncode == 0, result.stderr
    assert "logged 3 steps for 'a b' seed=7" in result.stdout
    run = client.get_run(run_id_of(result))
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "first"
    assert client.get_experiment_by_name(experiment).experiment_id == run.info.experiment_id
    # Declared parameters converted and defaulted; the undeclared one passed on as --seed.
    assert run.data.params == {"alpha": "0.5", "n": "3", "label": "a b", "seed": "7"}
    tags = run.data.tags
    assert tags["mlflow.source.type"] == "PROJECT"
    assert tags["mlflow.source.name"] == str(project.resolve())
    assert tags["mlflow.project.entryPoint"] == "main"
    assert tags["mlflow.project.env"] == "local"
    assert tags["mlflow.project.backend"] == "local"
    assert tags["mlflow.user"] == getpass.getuser()
    assert tags["mlflow.runName"] == "first"
    # The project's own client logged into the same run (MLFLOW_RUN_ID).
    history = client.get_metric_history(run.info.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(0, 0.5), (1, 0.25), (2, 0.5 / 3)]


def test_a_bad_parameter_is_refused_before_any_run_exists(server, client, wasmflow_bin, tmp_path, unique_name):
    project = write_project(tmp_path / "proj")
    experiment = unique_name("projects-bad")
    for params, message in [
        (["-P", "alpha=abc"], "parameter 'alpha' must be a float, got 'abc'"),
        (["-P", "alpha=1", "-P", "n=2.5"], "parameter 'n' must be an int, got '2.5'"),
        ([], "no value given for the parameters 'alpha'"),
    ]:
        result = wasmflow_run(
            wasmflow_bin, [project, *params, "--experiment-name", experiment, "--env-manager", "local"],
            tracking_uri=server.url,
        )
        assert result.returncode != 0
        assert message in result.stderr, result.stderr
    # Neither the experiment nor a run was created.
    assert client.get_experiment_by_name(experiment) is None


def test_a_failing_entry_point_ends_failed(server, client, wasmflow_bin, tmp_path):
    project = write_project(tmp_path / "proj")
    result = wasmflow_run(wasmflow_bin, [project, "-e", "fail", "--env-manager", "local"], tracking_uri=server.url)
    assert result.returncode != 0
    assert "about to fail" in result.stdout
    assert "exited with status 3" in result.stderr
    assert client.get_run(run_id_of(result)).info.status == "FAILED"


def test_ctrl_c_stops_the_child_and_ends_killed(server, client, wasmflow_bin, tmp_path):
    project = write_project(tmp_path / "proj")
    proc = subprocess.Popen(
        [wasmflow_bin, "run", str(project), "-e", "sleep", "--env-manager", "local"],
        env=run_env(server.url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not (project / "child").exists():
            assert time.monotonic() < deadline, "the entry point did not start"
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.1)
        child = int((project / "child").read_text())
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    assert client.get_run(run_id_of(subprocess.CompletedProcess([], 0, out, err))).info.status == "KILLED"
    # The grandchild went with its process group (gone, or a zombie awaiting its reaper).
    deadline = time.monotonic() + 10
    while True:
        try:
            stat = Path(f"/proc/{child}/stat").read_text()
        except FileNotFoundError:
            break
        if ") Z " in stat:
            break
        assert time.monotonic() < deadline, f"the child still runs: {stat}"
        time.sleep(0.1)


def test_an_executor_without_the_process_grant_cannot_start_a_process(server, client, wasmflow_bin, tmp_path):
    project = write_project(tmp_path / "proj")
    (project / "MLproject").write_text(MLPROJECT + '  touch:\n    command: "touch ran"\n')
    # The built-in `local` executor's component, loaded from a file: no longer the built-in one,
    # so the policy grants it nothing.
    executor = TEST_PLUGINS / "wasmflow_executor_local.wasm"
    assert executor.exists(), f"{executor} is missing; `cargo build` builds the executors"
    result = wasmflow_run(
        wasmflow_bin, [project, "-e", "touch", "--backend", executor, "--env-manager", "local"],
        tracking_uri=server.url,
    )
    assert result.returncode != 0
    assert "executor 'local' may not start processes" in result.stderr, result.stderr
    assert "'process' capability" in result.stderr
    assert not (project / "ran").exists()
    assert client.get_run(run_id_of(result)).info.status == "FAILED"
    # Granted explicitly, the same component runs the command.
    result = wasmflow_run(
        wasmflow_bin,
        [project, "-e", "touch", "--backend", executor, "--grant-process", "--env-manager", "local"],
        tracking_uri=server.url,
    )
    assert result.returncode == 0, result.stderr
    assert (project / "ran").exists()


def test_an_environment_no_executor_supports_is_refused(server, client, wasmflow_bin, tmp_path, unique_name):
    project = write_project(tmp_path / "proj")
    (project / "MLproject").write_text("conda_env: conda.yaml\n" + MLPROJECT)
    experiment = unique_name("projects-conda")
    result = wasmflow_run(
        wasmflow_bin, [project, "-P", "alpha=1", "--experiment-name", experiment], tracking_uri=server.url
    )
    assert result.returncode != 0
    assert "needs a conda environment, which no executor supports" in result.stderr, result.stderr
    assert "local (local), virtualenv (python), wasi (wasi)" in result.stderr
    assert client.get_experiment_by_name(experiment) is None


def test_a_project_from_a_git_repository(server, client, wasmflow_bin, tmp_path):
    repo = tmp_path / "repo"
    write_project(repo / "sub")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "one"], check=True)
    first = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    (repo / "sub" / "MLproject").write_text(MLPROJECT.replace("default: 3", "default: 2"))
    subprocess.run([*git, "commit", "-qam", "two"], check=True)
    uri = f"file://{repo}#sub"
    result = wasmflow_run(
        wasmflow_bin, [uri, "--version", first, "-P", "alpha=1", "--env-manager", "local"], tracking_uri=server.url
    )
    assert result.returncode == 0, result.stderr
    run = client.get_run(run_id_of(result))
    assert run.info.status == "FINISHED"
    assert run.data.tags["mlflow.source.git.commit"] == first
    assert run.data.tags["mlflow.source.name"] == uri
    # The first commit's default, not the second's.
    assert run.data.params["n"] == "3"


def check_wasm_training_run(client: MlflowClient, run_id: str, epochs: int) -> None:
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params == {"learning_rate": "0.1", "epochs": str(epochs), "data": "data.csv"}
    tags = run.data.tags
    assert tags["mlflow.project.backend"] == "wasi" and tags["mlflow.project.env"] == "wasi"
    assert tags["mlflow.source.type"] == "PROJECT"
    assert tags["wasmflow.wasi.sha256"] == hashlib.sha256(train_wasm().read_bytes()).hexdigest()
    history = client.get_metric_history(run_id, "mse")
    assert [m.step for m in history] == list(range(epochs))
    assert history[-1].value < 0.01 < history[0].value
    listed = sorted(a.path for a in client.list_artifacts(run_id, "model"))
    assert listed == ["model/MLmodel", "model/model.json"]


def test_the_wasm_training_run_is_registered_and_served(server, client, wasmflow_bin, unique_name):
    train_wasm()
    result = wasmflow_run(wasmflow_bin, [WASM_TRAIN, "-P", "epochs=40"], tracking_uri=server.url)
    assert result.returncode == 0, result.stderr
    assert "model saved to /output/model" in result.stdout
    run_id = run_id_of(result)
    check_wasm_training_run(client, run_id, 40)

    import mlflow

    name = unique_name("wasm-linear")
    version = mlflow.register_model(f"runs:/{run_id}/model", name).version
    rows = [[1.0, 2.0], [-2.5, 0.5], [0.0, 0.0]]
    r = requests.post(
        f"{server.url}/serving/models/{name}/{version}/invocations",
        json={"dataframe_split": {"columns": ["x1", "x2"], "data": rows}},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    got = [p["y"] if isinstance(p, dict) else p for p in r.json()["predictions"]]
    # data.csv is y = 1.5 x1 - 2 x2 + 0.5 plus a little noise.
    want = [1.5 * a - 2.0 * b + 0.5 for a, b in rows]
    assert np.allclose(got, want, atol=0.05), (got, want)


def test_the_wasm_training_run_against_the_local_store(isolated_server, wasmflow_bin, tmp_path):
    train_wasm()
    store = tmp_path / "store"
    store.mkdir()
    result = wasmflow_run(
        wasmflow_bin,
        [WASM_TRAIN, "-P", "epochs=20", "--experiment-name", "local-store",
         "--backend-store-uri", f"sqlite:///{store / 'db.sqlite'}", "--artifacts-destination", store / "artifacts"],
        tracking_uri=None,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    run_id = run_id_of(result)
    # A server over the same files shows the run.
    srv = isolated_server(store)
    client = MlflowClient(tracking_uri=srv.url)
    check_wasm_training_run(client, run_id, 20)
    assert client.get_experiment_by_name("local-store") is not None


@pytest.mark.parametrize("where", ["server", "local-store"])
def test_the_sklearn_project_runs_in_a_cached_virtualenv(where, server, isolated_server, wasmflow_bin, tmp_path):
    # The first run creates the environment (about a minute); later runs reuse it.
    store = tmp_path / "store"
    store.mkdir()
    args = [SKLEARN_PROJECT, "-P", "alpha=0.1"]
    if where == "local-store":
        args += ["--backend-store-uri", f"sqlite:///{store / 'db.sqlite'}", "--artifacts-destination", store / "artifacts"]
    tracking_uri = server.url if where == "server" else None
    result = wasmflow_run(wasmflow_bin, args, tracking_uri=tracking_uri, cwd=tmp_path, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    client = MlflowClient(tracking_uri=server.url if where == "server" else isolated_server(store).url)
    run = client.get_run(run_id_of(result))
    assert run.info.status == "FINISHED"
    assert run.data.params == {
        "alpha": "0.1",
        "l1_ratio": "0.5",
        "data": str(SKLEARN_PROJECT / "data.csv"),
    }
    assert run.data.tags["mlflow.project.env"] == "virtualenv"
    assert run.data.tags["mlflow.project.backend"] == "virtualenv"
    # Logged by train.py's own mlflow client, inside the virtualenv.
    assert run.data.metrics["r2"] > 0.95
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["coefficients.json"]
    coef = json.loads(Path(client.download_artifacts(run.info.run_id, "coefficients.json")).read_text())
    assert len(coef["coef"]) == 2


STORAGE_MLPROJECT = """\
name: storage
entry_points:
  main:
    parameters:
      data: path
      weights: path
      inputs: {type: path, default: "."}
    command: "python show.py {data} {weights} {inputs}"
"""

SHOW_PY = """\
import os, sys
for arg in sys.argv[1:]:
    if os.path.isdir(arg):
        print(f"dir {arg}: {sorted(os.listdir(arg))}")
    else:
        print(f"file {arg}: {open(arg).read()!r}")
"""


@pytest.fixture
def web_files(tmp_path):
    """A directory served over http:// by a thread of the test, as a plain web server."""
    import functools
    import http.server
    import threading

    root = tmp_path / "web"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_path_parameters_given_as_uris_are_downloaded_into_the_storage_dir(
    server, client, wasmflow_bin, tmp_path, web_files, unique_name
):
    project = tmp_path / "proj"
    project.mkdir()
    (project / "MLproject").write_text(STORAGE_MLPROJECT)
    (project / "show.py").write_text(SHOW_PY)
    root, web = web_files
    (root / "data.csv").write_text("a,b\n1,2\n")
    # Artifacts of another run on the tracking server, named by runs:/ and mlflow-artifacts: URIs.
    source = client.create_run(client.create_experiment(unique_name("storage-src")))
    for name, text in [("weights.txt", "w=3"), ("bias.txt", "b=1")]:
        (tmp_path / name).write_text(text)
        client.log_artifact(source.info.run_id, str(tmp_path / name), artifact_path="inputs")
    inputs_uri = f"{source.info.artifact_uri}/inputs"
    assert inputs_uri.startswith("mlflow-artifacts:/")

    storage = tmp_path / "storage"
    result = wasmflow_run(
        wasmflow_bin,
        [project, "--env-manager", "local", "--storage-dir", storage,
         "-P", f"data={web}/data.csv", "-P", f"weights=runs:/{source.info.run_id}/inputs/weights.txt",
         "-P", f"inputs={inputs_uri}"],
        tracking_uri=server.url,
    )
    assert result.returncode == 0, result.stderr
    # As mlflow run: one fresh directory in the storage dir, `param_<N>` by the MLproject's order.
    (fresh,) = storage.iterdir()
    data, weights, inputs = fresh / "param_0" / "data.csv", fresh / "param_1" / "weights.txt", fresh / "param_2" / "inputs"
    assert result.stdout.splitlines() == [
        f"file {data}: 'a,b\\n1,2\\n'",
        f"file {weights}: 'w=3'",
        f"dir {inputs}: ['bias.txt', 'weights.txt']",
    ]
    # The run's parameters are the local paths the command got, and the files stay.
    run = client.get_run(run_id_of(result))
    assert run.data.params == {"data": str(data), "weights": str(weights), "inputs": str(inputs)}
    assert data.read_text() == "a,b\n1,2\n" and (inputs / "bias.txt").read_text() == "b=1"

    # Without --storage-dir: a temporary directory, gone when the run ends.
    result = wasmflow_run(
        wasmflow_bin,
        [project, "--env-manager", "local", "-P", f"data={web}/data.csv", "-P", f"weights={web}/data.csv"],
        tracking_uri=server.url,
    )
    assert result.returncode == 0, result.stderr
    downloaded = Path(result.stdout.splitlines()[0].split(":")[0].removeprefix("file "))
    assert downloaded.name == "data.csv" and downloaded.parent.name == "param_0"
    assert not downloaded.exists()

    # A scheme that cannot be downloaded, or a missing file, is refused before any run exists.
    experiment = unique_name("storage-bad")
    for value, message in [
        ("s3://bucket/data.csv", "parameter 'data' must be a local path or an http(s)://, runs:/ or mlflow-artifacts: URI, got 's3://bucket/data.csv'"),
        (f"{web}/missing.csv", f"cannot download '{web}/missing.csv' for the parameter 'data'"),
    ]:
        result = wasmflow_run(
            wasmflow_bin,
            [project, "--env-manager", "local", "--experiment-name", experiment, "-P", f"data={value}",
             "-P", f"weights={web}/data.csv"],
            tracking_uri=server.url,
        )
        assert result.returncode != 0
        assert message in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert client.get_experiment_by_name(experiment) is None
