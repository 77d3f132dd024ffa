"""Authentication and permissions (`wasmflow server --app-name basic-auth`), driven with the official
client as MLflow 3.17's basic-auth app is: MLFLOW_TRACKING_USERNAME/PASSWORD for the tracking API and
`mlflow.server.get_app_client("basic-auth")` for users and grants.

One auth server serves the module; each test makes its own experiments and models.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import uuid
from pathlib import Path

import mlflow
import pytest
import requests
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.server import get_app_client

from conftest import ServerProcess
from test_plugins import X, write_linear_model

ADMIN = ("admin", "admin-password-for-tests")
PASSWORD = "a-password-of-users"


class AuthServer(ServerProcess):
    def command(self) -> list[str]:
        return [*super().command(), "--app-name", "basic-auth"]


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory, wasmflow_bin):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WASMFLOW_ADMIN_PASSWORD", ADMIN[1])
        srv = AuthServer(wasmflow_bin, tmp_path_factory.mktemp("auth-store"), name="auth").start()
    try:
        yield srv
    finally:
        srv.stop()


@contextlib.contextmanager
def signed_in(user: str, password: str = PASSWORD):
    """The client sends these credentials while inside (it reads them on every request)."""
    old = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}
    os.environ["MLFLOW_TRACKING_USERNAME"] = user
    os.environ["MLFLOW_TRACKING_PASSWORD"] = password
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def admin_client(srv):
    with signed_in(*ADMIN):
        return get_app_client("basic-auth", tracking_uri=srv.url)


def new_user(srv, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    with signed_in(*ADMIN):
        admin_client(srv).create_user(name, PASSWORD)
    return name


def refused(call) -> bool:
    """Whether the server answered 403 (the client raises with the status in its message)."""
    try:
        call()
    except (MlflowException, requests.HTTPError) as e:
        text = str(e)
        assert "403" in text or "Permission denied" in text or "PERMISSION_DENIED" in text, text
        return True
    return False


def test_auth_is_off_by_default(server):
    r = requests.post(server.url + "/api/2.0/mlflow/experiments/search", json={"max_results": 1}, timeout=30)
    assert r.status_code == 200, r.text
    r = requests.post(server.url + "/api/2.0/mlflow/users/create", json={"username": "u", "password": "p" * 12})
    assert r.status_code == 404, r.text


def test_requests_without_the_right_password_get_401(auth_server):
    url = auth_server.url + "/api/2.0/mlflow/experiments/search"
    for auth in [None, ("admin", "wrong-password-xx"), ("nobody", PASSWORD)]:
        r = requests.get(url, auth=auth, timeout=30)
        assert r.status_code == 401, (auth, r.text)
        assert r.headers["WWW-Authenticate"] == 'Basic realm="mlflow"'
    # MLflow's basic-auth takes Basic credentials only; a bearer token is not a login.
    r = requests.get(url, headers={"Authorization": "Bearer some-token"}, timeout=30)
    assert r.status_code == 401
    # The UI's page asks the browser for a login; health and server-info stay public.
    assert requests.get(auth_server.url + "/", timeout=30).status_code == 401
    assert requests.get(auth_server.url + "/health", timeout=30).status_code == 200
    assert requests.get(auth_server.url + "/api/3.0/mlflow/server-info", timeout=30).status_code == 200
    r = requests.get(url, auth=ADMIN, timeout=30)
    assert r.status_code == 200, r.text


def test_auth_refuses_to_start_without_an_admin_password(tmp_path, wasmflow_bin):
    env = {k: v for k, v in os.environ.items() if k not in ("WASMFLOW_ADMIN_PASSWORD", "MLFLOW_AUTH_ADMIN_PASSWORD")}
    cmd = [*AuthServer(wasmflow_bin, tmp_path).command()]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "WASMFLOW_ADMIN_PASSWORD" in out.stderr and "admin" in out.stderr, out.stderr


def test_the_auth_client_manages_users(auth_server):
    admin = admin_client(auth_server)
    name = f"user-{uuid.uuid4().hex[:8]}"
    with signed_in(*ADMIN):
        user = admin.create_user(name, PASSWORD)
        assert user.username == name and user.is_admin is False and user.id > 0
        got = admin.get_user(name)
        assert (got.id, got.username, got.is_admin) == (user.id, name, False)
        with pytest.raises(MlflowException) as e:
            admin.create_user(name, PASSWORD)
        assert e.value.error_code == "RESOURCE_ALREADY_EXISTS"
        with pytest.raises(MlflowException) as e:
            admin.create_user(name + "-short", "short")
        assert e.value.error_code == "INVALID_PARAMETER_VALUE"
        with pytest.raises(MlflowException) as e:
            admin.get_user("no-such-user")
        assert e.value.error_code == "RESOURCE_DOES_NOT_EXIST"
        assert "User with username=no-such-user not found" in e.value.message

    # A user reads and changes only themself, and must give the current password to change it.
    with signed_in(name):
        me = get_app_client("basic-auth", tracking_uri=auth_server.url)
        assert me.get_user(name).username == name
        assert refused(lambda: me.get_user("admin"))
        assert refused(lambda: me.create_user(name + "-2", PASSWORD))
        assert refused(lambda: me.update_user_admin(name, True))
        with pytest.raises(MlflowException) as e:
            me.update_user_password(name, "a-new-password-1")
        assert "Current password is required" in e.value.message
        me.update_user_password(name, "a-new-password-1", current_password=PASSWORD)
    r = requests.get(auth_server.url + "/api/2.0/mlflow/users/current", auth=(name, PASSWORD), timeout=30)
    assert r.status_code == 401
    r = requests.get(auth_server.url + "/api/2.0/mlflow/users/current", auth=(name, "a-new-password-1"), timeout=30)
    assert r.status_code == 200 and r.json()["user"]["username"] == name, r.text

    with signed_in(*ADMIN):
        admin.update_user_admin(name, True)
        assert admin.get_user(name).is_admin is True
        admin.update_user_password(name, PASSWORD)
        admin.delete_user(name)
        with pytest.raises(MlflowException):
            admin.get_user(name)
    r = requests.get(auth_server.url + "/api/2.0/mlflow/users/current", auth=(name, PASSWORD), timeout=30)
    assert r.status_code == 401


def make_world(srv, tmp_path: Path, owner: str) -> dict:
    """An experiment with a run, an artifact, a logged model and a served registered model, all
    created by `owner`."""
    client = MlflowClient(tracking_uri=srv.url)
    tmp_path.mkdir(parents=True, exist_ok=True)
    with signed_in(owner):
        exp = client.create_experiment(f"auth-{uuid.uuid4().hex[:8]}")
        run = client.create_run(exp)
        client.log_metric(run.info.run_id, "loss", 0.5)
        note = tmp_path / "note.txt"
        note.write_text("hello")
        client.log_artifact(run.info.run_id, str(note))
        write_linear_model(tmp_path / "model")
        client.log_artifacts(run.info.run_id, str(tmp_path / "model"), "model")
        logged = client.create_logged_model(exp, name="lm")
        name = f"auth-model-{uuid.uuid4().hex[:8]}"
        client.create_registered_model(name)
        mv = client.create_model_version(name, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    return {"exp": exp, "run": run.info.run_id, "model": logged.model_id, "name": name, "version": mv.version}


def test_permission_matrix(auth_server, tmp_path):
    srv = auth_server
    owner, bob, carol = new_user(srv, "owner"), new_user(srv, "bob"), new_user(srv, "carol")
    w = make_world(srv, tmp_path, owner)
    client = MlflowClient(tracking_uri=srv.url)
    upload = tmp_path / "upload.txt"
    upload.write_text("data")
    serving = f"{srv.url}/serving/models/{w['name']}/{w['version']}/invocations"
    payload = {"dataframe_split": {"columns": ["x1", "x2"], "data": X}}

    def read_everything():
        client.get_experiment(w["exp"])
        client.get_run(w["run"])
        client.get_metric_history(w["run"], "loss")
        assert [f.path for f in client.list_artifacts(w["run"])]
        client.download_artifacts(w["run"], "note.txt", str(tmp_path / f"dl-{uuid.uuid4().hex}"))
        client.get_logged_model(w["model"])
        client.get_registered_model(w["name"])
        client.get_model_version(w["name"], w["version"])
        r = requests.post(serving, json=payload, auth=(bob, PASSWORD), timeout=120)
        if r.status_code == 403:
            raise requests.HTTPError("403 Permission denied")
        assert r.status_code == 200, r.text

    def update():
        client.log_metric(w["run"], "bob", 1.0)
        client.set_experiment_tag(w["exp"], "by", "bob")
        client.set_logged_model_tags(w["model"], {"by": "bob"})
        client.log_artifact(w["run"], str(upload))
        client.update_registered_model(w["name"], description="bob was here")
        client.set_model_version_tag(w["name"], w["version"], "by", "bob")

    def delete():
        client.delete_run(w["run"])
        with signed_in(owner):
            client.restore_run(w["run"])
        client.delete_model_version_tag(w["name"], w["version"], "by")

    def manage():
        bobs = get_app_client("basic-auth", tracking_uri=srv.url)
        bobs.grant_user_permission(carol, "experiment", w["exp"], "READ")
        bobs.revoke_user_permission(carol, "experiment", w["exp"])

    admin = admin_client(srv)
    expected = {
        "READ": (True, False, False, False),
        "EDIT": (True, True, False, False),
        "MANAGE": (True, True, True, True),
        "DENY": (False, False, False, False),
    }
    seen = {}
    for level in expected:
        with signed_in(*ADMIN):
            admin.grant_user_permission(bob, "experiment", w["exp"], level)
            admin.grant_user_permission(bob, "registered_model", w["name"], level)
            got = admin.get_user_permission(bob, "experiment", w["exp"])
            assert got.permission == level
        with signed_in(bob):
            seen[level] = tuple(not refused(step) for step in (read_everything, update, delete, manage))
        with signed_in(*ADMIN):
            admin.revoke_user_permission(bob, "experiment", w["exp"])
            admin.revoke_user_permission(bob, "registered_model", w["name"])
    assert seen == expected

    # The owner got MANAGE by creating; others have the default permission (READ).
    with signed_in(*ADMIN):
        assert admin.get_user_permission(owner, "experiment", w["exp"]).permission == "MANAGE"
        assert admin.get_user_permission(owner, "registered_model", w["name"]).permission == "MANAGE"
        got = admin.get_user_permission(carol, "experiment", w["exp"])
        assert (got.permission, got.allowed) == ("READ", False)
        with pytest.raises(MlflowException) as e:
            admin.grant_user_permission(carol, "experiment", w["exp"], "SUPERUSER")
        assert e.value.error_code == "INVALID_PARAMETER_VALUE"
        admin.grant_user_permission(carol, "experiment", w["exp"], "READ")
        with pytest.raises(MlflowException) as e:
            admin.grant_user_permission(carol, "experiment", w["exp"], "EDIT")
        assert e.value.error_code == "RESOURCE_ALREADY_EXISTS"
    # A user without MANAGE cannot grant themself more.
    with signed_in(carol):
        mine = get_app_client("basic-auth", tracking_uri=srv.url)
        assert refused(lambda: mine.grant_user_permission(carol, "experiment", w["exp"], "MANAGE"))
        # The UI's /ajax-api twins are checked the same way.
        r = requests.post(
            srv.url + "/ajax-api/2.0/mlflow/experiments/update",
            json={"experiment_id": w["exp"], "new_name": "stolen"},
            auth=(carol, PASSWORD),
            timeout=30,
        )
        assert r.status_code == 403, r.text
        # Deleting proxied artifacts takes MANAGE; a path climbing out of its experiment is refused.
        r = requests.delete(
            f"{srv.url}/api/2.0/mlflow-artifacts/artifacts/{w['exp']}/{w['run']}/artifacts/note.txt",
            auth=(carol, PASSWORD),
            timeout=30,
        )
        assert r.status_code == 403, r.text

    # Whoever creates an experiment or a model manages it.
    with signed_in(carol):
        own = client.create_experiment(f"carols-{uuid.uuid4().hex[:8]}")
        client.delete_experiment(own)
        client.restore_experiment(own)
        assert refused(lambda: client.delete_experiment(w["exp"]))


def test_only_admins_install_or_remove_plugins(auth_server):
    bob = new_user(auth_server, "bob")
    api = auth_server.url + "/api/2.0/wasmflow/plugins"
    r = requests.get(api, auth=(bob, PASSWORD), timeout=30)
    assert r.status_code == 200 and any(p["name"] == "linear" for p in r.json()["plugins"]), r.text
    r = requests.post(api, data=b"\0asm not a plugin", auth=(bob, PASSWORD), timeout=30)
    assert r.status_code == 403, r.text
    r = requests.delete(api, params={"name": "linear"}, auth=(bob, PASSWORD), timeout=30)
    assert r.status_code == 403, r.text
    # The admin passes the check and reaches the installer, which rejects the bytes.
    r = requests.post(api, data=b"\0asm not a plugin", auth=ADMIN, timeout=30)
    assert r.status_code == 400, r.text


def test_search_hides_what_the_user_may_not_read(auth_server, tmp_path):
    srv = auth_server
    owner, bob = new_user(srv, "owner"), new_user(srv, "bob")
    seen = make_world(srv, tmp_path / "a", owner)
    hidden = make_world(srv, tmp_path / "b", owner)
    with signed_in(*ADMIN):
        admin = admin_client(srv)
        admin.grant_user_permission(bob, "experiment", hidden["exp"], "DENY")
        admin.grant_user_permission(bob, "registered_model", hidden["name"], "DENY")
    client = MlflowClient(tracking_uri=srv.url)
    with signed_in(bob):
        ids = {e.experiment_id for e in client.search_experiments(max_results=1000)}
        assert seen["exp"] in ids and hidden["exp"] not in ids
        runs = client.search_runs([seen["exp"], hidden["exp"]])
        assert {r.info.experiment_id for r in runs} == {seen["exp"]}
        assert client.search_runs([hidden["exp"]]) == []
        models = {m.model_id for m in client.search_logged_models([seen["exp"], hidden["exp"]])}
        assert models == {seen["model"]}
        names = {m.name for m in client.search_registered_models(max_results=1000)}
        assert seen["name"] in names and hidden["name"] not in names
        assert len(client.search_model_versions(f"name = '{seen['name']}'")) == 1
        assert client.search_model_versions(f"name = '{hidden['name']}'") == []
        assert refused(lambda: client.get_run(hidden["run"]))
    # The admin sees everything.
    with signed_in(*ADMIN):
        ids = {e.experiment_id for e in client.search_experiments(max_results=1000)}
        assert {seen["exp"], hidden["exp"]} <= ids


def test_a_deny_holds_however_the_experiment_id_is_written(auth_server, tmp_path):
    # The store reads "05" and "+5" as experiment 5: the grant check must too.
    srv = auth_server
    owner, bob = new_user(srv, "owner"), new_user(srv, "bob")
    hidden = make_world(srv, tmp_path, owner)
    exp = hidden["exp"]
    with signed_in(*ADMIN):
        admin_client(srv).grant_user_permission(bob, "experiment", "0" + exp, "DENY")
    for spelled in (exp, "0" + exp, "+" + exp, "00" + exp):
        r = requests.get(
            srv.url + "/api/2.0/mlflow/experiments/get",
            params={"experiment_id": spelled},
            auth=(bob, PASSWORD),
            timeout=30,
        )
        assert r.status_code == 403, (spelled, r.status_code, r.text)
        r = requests.post(
            srv.url + "/api/2.0/mlflow/runs/search",
            json={"experiment_ids": [spelled]},
            auth=(bob, PASSWORD),
            timeout=30,
        )
        assert r.status_code == 200 and r.json().get("runs", []) == [], (spelled, r.text)
    # The grant was stored under the experiment's own id, as the client reports it back.
    r = requests.get(
        srv.url + "/api/3.0/mlflow/users/permissions/get",
        params={"username": bob, "resource_type": "experiment", "resource_id": exp},
        auth=ADMIN,
        timeout=30,
    )
    assert r.status_code == 200 and r.json()["permission"] == "DENY", r.text


def test_registry_history_records_the_signed_in_user(auth_server):
    owner = new_user(auth_server, "owner")
    client = MlflowClient(tracking_uri=auth_server.url)
    name = f"history-{uuid.uuid4().hex[:8]}"
    with signed_in(owner):
        client.create_registered_model(name)
    # A header naming someone else changes nothing: the history names who signed in.
    r = requests.post(
        auth_server.url + "/api/2.0/mlflow/registered-models/set-tag",
        json={"name": name, "key": "k", "value": "v"},
        headers={"X-Wasmflow-User": "mallory"},
        auth=(owner, PASSWORD),
        timeout=30,
    )
    assert r.status_code == 200, r.text
    r = requests.get(
        auth_server.url + "/api/2.0/wasmflow/registry/events", params={"name": name}, auth=ADMIN, timeout=30
    )
    assert r.status_code == 200, r.text
    users = {e["user_id"] for e in r.json()["events"]}
    assert users == {owner}, json.dumps(r.json(), indent=1)
