"""MLflow's command-line habits: `server -h`, `models serve -h/-t`, `models predict` content types
and stdin, `run -c FILE` and `--run-id`, `gc`, `experiments` and `runs`, and `runs:/RUN/NAME` for
models logged with MLflow 3's `log_model(name=...)`."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import time
from pathlib import Path

import mlflow
import mlflow.sklearn
import numpy as np
import pytest
import requests
from sklearn.linear_model import LinearRegression

from conftest import PLUGIN_CACHE, ModelServer, free_port


def cli(wasmflow_bin, *args, env=None, input=None, timeout=180):
    env = {**os.environ, "WASMFLOW_PLUGIN_CACHE_DIR": str(PLUGIN_CACHE), **(env or {})}
    return subprocess.run([wasmflow_bin, *args], env=env, capture_output=True, text=True, timeout=timeout, input=input)


def test_server_takes_h_as_its_host_and_keeps_help(wasmflow_bin, tmp_path):
    helped = cli(wasmflow_bin, "server", "--help")
    assert helped.returncode == 0 and "--host" in helped.stdout and "-h" in helped.stdout, helped.stdout
    port = free_port()
    proc = subprocess.Popen(
        [wasmflow_bin, "server", "-h", "127.0.0.1", "-p", str(port), "-w", "2",
         "--backend-store-uri", f"sqlite:///{tmp_path / 'db.sqlite'}", "--artifacts-destination", str(tmp_path / "a")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "server -h did not start"
            time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.parametrize(
    ("value", "flags", "proxied"),
    [("false", [], False), ("true", [], True), ("false", ["--serve-artifacts"], True),
     ("true", ["--no-serve-artifacts"], False)],
)
def test_mlflow_serve_artifacts_variable_and_the_flags_that_win_over_it(
    wasmflow_bin, tmp_path, monkeypatch, value, flags, proxied
):
    from conftest import ServerProcess

    class Server(ServerProcess):
        def command(self):
            return super().command() + flags

    monkeypatch.setenv("MLFLOW_SERVE_ARTIFACTS", value)
    srv = Server(wasmflow_bin, tmp_path / "store").start()
    try:
        client = mlflow.MlflowClient(srv.url)
        location = client.get_experiment(client.create_experiment("e")).artifact_location
        assert location.startswith("mlflow-artifacts:") == proxied, location
        listed = requests.get(f"{srv.url}/api/2.0/mlflow-artifacts/artifacts", timeout=30)
        assert (listed.status_code == 200) == proxied, listed.text
    finally:
        srv.stop()


def test_a_bad_mlflow_serve_artifacts_is_refused(wasmflow_bin, tmp_path):
    done = cli(wasmflow_bin, "server", "-p", "0", "--backend-store-uri", f"sqlite:///{tmp_path / 'db.sqlite'}",
               env={"MLFLOW_SERVE_ARTIFACTS": "maybe"})
    assert done.returncode != 0
    assert "invalid MLFLOW_SERVE_ARTIFACTS 'maybe': expected true or false" in done.stderr, done.stderr


@pytest.mark.parametrize("flag", ["--gunicorn-opts", "--uvicorn-opts", "--waitress-opts"])
def test_python_web_server_options_are_refused_with_a_reason(wasmflow_bin, flag):
    done = cli(wasmflow_bin, "server", flag, "--timeout 60", "-p", str(free_port()))
    assert done.returncode != 0
    assert f"{flag} is not supported" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


@pytest.fixture
def logged(client, unique_name):
    """A linear regression logged with MLflow 3's `log_model(name=...)` by a run of a new experiment."""
    mlflow.set_experiment(unique_name("habits"))
    rng = np.random.default_rng(3)
    X = rng.normal(size=(20, 3))
    model = LinearRegression().fit(X, X @ np.array([1.0, -2.0, 0.5]) + 1.0)
    with mlflow.start_run() as run:
        mlflow.log_param("alpha", "1")
        info = mlflow.sklearn.log_model(model, name="model", input_example=X[:2])
    return run.info.run_id, info, model, X


def test_runs_uri_names_the_model_the_run_logged(server, wasmflow_bin, logged, tmp_path):
    run_id, info, model, X = logged
    request = json.dumps({"dataframe_split": {"columns": ["0", "1", "2"], "data": X[:4].tolist()}})
    env = {"MLFLOW_TRACKING_URI": server.url}
    # -t in its MIME form, the input on stdin.
    done = cli(wasmflow_bin, "models", "predict", "-m", f"runs:/{run_id}/model", "-t", "application/json",
               "--plugins-dir", str(tmp_path / "plugins"), env=env, input=request)
    assert done.returncode == 0, done.stderr
    np.testing.assert_allclose(json.loads(done.stdout)["predictions"], model.predict(X[:4]), rtol=1e-6)
    # The same through the local store, no server involved.
    local = cli(wasmflow_bin, "models", "predict", "-m", f"runs:/{run_id}/model", "-t", "json",
                "--backend-store-uri", server.backend_uri, "--artifacts-destination", str(server.artifacts_dir),
                "--plugins-dir", str(tmp_path / "plugins"), env={"MLFLOW_TRACKING_URI": ""}, input=request)
    assert local.returncode == 0, local.stderr
    assert json.loads(local.stdout) == json.loads(done.stdout)
    # A name the run logged no model under is still a path of the run's own artifacts.
    missing = cli(wasmflow_bin, "models", "predict", "-m", f"runs:/{run_id}/nothing-here", "-t", "json",
                  "--plugins-dir", str(tmp_path / "plugins"), env=env, input=request)
    assert missing.returncode != 0 and "nothing-here" in missing.stderr, missing.stderr
    bad = cli(wasmflow_bin, "models", "predict", "-m", f"runs:/{run_id}/model", "-t", "text/html", env=env, input=request)
    assert bad.returncode != 0 and "unsupported content type 'text/html'" in bad.stderr, bad.stderr


def test_models_serve_takes_h_and_t(server, wasmflow_bin, logged, tmp_path):
    run_id, _, model, X = logged
    served = ModelServer(wasmflow_bin, f"runs:/{run_id}/model", tmp_path, "-h", "127.0.0.1", "-t", "5",
                         env={"MLFLOW_TRACKING_URI": server.url})
    try:
        served.wait_ready()
        answer = served.invoke({"inputs": X[:2].tolist()})
        assert answer.status_code == 200, answer.text
        np.testing.assert_allclose(answer.json()["predictions"], model.predict(X[:2]), rtol=1e-6)
    finally:
        served.stop()


PROJECT = """name: habits
entry_points:
  main:
    parameters:
      n: {type: float, default: 1}
    command: "echo {n}"
"""


def test_run_takes_a_config_file_and_an_existing_run(server, client, wasmflow_bin, tmp_path, unique_name):
    project = tmp_path / "project"
    project.mkdir()
    (project / "MLproject").write_text(PROJECT)
    config = tmp_path / "backend.json"
    config.write_text(json.dumps({}))
    env = {"MLFLOW_TRACKING_URI": server.url}
    experiment_id = client.create_experiment(unique_name("habits-run"))
    run_id = client.create_run(experiment_id).info.run_id
    done = cli(wasmflow_bin, "run", str(project), "-P", "n=2.5", "--env-manager", "local", "-c", str(config),
               "--run-id", run_id, env=env)
    assert done.returncode == 0, done.stderr
    run = client.get_run(run_id)
    assert run.data.params == {"n": "2.5"}
    assert run.info.status == "FINISHED"
    assert len(client.search_runs([experiment_id])) == 1, "no second run was made"

    (tmp_path / "broken.json").write_text("[1, 2]")
    refused = cli(wasmflow_bin, "run", str(project), "-c", str(tmp_path / "broken.json"), env=env)
    assert refused.returncode != 0 and "is not a JSON object" in refused.stderr, refused.stderr
    unknown = cli(wasmflow_bin, "run", str(project), "--env-manager", "local", "--run-id", "0" * 32, env=env)
    assert unknown.returncode != 0 and f"cannot use the run '{'0' * 32}'" in unknown.stderr, unknown.stderr


def test_run_takes_its_experiment_from_mlflow_variables(server, client, wasmflow_bin, tmp_path, unique_name,
                                                        monkeypatch):
    # As `mlflow run`: MLFLOW_EXPERIMENT_NAME / MLFLOW_EXPERIMENT_ID when no flag names one,
    # and a flag wins over them. The client's fluent calls of earlier tests in this process may
    # have exported one (mlflow.set_experiment does), which `cli` would pass on.
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    project = tmp_path / "project"
    project.mkdir()
    (project / "MLproject").write_text(PROJECT)
    by_name = unique_name("habits-env-name")
    env = {"MLFLOW_TRACKING_URI": server.url, "MLFLOW_EXPERIMENT_NAME": by_name}
    done = cli(wasmflow_bin, "run", str(project), "-P", "n=1", "--env-manager", "local", env=env)
    assert done.returncode == 0, done.stderr
    named = client.get_experiment_by_name(by_name)
    assert named is not None, "MLFLOW_EXPERIMENT_NAME named no experiment"
    assert [r.data.params for r in client.search_runs([named.experiment_id])] == [{"n": "1"}]

    by_id = client.create_experiment(unique_name("habits-env-id"))
    flagged = client.create_experiment(unique_name("habits-env-flag"))
    env = {"MLFLOW_TRACKING_URI": server.url, "MLFLOW_EXPERIMENT_ID": by_id}
    done = cli(wasmflow_bin, "run", str(project), "-P", "n=2", "--env-manager", "local", env=env)
    assert done.returncode == 0, done.stderr
    assert [r.data.params for r in client.search_runs([by_id])] == [{"n": "2"}]
    done = cli(wasmflow_bin, "run", str(project), "-P", "n=3", "--env-manager", "local",
               "--experiment-id", flagged, env=env)
    assert done.returncode == 0, done.stderr
    assert [r.data.params for r in client.search_runs([flagged])] == [{"n": "3"}]
    assert len(client.search_runs([by_id])) == 1, "the flag did not win over MLFLOW_EXPERIMENT_ID"


def test_experiments_and_runs_commands(server, client, wasmflow_bin, unique_name, tmp_path):
    env = {"MLFLOW_TRACKING_URI": server.url}
    name = unique_name("cli-exp")
    created = cli(wasmflow_bin, "experiments", "create", "-n", name, env=env)
    assert created.returncode == 0, created.stderr
    experiment_id = created.stdout.strip().rsplit(" ", 1)[-1]
    assert created.stdout.strip() == f"Created experiment '{name}' with id {experiment_id}"
    assert client.get_experiment(experiment_id).name == name

    with mlflow.start_run(experiment_id=experiment_id, run_name="first") as run:
        mlflow.log_metric("loss", 0.5)
        mlflow.log_param("lr", "0.1")
        mlflow.set_tag("team a", "say \"hi\", ok")
    listed = cli(wasmflow_bin, "runs", "list", "--experiment-id", experiment_id, env=env)
    assert listed.returncode == 0 and run.info.run_id in listed.stdout and "first" in listed.stdout, listed.stdout
    described = cli(wasmflow_bin, "runs", "describe", "--run-id", run.info.run_id, env=env)
    assert json.loads(described.stdout)["info"]["run_id"] == run.info.run_id

    out = tmp_path / "runs.csv"
    exported = cli(wasmflow_bin, "experiments", "csv", "-x", experiment_id, "-o", str(out), env=env)
    assert exported.returncode == 0, exported.stderr
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) == 1
    assert rows[0]["run_id"] == run.info.run_id and rows[0]["metrics.loss"] == "0.5"
    assert rows[0]["params.lr"] == "0.1" and rows[0]["tags.team a"] == "say \"hi\", ok"
    assert rows[0]["status"] == "FINISHED" and rows[0]["start_time"].endswith("+00:00")

    assert cli(wasmflow_bin, "runs", "delete", "--run-id", run.info.run_id, env=env).returncode == 0
    assert client.get_run(run.info.run_id).info.lifecycle_stage == "deleted"
    assert cli(wasmflow_bin, "runs", "restore", "--run-id", run.info.run_id, env=env).returncode == 0
    assert client.get_run(run.info.run_id).info.lifecycle_stage == "active"

    renamed = cli(wasmflow_bin, "experiments", "rename", "-x", experiment_id, "--new-name", name + "-2", env=env)
    assert renamed.returncode == 0 and client.get_experiment(experiment_id).name == name + "-2"
    assert cli(wasmflow_bin, "experiments", "delete", "-x", experiment_id, env=env).returncode == 0
    searched = cli(wasmflow_bin, "experiments", "search", "-v", "deleted_only", env=env)
    assert name + "-2" in searched.stdout, searched.stdout
    assert cli(wasmflow_bin, "experiments", "restore", "-x", experiment_id, env=env).returncode == 0
    assert client.get_experiment(experiment_id).lifecycle_stage == "active"


def test_gc_removes_deleted_runs_and_experiments_for_good(isolated_server, wasmflow_bin, tmp_path):
    server = isolated_server()
    client = mlflow.MlflowClient(server.url)
    keep_exp = client.create_experiment("keep")
    gone_exp = client.create_experiment("gone")
    kept = client.create_run(keep_exp)
    purged = client.create_run(keep_exp)
    in_gone = client.create_run(gone_exp)
    for run in (kept, purged, in_gone):
        client.log_metric(run.info.run_id, "m", 1.0)
        (tmp_path / "f.txt").write_text(run.info.run_id)
        client.log_artifact(run.info.run_id, str(tmp_path / "f.txt"))
    client.delete_run(purged.info.run_id)
    client.delete_experiment(gone_exp)
    # A running server uses the same SQLite file; gc works beside it.
    store = ["--backend-store-uri", server.backend_uri, "--artifacts-destination", str(server.artifacts_dir)]

    young = cli(wasmflow_bin, "gc", "--older-than", "1d", "--run-ids", purged.info.run_id, *store)
    assert young.returncode != 0 and "not older than the required age" in young.stderr, young.stderr
    active = cli(wasmflow_bin, "gc", "--run-ids", kept.info.run_id, *store)
    assert active.returncode != 0 and "is not in `deleted` lifecycle stage" in active.stderr, active.stderr
    bad_age = cli(wasmflow_bin, "gc", "--older-than", "soon", *store)
    assert bad_age.returncode != 0 and "could not parse any time information from 'soon'" in bad_age.stderr

    done = cli(wasmflow_bin, "gc", *store)
    assert done.returncode == 0, done.stderr
    assert f"Run with ID {purged.info.run_id} has been permanently deleted." in done.stdout
    assert f"Experiment with ID {gone_exp} has been permanently deleted." in done.stdout
    for run in (purged, in_gone):
        with pytest.raises(mlflow.exceptions.MlflowException, match="RESOURCE_DOES_NOT_EXIST|not found"):
            client.get_run(run.info.run_id)
    with pytest.raises(mlflow.exceptions.MlflowException):
        client.get_experiment(gone_exp)
    assert client.get_run(kept.info.run_id).data.metrics == {"m": 1.0}
    assert [f.path for f in client.list_artifacts(kept.info.run_id)] == ["f.txt"]
    artifact_files = {p.read_text() for p in Path(server.artifacts_dir).rglob("f.txt")}
    assert artifact_files == {kept.info.run_id}, "the purged runs' artifacts are gone, the kept one's stay"
    # A second gc finds nothing left to do.
    again = cli(wasmflow_bin, "gc", *store)
    assert again.returncode == 0 and again.stdout == "", again.stdout
