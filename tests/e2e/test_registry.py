"""The model registry with the official client: registering logged models, versions, stages,
aliases, tags, search with filters and paging, loading `models:/` URIs, and MLflow's error codes.
Raw REST where the client would hide the server's answer (wasmflow's own endpoints)."""

from __future__ import annotations

import json
import warnings

import mlflow
import mlflow.pyfunc
import mlflow.sklearn
import numpy as np
import pytest
import requests
from mlflow.exceptions import MlflowException
from sklearn.linear_model import LinearRegression

warnings.filterwarnings("ignore", category=FutureWarning)  # stages are deprecated in MLflow 3

NO_SUCH_RUN = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def data():
    rng = np.random.default_rng(7)
    X = rng.normal(size=(40, 3))
    y = X @ np.array([2.0, -1.0, 0.5]) + 1.0
    return X, y


@pytest.fixture
def logged(experiment_id, data):
    """A logged sklearn model (MLflow 3: a LoggedModel with `models:/m-...`) and its run."""
    X, y = data
    model = LinearRegression().fit(X, y)
    with mlflow.start_run() as run:
        info = mlflow.sklearn.log_model(model, name="model", input_example=X[:2])
    return model, info, run.info.run_id


def _code(exc_info) -> str:
    return exc_info.value.error_code


def test_register_logged_model_and_load_by_alias_and_version(client, unique_name, logged, data):
    X, _ = data
    model, info, run_id = logged
    name = unique_name("reg")
    mv = mlflow.register_model(info.model_uri, name)
    assert (mv.name, mv.version) == (name, "1")
    assert mv.run_id == run_id, "the logged model's run"
    assert mv.status == "READY"
    assert mv.current_stage == "None"
    assert mv.source == info.model_uri

    # The download URI is the logged model's artifact location.
    lm = mlflow.get_logged_model(info.model_id)
    assert client.get_model_version_download_uri(name, "1") == lm.artifact_location

    client.set_registered_model_alias(name, "champion", "1")
    by_alias = client.get_model_version_by_alias(name, "champion")
    assert by_alias.version == "1" and by_alias.aliases == ["champion"]
    assert client.get_registered_model(name).aliases == {"champion": "1"}

    expected = model.predict(X)
    for uri in (f"models:/{name}@champion", f"models:/{name}/1", f"models:/{name}/latest"):
        loaded = mlflow.pyfunc.load_model(uri)
        np.testing.assert_allclose(np.asarray(loaded.predict(X)), expected, rtol=1e-9)

    # A second registration of the same model is version 2; the logged model lists both.
    mv2 = mlflow.register_model(info.model_uri, name)
    assert mv2.version == "2"
    # (MLflow's server adds each version as a number and the fluent client again as a string.)
    linked = json.loads(mlflow.get_logged_model(info.model_id).tags["mlflow.modelVersions"])
    assert {(v["name"], str(v["version"])) for v in linked} == {(name, "1"), (name, "2")}
    assert {"name": name, "version": 2} in linked
    assert [v.version for v in client.get_registered_model(name).latest_versions] == ["2"]


def test_register_from_runs_uri(client, unique_name, experiment_id):
    with mlflow.start_run() as run:
        # Plain run artifacts, registered by their runs:/ URI.
        mlflow.log_artifact(__file__, artifact_path="files")
    name = unique_name("runs")
    client.create_registered_model(name)
    mv = client.create_model_version(
        name, f"runs:/{run.info.run_id}/files", run_id=run.info.run_id
    )
    assert mv.version == "1" and mv.run_id == run.info.run_id
    uri = client.get_model_version_download_uri(name, "1")
    assert uri.endswith(f"{run.info.run_id}/artifacts/files"), uri


def test_registered_model_crud_and_tags(client, unique_name):
    name = unique_name("crud")
    rm = client.create_registered_model(name, tags={"team": "risk"}, description="first")
    assert rm.name == name and rm.description == "first" and rm.tags == {"team": "risk"}
    assert rm.creation_timestamp > 0

    client.update_registered_model(name, description="second")
    assert client.get_registered_model(name).description == "second"

    client.set_registered_model_tag(name, "stage", "dev")
    client.delete_registered_model_tag(name, "team")
    assert client.get_registered_model(name).tags == {"stage": "dev"}

    new_name = unique_name("renamed")
    client.rename_registered_model(name, new_name)
    assert client.get_registered_model(new_name).description == "second"
    with pytest.raises(MlflowException) as e:
        client.get_registered_model(name)
    assert _code(e) == "RESOURCE_DOES_NOT_EXIST"

    client.delete_registered_model(new_name)
    with pytest.raises(MlflowException) as e:
        client.get_registered_model(new_name)
    assert _code(e) == "RESOURCE_DOES_NOT_EXIST"


def test_versions_stages_aliases_and_deletion(client, unique_name, logged, base_url):
    _, info, run_id = logged
    name = unique_name("stages")
    client.create_registered_model(name)
    for _ in range(3):
        client.create_model_version(name, info.model_uri, run_id=run_id, model_id=info.model_id)

    mv = client.update_model_version(name, "1", description="the first")
    assert mv.description == "the first"
    client.set_model_version_tag(name, "1", "validated", "yes")
    assert client.get_model_version(name, "1").tags == {"validated": "yes"}
    client.delete_model_version_tag(name, "1", "validated")
    assert client.get_model_version(name, "1").tags == {}

    client.transition_model_version_stage(name, "1", "production")
    client.transition_model_version_stage(name, "2", "Production")
    moved = client.transition_model_version_stage(
        name, "3", "production", archive_existing_versions=True
    )
    assert moved.current_stage == "Production"
    assert client.get_model_version(name, "1").current_stage == "Archived"
    assert client.get_model_version(name, "2").current_stage == "Archived"
    latest = client.get_latest_versions(name, stages=["Production"])
    assert [v.version for v in latest] == ["3"]
    all_latest = {v.current_stage: v.version for v in client.get_latest_versions(name)}
    assert all_latest == {"Archived": "2", "Production": "3"}
    assert client.get_model_version_by_alias(name, "latest").version == "3"

    # Deleting a version clears the aliases that point at it; numbers are not reused.
    client.set_registered_model_alias(name, "champion", "3")
    client.set_registered_model_alias(name, "backup", "2")
    client.delete_model_version(name, "3")
    assert client.get_registered_model(name).aliases == {"backup": "2"}
    with pytest.raises(MlflowException) as e:
        client.get_model_version_by_alias(name, "champion")
    assert _code(e) == "INVALID_PARAMETER_VALUE"
    v4 = client.create_model_version(name, info.model_uri, run_id=run_id, model_id=info.model_id)
    assert v4.version == "4"
    client.delete_registered_model_alias(name, "backup")
    assert client.get_registered_model(name).aliases == {}

    # Every change is in the event log.
    events = requests.get(
        f"{base_url}/api/2.0/wasmflow/registry/events", params={"name": name}, timeout=30
    ).json()["events"]
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "registered_model_created"
    assert kinds.count("model_version_created") == 4
    assert "model_version_stage_transitioned" in kinds
    assert "alias_set" in kinds and "alias_deleted" in kinds and "model_version_deleted" in kinds
    resolved = requests.get(
        f"{base_url}/api/2.0/wasmflow/models/resolve",
        params={"uri": f"models:/{name}/Production"},
        timeout=30,
    )
    assert resolved.status_code == 404, resolved.text  # version 3 was deleted
    resolved = requests.get(
        f"{base_url}/api/2.0/wasmflow/models/resolve",
        params={"uri": f"models:/{name}/latest"},
        timeout=30,
    ).json()
    assert resolved["version"] == "4"
    assert resolved["artifact_uri"] == mlflow.get_logged_model(info.model_id).artifact_location


def test_search_with_filters_and_paging(client, unique_name):
    prefix = unique_name("search")
    names = [f"{prefix}-{i}" for i in range(7)]
    for i, n in enumerate(names):
        client.create_registered_model(n, tags={"parity": "even" if i % 2 == 0 else "odd"})
        for _ in range(2):
            client.create_model_version(n, f"s3://bucket/{n}/model")

    found = client.search_registered_models(filter_string=f"name LIKE '{prefix}-%'")
    assert sorted(m.name for m in found) == names
    even = client.search_registered_models(
        filter_string=f"name LIKE '{prefix}-%' AND tags.parity = 'even'"
    )
    assert sorted(m.name for m in even) == names[0::2]
    exact = client.search_registered_models(filter_string=f"name = '{names[3]}'")
    assert [m.name for m in exact] == [names[3]]
    assert exact[0].latest_versions[0].version == "2"
    ordered = client.search_registered_models(
        filter_string=f"name ILIKE '{prefix.upper()}-%'", order_by=["name DESC"]
    )
    assert [m.name for m in ordered] == sorted(names, reverse=True)

    # All pages, each model exactly once.
    seen, token = [], None
    while True:
        page = client.search_registered_models(
            filter_string=f"name LIKE '{prefix}-%'", max_results=3, page_token=token
        )
        seen += [m.name for m in page]
        token = page.token
        if not token:
            break
    assert sorted(seen) == names and len(seen) == len(set(seen))

    versions = client.search_model_versions(f"name = '{names[0]}'")
    assert sorted(v.version for v in versions) == ["1", "2"]
    in_list = client.search_model_versions(f"name IN ('{names[1]}', '{names[2]}')")
    assert len(in_list) == 4
    v2 = client.search_model_versions(f"name LIKE '{prefix}-%' AND version_number = 2")
    assert len(v2) == 7
    by_source = client.search_model_versions(f"source_path = 's3://bucket/{names[4]}/model'")
    assert {v.name for v in by_source} == {names[4]}

    seen, token = [], None
    while True:
        page = client.search_model_versions(
            f"name LIKE '{prefix}-%'",
            max_results=4,
            order_by=["name ASC", "version_number ASC"],
            page_token=token,
        )
        seen += [(v.name, v.version) for v in page]
        token = page.token
        if not token:
            break
    assert seen == [(n, v) for n in names for v in ("1", "2")]


def test_search_model_versions_by_run_id(client, unique_name, logged):
    _, info, run_id = logged
    name = unique_name("byrun")
    mlflow.register_model(info.model_uri, name)
    found = client.search_model_versions(f"run_id = '{run_id}'")
    assert [(v.name, v.version) for v in found] == [(name, "1")]
    found = client.search_model_versions(f"run_id IN ('{run_id}', '{NO_SUCH_RUN}')")
    assert len(found) == 1


@pytest.mark.parametrize(
    "call, code",
    [
        (lambda c, n: c.create_registered_model(n), "RESOURCE_ALREADY_EXISTS"),
        (lambda c, n: c.create_registered_model("a/b"), "INVALID_PARAMETER_VALUE"),
        (lambda c, n: c.get_registered_model(n + "-missing"), "RESOURCE_DOES_NOT_EXIST"),
        (lambda c, n: c.get_model_version(n, "9"), "RESOURCE_DOES_NOT_EXIST"),
        (lambda c, n: c.get_model_version(n, "x"), "INVALID_PARAMETER_VALUE"),
        (lambda c, n: c.set_registered_model_alias(n, "latest", "1"), "INVALID_PARAMETER_VALUE"),
        (lambda c, n: c.set_registered_model_alias(n, "v1", "1"), "INVALID_PARAMETER_VALUE"),
        (lambda c, n: c.set_registered_model_alias(n, "ok", "5"), "RESOURCE_DOES_NOT_EXIST"),
        (lambda c, n: c.get_model_version_by_alias(n, "nope"), "INVALID_PARAMETER_VALUE"),
        (
            lambda c, n: c.transition_model_version_stage(n, "1", "bogus"),
            "INVALID_PARAMETER_VALUE",
        ),
        (
            lambda c, n: c.transition_model_version_stage(
                n, "1", "Archived", archive_existing_versions=True
            ),
            "INVALID_PARAMETER_VALUE",
        ),
        (
            # runs:/ and run_id must agree (a run of another server is fine: test_conformance).
            lambda c, n: c.create_model_version(n, f"runs:/{NO_SUCH_RUN}/model"),
            "INVALID_PARAMETER_VALUE",
        ),
        (
            lambda c, n: c.create_model_version(n, "mlflow-artifacts:/0/../../../etc"),
            "INVALID_PARAMETER_VALUE",
        ),
        (
            # A proxied-artifact source outside any named run (MLflow's rule).
            lambda c, n: c.create_model_version(n, "mlflow-artifacts:/0/elsewhere/model"),
            "INVALID_PARAMETER_VALUE",
        ),
        (lambda c, n: c.search_model_versions("version_number = 1.5"), "INVALID_PARAMETER_VALUE"),
        (lambda c, n: c.search_model_versions("foo = 'x'"), "INVALID_PARAMETER_VALUE"),
        (lambda c, n: c.search_registered_models("run_id = 'x'"), "INVALID_PARAMETER_VALUE"),
        (lambda c, n: c.search_registered_models(max_results=5000), "INVALID_PARAMETER_VALUE"),
        (lambda c, n: c.rename_registered_model(n, "x:y"), "INVALID_PARAMETER_VALUE"),
    ],
)
def test_bad_input_gets_mlflow_error_codes(client, unique_name, call, code):
    name = unique_name("bad")
    client.create_registered_model(name)
    client.create_model_version(name, f"s3://bucket/{name}/model")
    with pytest.raises(MlflowException) as e:
        call(client, name)
    assert _code(e) == code, str(e.value)


def test_models_cli_remote_and_local(client, unique_name, server, wasmflow_bin, monkeypatch):
    import os
    import subprocess

    name = unique_name("cli")
    client.create_registered_model(name, description="from the cli test")
    for _ in range(2):
        client.create_model_version(name, f"s3://bucket/{name}/model")

    def cli(*args, tracking_uri=None):
        env = dict(os.environ)
        env.pop("MLFLOW_TRACKING_URI", None)
        env.pop("RUST_BACKTRACE", None)
        if tracking_uri:
            env["MLFLOW_TRACKING_URI"] = tracking_uri
        out = subprocess.run(
            [wasmflow_bin, "models", *args], env=env, capture_output=True, text=True, timeout=60
        )
        return out.returncode, out.stdout, out.stderr

    # Against the running server.
    rc, out, err = cli("alias", name, "champion", "2", tracking_uri=server.url)
    assert rc == 0, err
    assert client.get_model_version_by_alias(name, "champion").version == "2"
    rc, out, err = cli("list", "--filter", f"name = '{name}'", tracking_uri=server.url)
    assert rc == 0, err
    header, row = out.splitlines()[:2]
    assert header.split()[:3] == ["NAME", "LATEST", "ALIASES"]
    assert row.split()[:3] == [name, "2", "champion=2"], out
    rc, out, err = cli("versions", name, tracking_uri=server.url)
    assert rc == 0, err
    lines = out.splitlines()
    assert [line.split()[0] for line in lines[1:]] == ["2", "1"], out
    assert "champion" in lines[1]
    rc, _, err = cli("alias", name, "latest", "1", tracking_uri=server.url)
    assert rc != 0 and "INVALID_PARAMETER_VALUE" in err
    rc, _, err = cli("versions", name + "-missing", tracking_uri=server.url)
    assert rc != 0 and "RESOURCE_DOES_NOT_EXIST" in err

    # Directly against the store file (the server keeps running: SQLite WAL readers).
    store = server.backend_uri
    rc, out, err = cli("versions", name, "--backend-store-uri", store)
    assert rc == 0, err
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["2", "1"], out
    rc, out, err = cli("alias", name, "backup", "1", "--backend-store-uri", store)
    assert rc == 0, err
    assert client.get_registered_model(name).aliases == {"champion": "2", "backup": "1"}
