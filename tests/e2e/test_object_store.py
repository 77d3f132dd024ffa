"""Artifacts in S3 (moto's S3 server), driven with the official client: the proxy
(`--artifacts-destination s3://bucket/prefix`) streams uploads (multipart for large files) and
downloads, lists and deletes; everything the server reads for itself (serving a model, model
files, get-artifact, `wasmflow gc`) reads the bucket; with `--default-artifact-root s3://...
--no-serve-artifacts` the client writes to the bucket itself and the server reads what it wrote.
Unsupported artifact URIs are refused at start.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import mlflow
import numpy as np
import pytest
import requests
from conftest import ModelServer, ServerProcess
from mlflow import MlflowClient
from sklearn.linear_model import LinearRegression

# The proxy sends a file larger than this as a multipart upload (MULTIPART_PART_SIZE in
# host/artifacts/src/object.rs): 5 MiB, S3's smallest part.
PART = 5 * 1024 * 1024


class S3Server(ServerProcess):
    """A server whose artifacts live in a bucket."""

    def __init__(self, *args, artifacts: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.artifact_args = artifacts

    def command(self) -> list[str]:
        cmd = super().command()
        i = cmd.index("--artifacts-destination")
        del cmd[i : i + 2]
        return cmd + self.artifact_args


@pytest.fixture
def s3_env(moto_s3, monkeypatch, tmp_path):
    """AWS_* and MLFLOW_S3_ENDPOINT_URL for the servers started here and for the client (boto3)."""
    for key, value in moto_s3.env().items():
        monkeypatch.setenv(key, value)
    # The server's downloads of models for the plugins.
    monkeypatch.setenv("WASMFLOW_MODEL_CACHE_DIR", str(tmp_path / "model-cache"))
    return moto_s3


@pytest.fixture
def s3_server(s3_env, wasmflow_bin, tmp_path, monkeypatch):
    """`start(*artifact_args)` -> a server on a bucket of its own, the tracking URI set to it."""
    started = []

    def start(*artifact_args: str) -> S3Server:
        srv = S3Server(wasmflow_bin, tmp_path / f"store{len(started)}", artifacts=list(artifact_args)).start()
        started.append(srv)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", srv.url)
        mlflow.set_tracking_uri(srv.url)
        return srv

    yield start
    for srv in started:
        srv.stop()


def _files(client: MlflowClient, run_id: str, path: str | None = None):
    return sorted((f.path, f.is_dir, f.file_size) for f in client.list_artifacts(run_id, path))


def test_the_proxy_keeps_artifacts_in_s3(s3_server, s3_env, tmp_path):
    bucket = s3_env.new_bucket()
    srv = s3_server("--artifacts-destination", f"s3://{bucket}/mlflow")
    client = MlflowClient(srv.url)
    mlflow.set_experiment("s3-proxy")
    (tmp_path / "dir" / "sub").mkdir(parents=True)
    (tmp_path / "dir" / "a.txt").write_text("alpha")
    (tmp_path / "dir" / "sub" / "b.json").write_text('{"b": 1}')
    # Just over one part: the smallest upload that goes up in two parts.
    big = np.random.default_rng(0).bytes(PART + 1024 * 1024)
    (tmp_path / "big.bin").write_bytes(big)
    (tmp_path / "note.txt").write_text("note")
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(tmp_path / "note.txt"))
        mlflow.log_artifacts(str(tmp_path / "dir"), "data")
        mlflow.log_artifact(str(tmp_path / "big.bin"), "blobs")
    run_id = run.info.run_id
    exp_id = run.info.experiment_id
    assert run.info.artifact_uri == f"mlflow-artifacts:/{exp_id}/{run_id}/artifacts"

    # In the bucket under the prefix, where MLflow's proxy puts them.
    base = f"mlflow/{exp_id}/{run_id}/artifacts"
    keys = s3_env.keys(bucket)
    assert sorted(keys) == sorted(
        f"{base}/{p}" for p in ["note.txt", "data/a.txt", "data/sub/b.json", "blobs/big.bin"]
    ), keys
    assert keys[f"{base}/blobs/big.bin"]["Size"] == len(big)
    # A multipart object's ETag is "<md5 of the parts' md5s>-<number of parts>".
    assert keys[f"{base}/blobs/big.bin"]["ETag"].strip('"').endswith("-2"), keys[f"{base}/blobs/big.bin"]
    assert keys[f"{base}/note.txt"]["ETag"].strip('"').count("-") == 0

    # Listing: direct children, as MLflow's proxy answers.
    assert _files(client, run_id) == [("blobs", True, None), ("data", True, None), ("note.txt", False, 4)]
    assert _files(client, run_id, "data") == [("data/a.txt", False, 5), ("data/sub", True, None)]
    assert _files(client, run_id, "data/sub") == [("data/sub/b.json", False, 8)]
    assert _files(client, run_id, "missing") == []
    assert _files(client, run_id, "note.txt") == []

    # Downloads through the client, the proxy and the UI's get-artifact.
    out = Path(client.download_artifacts(run_id, "", str(tmp_path / "down")))
    assert (out / "data" / "sub" / "b.json").read_text() == '{"b": 1}'
    assert (out / "blobs" / "big.bin").read_bytes() == big
    r = requests.get(f"{srv.url}/get-artifact", params={"run_id": run_id, "path": "data/a.txt"}, timeout=30)
    assert r.status_code == 200 and r.content == b"alpha", r.text
    r = requests.get(f"{srv.url}/api/2.0/mlflow-artifacts/artifacts/{base[len('mlflow/'):]}/blobs/big.bin", timeout=60)
    assert r.status_code == 200 and r.content == big and r.headers["Content-Length"] == str(len(big))
    missing = requests.get(f"{srv.url}/get-artifact", params={"run_id": run_id, "path": "nope.txt"}, timeout=30)
    assert missing.status_code == 404 and missing.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    listed = requests.get(f"{srv.url}/api/2.0/mlflow/artifacts/list", params={"run_id": run_id, "path": "data"}, timeout=30)
    assert listed.json()["files"] == [
        {"path": "data/a.txt", "is_dir": False, "file_size": 5},
        {"path": "data/sub", "is_dir": True},
    ]

    # Path safety as for a local destination.
    proxy = f"{srv.url}/api/2.0/mlflow-artifacts/artifacts"
    for bad in ["..%2f..%2fetc%2fpasswd", f"{exp_id}/%2e%2e/%2e%2e/x"]:
        r = requests.get(f"{proxy}/{bad}", timeout=30)
        assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE", (bad, r.text)

    # Delete a file, then a whole directory (prefix).
    assert requests.delete(f"{proxy}/{exp_id}/{run_id}/artifacts/note.txt", timeout=30).status_code == 200
    assert requests.delete(f"{proxy}/{exp_id}/{run_id}/artifacts/data", timeout=30).status_code == 200
    assert sorted(s3_env.keys(bucket)) == [f"{base}/blobs/big.bin"]
    gone = requests.delete(f"{proxy}/{exp_id}/{run_id}/artifacts/data", timeout=30)
    assert gone.status_code == 404, gone.text


def test_a_model_in_s3_is_served_loaded_and_collected(s3_server, s3_env, wasmflow_bin, tmp_path):
    bucket = s3_env.new_bucket()
    destination = f"s3://{bucket}/models"
    srv = s3_server("--artifacts-destination", destination)
    client = MlflowClient(srv.url)
    mlflow.set_experiment("s3-models")
    rng = np.random.default_rng(3)
    X = rng.normal(size=(20, 3))
    model = LinearRegression().fit(X, X @ np.array([1.0, -2.0, 0.5]) + 1.0)
    with mlflow.start_run() as run:
        info = mlflow.sklearn.log_model(model, name="model", input_example=X[:2], registered_model_name="s3-model")
    want = model.predict(X[:4])
    assert any(k.endswith("/MLmodel") for k in s3_env.keys(bucket)), s3_env.keys(bucket)

    # The official client loads it back through the proxy.
    loaded = mlflow.pyfunc.load_model("models:/s3-model/1")
    np.testing.assert_allclose(loaded.predict(X[:4]), want, rtol=1e-6)

    # The server serves it: the plugin reads a local copy of the files.
    body = {"dataframe_split": {"columns": ["0", "1", "2"], "data": X[:4].tolist()}}
    r = requests.post(f"{srv.url}/serving/models/s3-model/1/invocations", json=body, timeout=300)
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(r.json()["predictions"], want, rtol=1e-6)

    # The model's files through the logged-model and model-version routes.
    listing = requests.get(
        f"{srv.url}/api/2.0/mlflow/logged-models/{info.model_id}/artifacts/directories", timeout=30
    ).json()
    assert "MLmodel" in [f["path"] for f in listing["files"]], listing
    mlmodel = requests.get(
        f"{srv.url}/api/2.0/mlflow/logged-models/{info.model_id}/artifacts/files",
        params={"artifact_file_path": "MLmodel"}, timeout=30,
    )
    assert mlmodel.status_code == 200 and b"flavors:" in mlmodel.content
    version_file = requests.get(
        f"{srv.url}/model-versions/get-artifact", params={"name": "s3-model", "version": "1", "path": "MLmodel"}, timeout=30
    )
    assert version_file.status_code == 200 and version_file.content == mlmodel.content

    # `wasmflow models serve` with the tracking URI of the server (downloads through the proxy),
    # and from the store directly with the bucket as --artifacts-destination.
    for uri, env, extra in [
        ("models:/s3-model/1", {"MLFLOW_TRACKING_URI": srv.url}, ()),
        (f"runs:/{run.info.run_id}/model", {"MLFLOW_TRACKING_URI": ""},
         ("--backend-store-uri", srv.backend_uri, "--artifacts-destination", destination)),
    ]:
        served = ModelServer(wasmflow_bin, uri, tmp_path, *extra, env=env)
        try:
            served.wait_ready()
            answer = served.invoke({"inputs": X[:4].tolist()})
            assert answer.status_code == 200, answer.text
            np.testing.assert_allclose(answer.json()["predictions"], want, rtol=1e-6)
        finally:
            served.stop()

    # Deleting the run and `wasmflow gc` remove its artifacts from the bucket.
    with mlflow.start_run() as doomed:
        mlflow.log_text("bye", "bye.txt")
    doomed_prefix = f"models/{doomed.info.experiment_id}/{doomed.info.run_id}/"
    assert s3_env.keys(bucket, doomed_prefix)
    client.delete_run(doomed.info.run_id)
    gc = subprocess.run(
        [wasmflow_bin, "gc", "--backend-store-uri", srv.backend_uri,
         "--artifacts-destination", destination, "--run-ids", doomed.info.run_id],
        capture_output=True, text=True, timeout=120,
    )
    assert gc.returncode == 0, gc.stderr
    assert "warning" not in gc.stderr, gc.stderr
    assert s3_env.keys(bucket, doomed_prefix) == {}
    # The registered model's files are untouched.
    assert any(k.endswith("/MLmodel") for k in s3_env.keys(bucket))


def test_without_the_proxy_the_client_writes_to_s3_and_the_server_reads_it(s3_server, s3_env, tmp_path):
    bucket = s3_env.new_bucket()
    srv = s3_server("--default-artifact-root", f"s3://{bucket}/root", "--no-serve-artifacts")
    client = MlflowClient(srv.url)
    exp_id = client.create_experiment("s3-direct")
    assert client.get_experiment(exp_id).artifact_location == f"s3://{bucket}/root/{exp_id}"
    mlflow.set_experiment(experiment_id=exp_id)
    rng = np.random.default_rng(5)
    X = rng.normal(size=(10, 2))
    model = LinearRegression().fit(X, X @ np.array([2.0, 1.0]))
    with mlflow.start_run() as run:
        mlflow.log_text("direct", "notes/direct.txt")
        mlflow.sklearn.log_model(model, name="model", input_example=X[:2], registered_model_name="s3-direct")
    assert run.info.artifact_uri.startswith(f"s3://{bucket}/root/{exp_id}/{run.info.run_id}")
    # Written by the client (boto3) itself.
    assert f"root/{exp_id}/{run.info.run_id}/artifacts/notes/direct.txt" in s3_env.keys(bucket)

    # The server reads the bucket for its own routes.
    listed = requests.get(
        f"{srv.url}/api/2.0/mlflow/artifacts/list", params={"run_id": run.info.run_id, "path": "notes"}, timeout=30
    ).json()
    assert listed["files"] == [{"path": "notes/direct.txt", "is_dir": False, "file_size": 6}], listed
    r = requests.get(f"{srv.url}/get-artifact", params={"run_id": run.info.run_id, "path": "notes/direct.txt"}, timeout=30)
    assert r.status_code == 200 and r.content == b"direct"
    body = {"inputs": X[:3].tolist()}
    r = requests.post(f"{srv.url}/serving/models/s3-direct/1/invocations", json=body, timeout=300)
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(r.json()["predictions"], model.predict(X[:3]), rtol=1e-6)
    # The proxy is off.
    assert requests.get(f"{srv.url}/api/2.0/mlflow-artifacts/artifacts", timeout=30).status_code != 200


@pytest.mark.parametrize(
    "args",
    [
        ["--artifacts-destination", "ftp://x"],
        ["--artifacts-destination", "hdfs://namenode/mlflow"],
        ["--default-artifact-root", "hdfs://x", "--no-serve-artifacts"],
    ],
)
def test_an_unsupported_artifact_uri_is_refused_at_start(wasmflow_bin, tmp_path, args):
    done = subprocess.run(
        [wasmflow_bin, "server", "--port", "0", "--backend-store-uri", f"sqlite:///{tmp_path / 'db.sqlite'}", *args],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )
    uri = args[1]
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"unsupported artifact store URI '{uri}'" in lines[0], done.stderr
    assert "supported schemes are s3://, gs://, azure://, abfss://, wasbs://, file:// or a local path" in lines[0]
    # Nothing was written to a directory named after the URI.
    assert sorted(p.name for p in tmp_path.iterdir()) == [], list(tmp_path.iterdir())
