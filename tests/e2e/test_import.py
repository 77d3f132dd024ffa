"""`wasmflow import mlflow`: MLflow stores written by the official client (its SQL schema in SQLite
and in PostgreSQL, and its `mlruns` file store) are imported, a wasmflow server is started on the result, and everything the
official client reads from the source is compared with what it reads from wasmflow: experiments,
runs, params, tags, every metric point, datasets, logged models, registered models, versions,
aliases and artifacts, with the same ids and URIs. Also: a second import changes nothing, an
import killed halfway and started again ends complete, --copy-artifacts moves the files under the
server's artifacts destination, and an MLflow store given to `wasmflow server` is refused in one
line.

The target is wasmflow's SQLite store, or with WASMFLOW_E2E_BACKEND=postgres (scripts/test.sh's
PostgreSQL phase runs the tests named there) a PostgreSQL database of its own.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import mlflow
import numpy as np
import pytest
import requests
from mlflow import MlflowClient
from mlflow.entities import ViewType

from conftest import POSTGRES, ServerProcess, fresh_postgres_database

# Written by the official client into the store MLFLOW_TRACKING_URI names; no server involved.
MAKE_STORE = textwrap.dedent(
    """
    import numpy as np, pandas as pd, mlflow
    from mlflow import MlflowClient
    from sklearn.linear_model import LinearRegression

    c = MlflowClient()
    mlflow.set_experiment("imported")
    c.set_experiment_tag(mlflow.get_experiment_by_name("imported").experiment_id, "team", "ml")
    with mlflow.start_run(run_name="train") as run:
        mlflow.log_params({"alpha": "0.5", "layers": "3"})
        mlflow.set_tags({"stage": "dev", "nested/key": "v"})
        for step in range(5):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
            mlflow.log_metric("acc", step / 10, step=step)
        mlflow.log_metric("odd", float("nan"))
        mlflow.log_metric("big", float("inf"))
        mlflow.log_text("hello", "notes/hello.txt")
        ds = mlflow.data.from_pandas(pd.DataFrame({"x": [1.0, 2.0]}), name="train-set")
        mlflow.log_input(ds, context="training")
        model = LinearRegression().fit(np.array([[1.0], [2.0]]), np.array([2.0, 4.0]))
        info = mlflow.sklearn.log_model(model, name="model", params={"fit": "ols"})
        mlflow.log_metric("val_r2", 0.99, model_id=info.model_id)
    v1 = mlflow.register_model(f"models:/{info.model_id}", "imported-model")
    c.set_registered_model_tag("imported-model", "owner", "team-ml")
    c.update_registered_model("imported-model", description="a line")
    c.set_model_version_tag("imported-model", v1.version, "validated", "yes")
    c.set_registered_model_alias("imported-model", "champion", v1.version)
    c.transition_model_version_stage("imported-model", v1.version, "Staging")
    mlflow.register_model(f"runs:/{run.info.run_id}/model", "imported-model")
    with mlflow.start_run(run_name="thrown-away") as gone:
        mlflow.log_metric("loss", 3.0)
    c.delete_run(gone.info.run_id)
    c.delete_experiment(c.create_experiment("deleted-experiment"))
    """
)


def make_store(tmp_path: Path, uri: str, script: str = MAKE_STORE) -> None:
    env = dict(os.environ, MLFLOW_TRACKING_URI=uri, MLFLOW_REGISTRY_URI=uri, MLFLOW_ALLOW_FILE_STORE="true")
    made = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert made.returncode == 0, made.stderr[-2000:]


def mlflow_postgres_uri() -> str:
    """A new database on the test PostgreSQL server for MLflow's own SQL store, in SQLAlchemy's
    form with the driver MLflow users name (`postgresql+psycopg2://`)."""
    if not os.environ.get("WASMFLOW_TEST_POSTGRES_URI"):
        pytest.skip("MLflow's PostgreSQL store needs WASMFLOW_TEST_POSTGRES_URI (scripts/test.sh starts a server)")
    pytest.importorskip("psycopg2", reason="MLflow's PostgreSQL store needs psycopg2 (tests/requirements.txt)")
    return fresh_postgres_database().replace("postgresql://", "postgresql+psycopg2://", 1)


def target_store(store: Path) -> str:
    """wasmflow's store an import writes into: a SQLite file in `store`, or a new PostgreSQL
    database on the PostgreSQL run of the suite."""
    return fresh_postgres_database() if POSTGRES else f"sqlite:///{store / 'db.sqlite'}"


def import_(wasmflow_bin: str, source: str, target: str, *extra: str) -> dict[str, list[int | None]]:
    out = subprocess.run(
        [wasmflow_bin, "import", "mlflow", "--from", source, "--to", target, *extra],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, f"import failed:\n{out.stdout}\n{out.stderr}"
    return parse_table(out.stdout)


def parse_table(text: str) -> dict[str, list[int | None]]:
    """kind -> [source, imported, already there, in wasmflow (None for '-')]."""
    rows = {}
    for line in text.splitlines()[1:]:
        cells = line.rsplit(None, 4)
        assert "MISSING" not in line, text
        rows[cells[0].strip()] = [None if c == "-" else int(c) for c in cells[1:]]
    return rows


def same_float(a: float, b: float) -> bool:
    """Equal, NaN included; ±inf is stored as ±max float, as MLflow's SQL store does (its file
    store keeps inf)."""
    def stored(x: float) -> float:
        return math.copysign(sys.float_info.max, x) if math.isinf(x) else x
    return (math.isnan(a) and math.isnan(b)) or stored(a) == stored(b)


def points(history) -> list[tuple]:
    """A metric history as sorted distinct (timestamp, step, value), NaN as a string and ±inf
    as stored."""
    def norm(x: float):
        return "nan" if math.isnan(x) else math.copysign(sys.float_info.max, x) if math.isinf(x) else x
    return sorted({(m.timestamp, m.step, norm(m.value)) for m in history}, key=repr)


def compare_stores(src: MlflowClient, dst: MlflowClient) -> None:
    experiments = src.search_experiments(view_type=ViewType.ALL)
    got = {e.experiment_id: e for e in dst.search_experiments(view_type=ViewType.ALL)}
    for e in experiments:
        w = got[e.experiment_id]
        assert (w.name, w.artifact_location, w.lifecycle_stage) == (
            e.name, e.artifact_location, e.lifecycle_stage)
        assert (w.creation_time, w.last_update_time) == (e.creation_time, e.last_update_time)
        assert w.tags == e.tags
    ids = [e.experiment_id for e in experiments]
    runs = src.search_runs(ids, run_view_type=ViewType.ALL, max_results=1000)
    assert runs
    for run in runs:
        w = dst.get_run(run.info.run_id)
        for field in ("run_name", "experiment_id", "status", "start_time", "end_time",
                      "lifecycle_stage", "artifact_uri", "user_id"):
            assert getattr(w.info, field) == getattr(run.info, field), field
        assert w.data.params == run.data.params
        assert w.data.tags == run.data.tags
        assert w.data.metrics.keys() == run.data.metrics.keys()
        for key, value in run.data.metrics.items():
            assert same_float(w.data.metrics[key], value), key
            # MLflow's file store answers a point logged twice twice; its SQL store and wasmflow once.
            assert points(dst.get_metric_history(run.info.run_id, key)) == points(
                src.get_metric_history(run.info.run_id, key)), key
        want_inputs = {(d.dataset.name, d.dataset.digest, tuple(sorted((t.key, t.value) for t in d.tags)))
                       for d in run.inputs.dataset_inputs}
        have_inputs = {(d.dataset.name, d.dataset.digest, tuple(sorted((t.key, t.value) for t in d.tags)))
                       for d in w.inputs.dataset_inputs}
        assert have_inputs == want_inputs
        assert {o.model_id for o in w.outputs.model_outputs} == {o.model_id for o in run.outputs.model_outputs}
    models = src.search_logged_models(experiment_ids=ids)
    assert models
    for m in models:
        w = dst.get_logged_model(m.model_id)
        assert (w.name, w.artifact_location, w.status, w.source_run_id, w.experiment_id) == (
            m.name, m.artifact_location, m.status, m.source_run_id, m.experiment_id)
        assert w.params == m.params
        assert w.tags == m.tags
        have = sorted((x.key, x.step, x.value) for x in w.metrics)
        want = sorted((x.key, x.step, x.value) for x in m.metrics)
        # MLflow's SQL store keeps a logged model's NaN as 0.0 (logged_model_metrics has no NaN
        # flag); wasmflow answers the NaN the run logged.
        assert [(k, s) for k, s, _ in have] == [(k, s) for k, s, _ in want]
        assert all(same_float(a, b) or (math.isnan(a) and b == 0.0)
                   for (_, _, a), (_, _, b) in zip(have, want)), (have, want)
    registered = src.search_registered_models()
    assert registered
    for rm in registered:
        w = dst.get_registered_model(rm.name)
        # The local store answers alias versions as numbers, REST (MLflow's server too) as strings.
        assert (w.description, w.tags, w.aliases, w.creation_timestamp) == (
            rm.description, rm.tags, {a: str(v) for a, v in rm.aliases.items()}, rm.creation_timestamp)
        versions = src.search_model_versions(f"name = '{rm.name}'")
        assert versions
        for found in versions:
            v = src.get_model_version(rm.name, found.version)  # search leaves aliases out
            wv = dst.get_model_version(rm.name, v.version)
            # model_id is left out: the client reads it from neither REST nor its SQL store (only
            # from the file store); the REST answer is checked in the test.
            for field in ("source", "run_id", "current_stage", "tags", "aliases", "status",
                          "creation_timestamp"):
                assert getattr(wv, field) == getattr(v, field), field
            assert dst.get_model_version_download_uri(rm.name, v.version) == \
                src.get_model_version_download_uri(rm.name, v.version)


# MLflow's three stores as sources; on the PostgreSQL run only MLflow's PostgreSQL store (the
# readers are the same, the writer is what that run tests).
@pytest.mark.parametrize("kind", ["postgres"] if POSTGRES else ["sqlite", "mlruns", "postgres"])
def test_import_mlflow_store(kind, tmp_path, wasmflow_bin, isolated_server, monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    source = {
        "sqlite": lambda: f"sqlite:///{tmp_path}/mlflow.db",
        "mlruns": lambda: f"file://{tmp_path}/mlruns",
        "postgres": mlflow_postgres_uri,
    }[kind]()
    make_store(tmp_path, source)
    store = tmp_path / "wasmflow"
    store.mkdir()
    target = target_store(store)
    first = import_(wasmflow_bin, source, target)
    assert first["runs"][:2] == [2, 2] and first["metric points"][1] >= 12, first
    for kind_, (src_n, imported, there, present) in first.items():
        assert imported + there == src_n, kind_
        assert present is None or present == src_n, kind_

    srv = isolated_server(store, backend_uri=target)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", srv.url)
    src = MlflowClient(tracking_uri=source, registry_uri=source)
    dst = MlflowClient(tracking_uri=srv.url, registry_uri=srv.url)
    compare_stores(src, dst)

    logged = src.search_logged_models(experiment_ids=[e.experiment_id for e in src.search_experiments()])
    answer = requests.get(f"{srv.url}/api/2.0/mlflow/model-versions/get",
                          params={"name": "imported-model", "version": "1"}).json()
    assert answer["model_version"]["model_id"] == logged[0].model_id

    # runs:/ and models:/ URIs of the source resolve against wasmflow, files and all.
    exp_ids = [e.experiment_id for e in src.search_experiments() if e.name == "imported"]
    run = src.search_runs(exp_ids, filter_string="attributes.run_name = 'train'")[0]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", srv.url)
    mlflow.set_tracking_uri(srv.url)  # the registry follows it
    text = Path(mlflow.artifacts.download_artifacts(f"runs:/{run.info.run_id}/notes/hello.txt",
                                                    dst_path=str(tmp_path / "dl"))).read_text()
    assert text == "hello"
    for uri in ("models:/imported-model@champion", "models:/imported-model/2",
                f"runs:/{run.info.run_id}/model"):
        model = mlflow.pyfunc.load_model(uri)
        assert model.predict(np.array([[3.0]]))[0] == pytest.approx(6.0), uri
    predicted = subprocess.run(
        [wasmflow_bin, "models", "predict", "-m", "models:/imported-model@champion",
         "--content-type", "json"],
        input='{"inputs": [[3.0]]}', capture_output=True, text=True, timeout=300,
        env=dict(os.environ, MLFLOW_TRACKING_URI=srv.url),
    )
    assert predicted.returncode == 0, predicted.stderr
    assert json.loads(predicted.stdout)["predictions"][0] == pytest.approx(6.0)
    srv.stop()

    # A second import finds everything there.
    again = import_(wasmflow_bin, source, target)
    assert all(imported == 0 for _, imported, _, _ in again.values()), again
    assert again["runs"][2] == 2 and again["metric points"][2] == first["metric points"][0]
    if kind == "postgres":
        # MLflow's PostgreSQL database given to the server is refused in one line.
        out = subprocess.run([wasmflow_bin, "server", "--backend-store-uri", source, "--port", "0"],
                             capture_output=True, text=True, timeout=60,
                             env={k: v for k, v in os.environ.items() if k != "RUST_BACKTRACE"})
        lines = out.stderr.strip().splitlines()
        assert out.returncode != 0 and len(lines) == 1, out.stderr
        assert "wasmflow import mlflow --from" in lines[0], lines


def test_import_copies_artifacts(tmp_path, wasmflow_bin, isolated_server, monkeypatch):
    source = f"sqlite:///{tmp_path}/mlflow.db"
    make_store(tmp_path, source)
    store = tmp_path / "wasmflow"
    store.mkdir()
    target = target_store(store)
    import_(wasmflow_bin, source, target, "--copy-artifacts",
            "--artifacts-destination", str(store / "artifacts"))
    srv = isolated_server(store, backend_uri=target)
    dst = MlflowClient(tracking_uri=srv.url, registry_uri=srv.url)
    run = dst.search_runs([e.experiment_id for e in dst.search_experiments() if e.name == "imported"],
                          filter_string="attributes.run_name = 'train'")[0]
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/")
    copied = store / "artifacts" / run.info.artifact_uri.removeprefix("mlflow-artifacts:/")
    assert (copied / "notes" / "hello.txt").read_text() == "hello"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", srv.url)
    mlflow.set_tracking_uri(srv.url)  # the registry follows it
    model = mlflow.pyfunc.load_model("models:/imported-model@champion")
    assert model.predict(np.array([[1.0]]))[0] == pytest.approx(2.0)
    location = dst.get_model_version_download_uri("imported-model", "1")
    assert location.startswith("mlflow-artifacts:/"), location


class WasmflowS3Server(ServerProcess):
    """A wasmflow server whose artifact proxy keeps its files under an S3 URI."""

    destination = ""

    def command(self) -> list[str]:
        cmd = super().command()
        cmd[cmd.index("--artifacts-destination") + 1] = self.destination
        return cmd


def test_import_copies_artifacts_from_and_to_s3(tmp_path, wasmflow_bin, moto_s3, monkeypatch):
    for key, value in moto_s3.env().items():
        monkeypatch.setenv(key, value)
    bucket = moto_s3.new_bucket()
    # The experiment's files in the bucket: the official client (boto3) writes them there itself.
    source_db = tmp_path / "mlflow.db"
    script = f"import mlflow; mlflow.create_experiment('imported', artifact_location='s3://{bucket}/src/runs')\n"
    make_store(tmp_path, f"sqlite:///{source_db}", script + MAKE_STORE)
    in_source = {k.removeprefix("src/"): v["Size"] for k, v in moto_s3.keys(bucket, "src/").items()}
    assert any(k.endswith("/notes/hello.txt") for k in in_source), in_source
    # The same store as an MLflow server with `--artifacts-destination s3://BUCKET/src` records it:
    # its runs' and models' URIs name the proxy (`mlflow-artifacts:/runs/...`).
    proxied_db = tmp_path / "mlflow-proxied.db"
    shutil.copy(source_db, proxied_db)
    con = sqlite3.connect(proxied_db)
    old = f"s3://{bucket}/src/"
    for table, column in [("experiments", "artifact_location"), ("runs", "artifact_uri"),
                          ("logged_models", "artifact_location"), ("model_versions", "source"),
                          ("model_versions", "storage_location")]:
        con.execute(f"UPDATE {table} SET {column} = replace({column}, ?, 'mlflow-artifacts:/')", (old,))
    con.commit()
    con.close()

    def copied(prefix: str) -> dict[str, int]:
        return {k.removeprefix(prefix): v["Size"] for k, v in moto_s3.keys(bucket, prefix).items()}

    stores = {}
    for name, source, extra in [("direct", source_db, []),
                                ("proxied", proxied_db, ["--artifacts-from", f"s3://{bucket}/src"])]:
        store = tmp_path / name
        store.mkdir()
        target = target_store(store)
        copy = [*extra, "--copy-artifacts", "--artifacts-destination", f"s3://{bucket}/{name}"]
        import_(wasmflow_bin, f"sqlite:///{source}", target, *copy)
        # Every file of the source, under the destination as <experiment>/<run>/artifacts/...
        # and <experiment>/models/<model>/artifacts/...
        dst = copied(f"{name}/")
        assert sorted(dst.values()) == sorted(in_source.values()) and len(dst) == len(in_source), (dst, in_source)
        again = import_(wasmflow_bin, f"sqlite:///{source}", target, *copy)
        assert all(imported == 0 for _, imported, _, _ in again.values()), again
        assert copied(f"{name}/") == dst
        stores[name] = (store, target)

    # A wasmflow server on the bucket serves what was imported, files and models.
    store, target = stores["proxied"]
    srv = WasmflowS3Server(wasmflow_bin, store, backend_uri=target)
    srv.destination = f"s3://{bucket}/proxied"
    srv.start()
    try:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", srv.url)
        mlflow.set_tracking_uri(srv.url)
        client = MlflowClient(tracking_uri=srv.url)
        run = client.search_runs([client.get_experiment_by_name("imported").experiment_id],
                                 filter_string="attributes.run_name = 'train'")[0]
        assert run.info.artifact_uri.startswith("mlflow-artifacts:/")
        got = mlflow.artifacts.download_artifacts(f"runs:/{run.info.run_id}/notes/hello.txt",
                                                  dst_path=str(tmp_path / "dl"))
        assert Path(got).read_text() == "hello"
        model = mlflow.pyfunc.load_model("models:/imported-model@champion")
        assert model.predict(np.array([[3.0]]))[0] == pytest.approx(6.0)
    finally:
        srv.stop()


def test_killed_import_resumes(tmp_path, wasmflow_bin, isolated_server):
    source_db = tmp_path / "mlflow.db"
    make_store(tmp_path, f"sqlite:///{source_db}")
    # A long history, written straight into MLflow's metrics table: the client would take
    # minutes to log it.
    points = 600_000
    con = sqlite3.connect(source_db)
    run_id = con.execute("SELECT run_uuid FROM runs WHERE name = 'train'").fetchone()[0]
    con.executemany(
        "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) VALUES (?, ?, ?, ?, ?, 0)",
        ((f"long{i % 3}", i * 0.5, 1_700_000_000_000 + i, run_id, i) for i in range(points)),
    )
    con.commit()
    con.close()
    store = tmp_path / "wasmflow"
    store.mkdir()
    target = target_store(store)
    proc = subprocess.Popen(
        [wasmflow_bin, "import", "mlflow", "--from", f"sqlite:///{source_db}", "--to",
         target, "--batch-size", "2000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    for line in proc.stderr:
        if line.startswith("progress:"):
            break
    assert proc.poll() is None, "the import ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)

    second = import_(wasmflow_bin, f"sqlite:///{source_db}", target)
    src_n, imported, there, present = second["metric points"]
    assert there > 0 and imported > 0, second
    assert present == src_n >= points
    srv = isolated_server(store, backend_uri=target)
    dst = MlflowClient(tracking_uri=srv.url)
    history = dst.get_metric_history(run_id, "long1")
    assert len(history) == points // 3
    assert dst.get_run(run_id).data.metrics["long1"] == (points - 2) * 0.5


def test_server_refuses_mlflow_stores(tmp_path, wasmflow_bin):
    make_store(tmp_path, f"sqlite:///{tmp_path}/mlflow.db")
    for uri in (f"sqlite:///{tmp_path}/mlflow.db", f"file://{tmp_path}/mlruns", str(tmp_path / "mlruns")):
        env = {k: v for k, v in os.environ.items() if k != "RUST_BACKTRACE"}
        out = subprocess.run([wasmflow_bin, "server", "--backend-store-uri", uri, "--port", "0"],
                             capture_output=True, text=True, timeout=60, env=env)
        assert out.returncode != 0
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and "wasmflow import mlflow --from" in lines[0], out.stderr
    # The MLflow database is untouched.
    con = sqlite3.connect(tmp_path / "mlflow.db")
    assert con.execute("SELECT count(*) FROM sqlite_master WHERE name = 'registry_events'").fetchone()[0] == 0


# MLflow 2.x writes an older schema (alembic revision 0584bdc529eb for 2.22: no logged models, no
# workspaces, model versions' storage_location is their source). Its client lives in a venv of
# its own, made once under the target directory; mlflow-skinny with SQLAlchemy and alembic is all
# its SQL store needs.
MLFLOW2 = "2.22.1"
MLFLOW2_VENV = Path(
    os.environ.get("WASMFLOW_MLFLOW2_VENV")
    or Path(os.environ.get("CARGO_TARGET_DIR") or Path(__file__).resolve().parents[2] / "target")
    / f"mlflow-{MLFLOW2}-venv"
)

MAKE_STORE_2 = textwrap.dedent(
    """
    import mlflow
    from mlflow import MlflowClient
    c = MlflowClient()
    mlflow.set_experiment("old")
    with mlflow.start_run(run_name="r") as run:
        mlflow.log_params({"a": "1"})
        mlflow.set_tag("t", "v")
        for step in range(4):
            mlflow.log_metric("m", step * 1.5, step=step)
        mlflow.log_text("x", "notes/x.txt")
    c.create_registered_model("old-model", tags={"k": "v"})
    v = c.create_model_version("old-model", f"runs:/{run.info.run_id}/notes", run.info.run_id)
    c.set_registered_model_alias("old-model", "prod", v.version)
    c.transition_model_version_stage("old-model", v.version, "Production")
    """
)


def mlflow2_python() -> str:
    python = MLFLOW2_VENV / "bin" / "python"
    if not python.exists():
        made = subprocess.run([sys.executable, "-m", "venv", str(MLFLOW2_VENV)], capture_output=True)
        pip = subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             f"mlflow-skinny=={MLFLOW2}", "sqlalchemy>=2.0.20,<2.1", "alembic"],
            capture_output=True, text=True, timeout=600,
        ) if made.returncode == 0 else made
        if pip.returncode != 0:
            subprocess.run(["rm", "-rf", str(MLFLOW2_VENV)])
            pytest.skip(f"cannot install mlflow-skinny {MLFLOW2}: {pip.stderr[-500:]}")
    return str(python)


def test_import_mlflow_2_schema(tmp_path, wasmflow_bin, isolated_server, monkeypatch):
    python = mlflow2_python()
    source = f"sqlite:///{tmp_path}/mlflow.db"
    env = dict(os.environ, MLFLOW_TRACKING_URI=source, MLFLOW_REGISTRY_URI=source)
    made = subprocess.run([python, "-c", MAKE_STORE_2], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert made.returncode == 0, made.stderr[-2000:]
    version = sqlite3.connect(tmp_path / "mlflow.db").execute("SELECT version_num FROM alembic_version").fetchone()
    assert version == ("0584bdc529eb",)
    store = tmp_path / "wasmflow"
    store.mkdir()
    target = target_store(store)
    first = import_(wasmflow_bin, source, target)
    assert first["runs"][1] == 1 and first["metric points"][1] == 4 and first["model versions"][1] == 1
    srv = isolated_server(store, backend_uri=target)
    # The 3.x client reads both: the source directly, wasmflow over REST.
    compare_stores_2(MlflowClient(tracking_uri=source, registry_uri=source),
                     MlflowClient(tracking_uri=srv.url, registry_uri=srv.url))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", srv.url)
    mlflow.set_tracking_uri(srv.url)
    path = mlflow.artifacts.download_artifacts("models:/old-model@prod", dst_path=str(tmp_path / "dl"))
    assert (Path(path) / "x.txt").read_text() == "x"
    srv.stop()
    again = import_(wasmflow_bin, source, target)
    assert all(imported == 0 for _, imported, _, _ in again.values()), again


def compare_stores_2(src: MlflowClient, dst: MlflowClient) -> None:
    """compare_stores without logged models, which MLflow 2 has not."""
    exp = src.get_experiment_by_name("old")
    assert dst.get_experiment(exp.experiment_id).name == "old"
    run = src.search_runs([exp.experiment_id])[0]
    w = dst.get_run(run.info.run_id)
    assert (w.info.run_name, w.info.artifact_uri, w.info.start_time) == (
        run.info.run_name, run.info.artifact_uri, run.info.start_time)
    assert w.data.params == run.data.params and w.data.tags == run.data.tags
    assert [(m.step, m.value) for m in dst.get_metric_history(run.info.run_id, "m")] == [
        (m.step, m.value) for m in src.get_metric_history(run.info.run_id, "m")]
    rm = dst.get_registered_model("old-model")
    assert rm.tags == {"k": "v"} and rm.aliases == {"prod": "1"}
    v = dst.get_model_version("old-model", "1")
    sv = src.get_model_version("old-model", "1")
    assert (v.source, v.run_id, v.current_stage) == (sv.source, sv.run_id, "Production")
