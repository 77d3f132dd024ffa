"""The commands that work on a store directly (no tracking URI: `wasmflow experiments`, `runs`,
`run`, `gc`) with its artifacts in S3 (moto's S3 server), as `wasmflow server
--artifacts-destination s3://...` keeps them: a project run's files go to the bucket, through the
proxy prefix or to an experiment's own `s3://` location, and `gc` removes them from it."""

from __future__ import annotations

import json

import pytest

from conftest import PLUGIN_CACHE
from test_cli_habits import cli
from test_projects import PROJECTS_CACHE, WASM_TRAIN, run_id_of, train_wasm


@pytest.fixture
def s3_store(moto_s3, tmp_path):
    """(bucket, the flags naming a SQLite store whose artifacts go to the bucket, the environment)."""
    bucket = moto_s3.new_bucket()
    flags = ["--backend-store-uri", f"sqlite:///{tmp_path / 'db.sqlite'}",
             "--artifacts-destination", f"s3://{bucket}/proxied"]
    env = {**moto_s3.env(), "WASMFLOW_CACHE_DIR": str(PROJECTS_CACHE), "WASMFLOW_PLUGIN_CACHE_DIR": str(PLUGIN_CACHE)}
    # No server: the commands open the store themselves.
    for key in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        env[key] = ""
    return bucket, flags, env


def created_id(done) -> str:
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().rsplit(" ", 1)[-1]


def test_a_local_stores_commands_keep_artifacts_in_s3(s3_store, moto_s3, wasmflow_bin, tmp_path):
    train_wasm()
    bucket, store, env = s3_store
    proxied = created_id(cli(wasmflow_bin, "experiments", "create", "-n", "proxied", *store, env=env))
    own = created_id(cli(wasmflow_bin, "experiments", "create", "-n", "own", "-l", f"s3://{bucket}/own",
                         *store, env=env))
    runs = {}
    for experiment_id in (proxied, own):
        done = cli(wasmflow_bin, "run", str(WASM_TRAIN), "-P", "epochs=3", "--experiment-id", experiment_id,
                   *store, env=env)
        assert done.returncode == 0, done.stdout + done.stderr
        runs[experiment_id] = run_id_of(done)

    # The WASI executor's output directory (model/) is logged into the bucket: under the proxy's
    # prefix for the first experiment, under the experiment's own location for the second.
    prefixes = {
        proxied: f"proxied/{proxied}/{runs[proxied]}/artifacts/",
        own: f"own/{runs[own]}/artifacts/",
    }
    for experiment_id, prefix in prefixes.items():
        keys = moto_s3.keys(bucket, prefix)
        assert sorted(keys) == [prefix + "model/MLmodel", prefix + "model/model.json"], keys
        described = cli(wasmflow_bin, "runs", "describe", "--run-id", runs[experiment_id], *store, env=env)
        assert described.returncode == 0, described.stderr
        uri = json.loads(described.stdout)["info"]["artifact_uri"]
        assert uri.endswith(f"{runs[experiment_id]}/artifacts"), uri
    mlmodel = moto_s3.client().get_object(Bucket=bucket, Key=prefixes[own] + "model/MLmodel")["Body"].read()
    assert b"flavors" in mlmodel

    # Deleted with the CLI, collected by gc: both runs' files leave the bucket.
    assert cli(wasmflow_bin, "runs", "delete", "--run-id", runs[proxied], *store, env=env).returncode == 0
    assert cli(wasmflow_bin, "experiments", "delete", "-x", own, *store, env=env).returncode == 0
    listed = cli(wasmflow_bin, "runs", "list", "--experiment-id", proxied, "-v", "deleted_only", *store, env=env)
    assert runs[proxied] in listed.stdout, listed.stdout + listed.stderr
    gc = cli(wasmflow_bin, "gc", *store, env=env)
    assert gc.returncode == 0 and "warning" not in gc.stderr, gc.stderr
    assert f"Run with ID {runs[proxied]} has been permanently deleted." in gc.stdout
    assert f"Experiment with ID {own} has been permanently deleted." in gc.stdout
    for prefix in prefixes.values():
        assert moto_s3.keys(bucket, prefix) == {}, prefix


def test_a_bad_artifacts_destination_is_refused_before_anything_is_written(wasmflow_bin, tmp_path):
    db = tmp_path / "db.sqlite"
    done = cli(wasmflow_bin, "experiments", "create", "-n", "x", "--backend-store-uri", f"sqlite:///{db}",
               "--artifacts-destination", "ftp://host/x", env={"MLFLOW_TRACKING_URI": ""})
    assert done.returncode != 0
    assert "invalid --artifacts-destination: unsupported artifact store URI 'ftp://host/x'" in done.stderr, done.stderr
    assert not db.exists() and not (tmp_path / "ftp:").exists()
