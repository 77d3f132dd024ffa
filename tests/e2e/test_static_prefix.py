"""`wasmflow server --static-prefix /mlflow`, as `mlflow server --static-prefix`: the whole app (the
REST API, the artifact proxy, /health, the UI) under the prefix, behind a proxy that forwards paths
unchanged; the official client is pointed at `http://host:port/mlflow`. Auth and the Host guard
work under the prefix; nothing answers outside it.
"""

from __future__ import annotations

import os
import subprocess

import mlflow
import pytest
import requests

from conftest import ServerProcess, free_port

PREFIX = "/mlflow"
ADMIN = ("admin", "admin-password-for-prefix-tests")


class PrefixedServer(ServerProcess):
    """An auth-on server under PREFIX; `url` is the prefixed one, `root` the bare address."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.root = self.url
        self.url = self.root + PREFIX

    def command(self) -> list[str]:
        return [*super().command(), "--static-prefix", PREFIX, "--app-name", "basic-auth"]


@pytest.fixture
def prefixed(isolated_server, wasmflow_bin, tmp_path, monkeypatch):
    # `isolated_server` keeps the shared server out of this test; this one is started here.
    monkeypatch.setenv("WASMFLOW_ADMIN_PASSWORD", ADMIN[1])
    srv = PrefixedServer(wasmflow_bin, tmp_path / "store", name="prefixed").start()
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", ADMIN[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN[1])
    monkeypatch.setenv("MLFLOW_TRACKING_URI", srv.url)
    mlflow.set_tracking_uri(srv.url)
    try:
        yield srv
    finally:
        srv.stop()


def test_the_client_logs_and_reads_back_through_the_prefix(prefixed, tmp_path):
    client = mlflow.MlflowClient(tracking_uri=prefixed.url)
    experiment_id = client.create_experiment("under-a-prefix")
    run = client.create_run(experiment_id)
    client.log_metric(run.info.run_id, "loss", 0.25, step=3)
    note = tmp_path / "note.txt"
    note.write_text("logged through /mlflow")
    client.log_artifact(run.info.run_id, str(note), artifact_path="docs")
    client.set_terminated(run.info.run_id)

    got = client.get_run(run.info.run_id)
    assert got.data.metrics == {"loss": 0.25}
    assert got.info.artifact_uri.startswith("mlflow-artifacts:/")
    assert [f.path for f in client.list_artifacts(run.info.run_id, "docs")] == ["docs/note.txt"]
    local = client.download_artifacts(run.info.run_id, "docs/note.txt", str(tmp_path / "down"))
    assert open(local).read() == "logged through /mlflow"
    assert client.get_experiment_by_name("under-a-prefix").experiment_id == experiment_id
    # The fluent API too (it resolves the experiment and the artifact repository itself).
    mlflow.set_experiment("under-a-prefix")
    with mlflow.start_run() as fluent:
        mlflow.log_param("p", "1")
        mlflow.log_text("hello", "hello.txt")
    assert mlflow.artifacts.load_text(f"runs:/{fluent.info.run_id}/hello.txt") == "hello"


def test_the_ui_health_and_version_answer_under_the_prefix_only(prefixed):
    root, base = prefixed.root, prefixed.url
    assert requests.get(f"{base}/health", timeout=10).text == "OK"
    assert requests.get(f"{base}/version", auth=ADMIN, timeout=10).status_code == 200
    page = requests.get(f"{base}/", auth=ADMIN, timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    # The page's links are relative, so that they resolve under the prefix.
    assert 'src="ui/app.js"' in page.text and '"/ui/' not in page.text
    script = requests.get(f"{base}/ui/app.js", timeout=10)
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    # The prefix alone redirects to the page, as Flask does.
    bare = requests.get(base, timeout=10, allow_redirects=False)
    assert bare.status_code == 308 and bare.headers["location"] == f"{PREFIX}/"
    assert requests.get(base, auth=ADMIN, timeout=10).url == f"{base}/"
    for outside in ["/health", "/", "/ui/app.js", "/api/2.0/mlflow/experiments/search", "/mlflowx/health"]:
        assert requests.get(root + outside, auth=ADMIN, timeout=10).status_code == 404, outside


def test_auth_and_the_host_guard_see_the_paths_below_the_prefix(prefixed):
    search = f"{prefixed.url}/api/2.0/mlflow/experiments/search?max_results=1"
    denied = requests.get(search, timeout=10)
    assert denied.status_code == 401 and denied.headers["WWW-Authenticate"] == 'Basic realm="mlflow"'
    assert requests.get(search, auth=ADMIN, timeout=10).status_code == 200
    # The UI's files and /health are public, as without a prefix.
    assert requests.get(f"{prefixed.url}/ui/lib.js", timeout=10).status_code == 200
    rebinding = {"Host": "rebind.attacker.example"}
    refused = requests.get(search, auth=ADMIN, headers=rebinding, timeout=10)
    assert refused.status_code == 403 and "DNS rebinding" in refused.text
    assert requests.get(f"{prefixed.url}/health", headers=rebinding, timeout=10).status_code == 200


@pytest.mark.parametrize(
    ("prefix", "message"),
    [("mlflow", "--static-prefix must begin with a '/'."), ("/mlflow/", "--static-prefix should not end with a '/'.")],
)
@pytest.mark.parametrize("how", ["flag", "env"])
def test_a_bad_prefix_is_refused_in_one_line(isolated_server, wasmflow_bin, tmp_path, prefix, message, how):
    cmd = [wasmflow_bin, "server", "-p", str(free_port()), "--backend-store-uri", f"sqlite:///{tmp_path / 'db'}"]
    env = dict(os.environ)
    if how == "flag":
        cmd += ["--static-prefix", prefix]
    else:
        env["MLFLOW_STATIC_PREFIX"] = prefix
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert message in done.stderr and f"'{prefix}'" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "db").exists()
