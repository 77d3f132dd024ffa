"""Two `wasmflow server` replicas on one PostgreSQL database and one artifact root behave as one
server: what is written through one is read through the other at once, writes racing through both
lose nothing and never collide, a plugin installed through one serves on the other, a replica that
loses its database answers 503 and recovers by itself, and a replica killed with SIGKILL under load
loses no write it acknowledged (issue 17, parts 4 and 6)."""

from __future__ import annotations

import concurrent.futures
import os
import socket
import subprocess
import threading
import time
import urllib.parse
import uuid
from pathlib import Path

import pytest
import requests
from mlflow import MlflowClient

from conftest import PLUGIN_CACHE, POSTGRES, REPO_ROOT, ServerProcess

pytestmark = pytest.mark.skipif(
    not POSTGRES,
    reason="replicas share a PostgreSQL database: scripts/test.sh runs this with WASMFLOW_E2E_BACKEND=postgres",
)


@pytest.fixture(scope="module")
def servers(tmp_path_factory, wasmflow_bin):
    a = ServerProcess(wasmflow_bin, tmp_path_factory.mktemp("replica-a"), name="replica-a")
    b = ServerProcess(wasmflow_bin, tmp_path_factory.mktemp("replica-b"), name="replica-b", backend_uri=a.backend_uri)
    b.artifacts_dir = a.artifacts_dir
    # Started together: the second waits on the first's migration lock, then finds nothing to do.
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda s: s.start(), (a, b)))
    try:
        yield a, b
    finally:
        a.stop()
        b.stop()


@pytest.fixture(scope="module")
def replicas(servers):
    a, b = servers
    return MlflowClient(tracking_uri=a.url), MlflowClient(tracking_uri=b.url)


def test_a_run_written_through_one_replica_reads_the_same_through_the_other(replicas, tmp_path):
    a, b = replicas
    exp = a.create_experiment(f"replicas-{uuid.uuid4().hex[:8]}")
    run = a.create_run(exp, run_name="through-a")
    a.log_param(run.info.run_id, "alpha", "0.5")
    for step in range(5):
        a.log_metric(run.info.run_id, "loss", 1.0 / (step + 1), step=step)
    (tmp_path / "notes.txt").write_text("written through a")
    a.log_artifact(run.info.run_id, str(tmp_path / "notes.txt"))
    a.set_terminated(run.info.run_id)

    seen = b.get_run(run.info.run_id)
    assert seen.data.params == {"alpha": "0.5"}
    assert seen.data.metrics == {"loss": pytest.approx(0.2)}
    assert seen.info.status == "FINISHED"
    assert [m.value for m in b.get_metric_history(run.info.run_id, "loss")] == pytest.approx(
        [1.0, 0.5, 1 / 3, 0.25, 0.2]
    )
    out = b.download_artifacts(run.info.run_id, "notes.txt", str(tmp_path / "out"))
    assert open(out).read() == "written through a"
    assert [r.info.run_id for r in b.search_runs([exp], "params.alpha = '0.5'")] == [run.info.run_id]


def test_an_alias_moved_through_one_replica_holds_on_the_other_at_once(replicas):
    a, b = replicas
    name = f"replicated-{uuid.uuid4().hex[:8]}"
    a.create_registered_model(name)
    v1 = a.create_model_version(name, "s3://bucket/one")
    v2 = b.create_model_version(name, "s3://bucket/two")
    assert (v1.version, v2.version) == ("1", "2")
    a.set_registered_model_alias(name, "champion", "1")
    assert b.get_model_version_by_alias(name, "champion").version == "1"
    b.set_registered_model_alias(name, "champion", "2")
    deadline = time.monotonic() + 1.0
    while a.get_model_version_by_alias(name, "champion").version != "2":
        assert time.monotonic() < deadline, "the alias did not move on the other replica within 1 s"
        time.sleep(0.05)


def test_writes_racing_through_both_replicas_lose_nothing(replicas):
    a, b = replicas
    prefix = f"race-{uuid.uuid4().hex[:8]}"
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda i: (a, b)[i % 2].create_experiment(f"{prefix}-{i}"), range(40)))
    assert len(set(ids)) == 40
    for client in (a, b):
        found = client.search_experiments(filter_string=f"name LIKE '{prefix}-%'", max_results=100)
        assert sorted(e.experiment_id for e in found) == sorted(ids)

    name = f"{prefix}-model"
    a.create_registered_model(name)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        versions = list(
            pool.map(lambda i: (a, b)[i % 2].create_model_version(name, f"s3://bucket/{i}").version, range(16))
        )
    assert sorted(int(v) for v in versions) == list(range(1, 17))


PLUGINS_API = "/api/2.0/wasmflow/plugins"
TEST_PLUGINS = Path(
    os.environ.get("WASMFLOW_TEST_PLUGINS")
    or Path(os.environ.get("CARGO_TARGET_DIR") or REPO_ROOT / "target") / "wasm-plugins/wasm32-wasip2/release"
)


def replica_of(first: ServerProcess, tmp_path_factory, wasmflow_bin, name: str, backend_uri: str | None = None):
    """Another replica on `first`'s database (or on `backend_uri`, the same database another way)
    and artifact root, with a plugin directory of its own."""
    other = ServerProcess(
        wasmflow_bin, tmp_path_factory.mktemp(name), name=name, backend_uri=backend_uri or first.backend_uri
    )
    other.artifacts_dir = first.artifacts_dir
    return other


LISTENING = "listening for wasmflow_plugins notifications"


def wait_listening(servers, timeout: float = 10.0):
    """Waits until every replica's listener for plugin changes is connected: while it is, a
    replica re-reads the plugins only when notified (or every 10 s), so a change seen within 1 s
    was seen through PostgreSQL's NOTIFY, not by polling."""
    deadline = time.monotonic() + timeout
    for server in servers:
        while LISTENING not in server.log_path.read_text(errors="replace"):
            assert time.monotonic() < deadline, f"{server.log_path.name} never logged '{LISTENING}'"
            time.sleep(0.05)


def listed(url: str) -> list[str]:
    return [f"{p['name']}@{p['version']}" for p in requests.get(url + PLUGINS_API, timeout=30).json()["plugins"]]


def test_a_plugin_installed_through_one_replica_serves_on_the_other(servers, replicas, tmp_path):
    a, _ = replicas
    hostile = TEST_PLUGINS / "wasmflow_testing_hostile.wasm"
    if not hostile.exists():
        pytest.fail(f"{hostile} is missing; `cargo build` builds the test plugins", pytrace=False)
    a_url, b_url = (server.url for server in servers)
    wait_listening(servers)

    # A model whose only flavor is the test plugin's: before the install, neither replica serves it.
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "MLmodel").write_text("flavors:\n  hostile: {behavior: echo}\n")
    exp = a.create_experiment(f"replica-plugins-{uuid.uuid4().hex[:8]}")
    run = a.create_run(exp)
    a.log_artifacts(run.info.run_id, str(model_dir), "model")
    name = f"replica-plugin-{uuid.uuid4().hex[:8]}"
    a.create_registered_model(name)
    a.create_model_version(name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
    payload = {"dataframe_split": {"columns": ["x"], "data": [[1.5], [2.5]]}}

    def invoke(url):
        return requests.post(f"{url}/serving/models/{name}/1/invocations", json=payload, timeout=60)

    assert invoke(b_url).status_code != 200

    r = requests.post(a_url + PLUGINS_API, data=hostile.read_bytes(), timeout=120)
    assert r.status_code == 200, r.text
    installed = r.json()["plugin"]
    # B lists it within 1 s, notified by A's install (B read the plugins just before, when it
    # refused the model, and would not poll again for 10 s).
    deadline = time.monotonic() + 1.0
    while installed not in requests.get(b_url + PLUGINS_API, timeout=30).json()["plugins"]:
        assert time.monotonic() < deadline, "the plugin installed through A was not listed on B within 1 s"
        time.sleep(0.05)
    # And serves the model with it: no restart, no copy of files.
    served = invoke(b_url)
    assert served.status_code == 200, served.text
    assert served.json() == invoke(a_url).json()
    component = requests.get(f"{b_url}{PLUGINS_API}/{installed['sha256']}", timeout=30)
    assert component.status_code == 200 and component.content == hostile.read_bytes()
    # Installed again through B: the same bytes are not an error, on any replica.
    assert requests.post(b_url + PLUGINS_API, data=hostile.read_bytes(), timeout=120).status_code == 200

    # Removed through B: A, which has the model loaded with it, stops serving it within 1 s.
    r = requests.delete(b_url + PLUGINS_API, params={"name": "hostile"}, timeout=30)
    assert r.status_code == 200 and [p["name"] for p in r.json()["removed"]] == ["hostile"], r.text
    deadline = time.monotonic() + 1.0
    while (answer := invoke(a_url)).status_code == 200:
        assert time.monotonic() < deadline, "the plugin removed through B still served on A after 1 s"
        time.sleep(0.05)
    assert "hostile" in answer.json()["message"], answer.text
    assert "hostile" not in [p["name"] for p in requests.get(a_url + PLUGINS_API, timeout=30).json()["plugins"]]


def test_the_cli_installs_into_the_shared_store_that_every_replica_serves(servers, wasmflow_bin, tmp_path):
    """`wasmflow plugins install` on a PostgreSQL store (no server between) writes where a
    replica's install does, not into a local directory: every replica lists it within 1 s."""
    hostile = TEST_PLUGINS / "wasmflow_testing_hostile.wasm"
    a, b = servers
    wait_listening(servers)
    local_dir = tmp_path / "cli-plugins"
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.setdefault("WASMFLOW_PLUGIN_CACHE_DIR", str(PLUGIN_CACHE))
    cli = [wasmflow_bin, "plugins", "--plugins-dir", str(local_dir)]

    def run(*args, extra_env=None):
        done = subprocess.run([*cli, *args], env={**env, **(extra_env or {})}, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    out = run("install", str(hostile), "--backend-store-uri", a.backend_uri)
    assert "installed hostile@0.1.0" in out
    assert not (local_dir / "plugins.json").exists(), "the CLI kept the plugin in its own directory"
    deadline = time.monotonic() + 1.0
    while not all("hostile@0.1.0" in listed(s.url) for s in servers):
        assert time.monotonic() < deadline, "the plugin installed by the CLI was not listed on both replicas within 1 s"
        time.sleep(0.05)
    # A PostgreSQL tracking uri names the store too, as the MLflow client takes one.
    assert "hostile@0.1.0" in run("list", extra_env={"MLFLOW_TRACKING_URI": a.backend_uri})

    out = run("remove", "hostile", "--backend-store-uri", b.backend_uri)
    assert "removed hostile@0.1.0" in out
    deadline = time.monotonic() + 1.0
    while any("hostile@0.1.0" in listed(s.url) for s in servers):
        assert time.monotonic() < deadline, "the plugin removed by the CLI was still listed after 1 s"
        time.sleep(0.05)


class CuttableProxy:
    """A TCP proxy to PostgreSQL that the test cuts (every connection closed, new ones closed at
    once, as when the database goes away) and restores, without touching the shared cluster."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = True
        self.lock = threading.Lock()
        self.open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                if not self.up:
                    client.close()
                    continue
                try:
                    server = socket.create_connection(self.target)
                except OSError:
                    client.close()
                    continue
                self.open += [client, server]
            for src, dst in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pipe(src, dst):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        with self.lock:
            self.up = False
            for s in self.open:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            self.open = []

    def restore(self):
        with self.lock:
            self.up = True

    def close(self):
        self.cut()
        self.listener.close()


def test_a_replica_that_loses_its_database_answers_503_and_recovers(servers, replicas, tmp_path_factory, wasmflow_bin):
    a, _ = replicas
    parts = urllib.parse.urlsplit(os.environ["WASMFLOW_TEST_POSTGRES_URI"])
    proxy = CuttableProxy((parts.hostname, parts.port or 5432))
    # The same database as the replicas, reached through the proxy.
    database = urllib.parse.urlsplit(servers[0].backend_uri)
    through_proxy = urllib.parse.urlunsplit(database._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}"))
    c = replica_of(servers[0], tmp_path_factory, wasmflow_bin, "replica-c", backend_uri=through_proxy)
    c.start()
    try:
        wait_listening([c])
        exp = requests.post(
            c.url + "/api/2.0/mlflow/experiments/create", json={"name": f"db-loss-{uuid.uuid4().hex[:8]}"}, timeout=30
        )
        assert exp.status_code == 200, exp.text
        exp_id = exp.json()["experiment_id"]
        get = f"{c.url}/api/2.0/mlflow/experiments/get?experiment_id={exp_id}"

        proxy.cut()
        for _ in range(3):
            started = time.monotonic()
            r = requests.get(get, timeout=60)
            assert r.status_code == 503, r.text
            body = r.json()
            assert body["error_code"] == "TEMPORARILY_UNAVAILABLE", body
            assert "database is unavailable" in body["message"], body
            assert "PostgreSQL" in body["message"] or "connection" in body["message"], body
            assert time.monotonic() - started < 15, "a request waited too long for the lost database"
        # A write is refused the same way, and nothing of it is kept.
        lost_name = f"db-loss-refused-{uuid.uuid4().hex[:8]}"
        r = requests.post(c.url + "/api/2.0/mlflow/experiments/create", json={"name": lost_name}, timeout=60)
        assert r.status_code == 503 and r.json()["error_code"] == "TEMPORARILY_UNAVAILABLE", r.text
        assert requests.get(c.url + "/health", timeout=10).status_code == 200

        proxy.restore()
        deadline = time.monotonic() + 10
        while (r := requests.get(get, timeout=60)).status_code != 200:
            assert r.status_code == 503, r.text
            assert time.monotonic() < deadline, "the replica did not recover within 10 s of the database's return"
            time.sleep(0.1)
        assert r.json()["experiment"]["experiment_id"] == exp_id
        assert a.get_experiment(exp_id).experiment_id == exp_id
        assert a.get_experiment_by_name(lost_name) is None
        r = requests.post(c.url + "/api/2.0/mlflow/experiments/create", json={"name": lost_name}, timeout=30)
        assert r.status_code == 200, r.text

        # Its plugin listener lost its connection too, said so, and listens again: a plugin
        # installed through another replica is listed on it within 1 s, notified.
        log = lambda: c.log_path.read_text(errors="replace")  # noqa: E731
        assert "not listening for wasmflow_plugins notifications" in log()
        deadline = time.monotonic() + 10
        while log().count(LISTENING) < 2:
            assert time.monotonic() < deadline, "the plugin listener did not reconnect within 10 s"
            time.sleep(0.05)
        hostile = (TEST_PLUGINS / "wasmflow_testing_hostile.wasm").read_bytes()
        r = requests.post(servers[0].url + PLUGINS_API, data=hostile, timeout=120)
        assert r.status_code == 200, r.text
        try:
            deadline = time.monotonic() + 1.0
            while "hostile@0.1.0" not in listed(c.url):
                assert time.monotonic() < deadline, "a plugin installed after the reconnection was not listed within 1 s"
                time.sleep(0.05)
        finally:
            requests.delete(servers[0].url + PLUGINS_API, params={"name": "hostile"}, timeout=30)
    finally:
        c.stop()
        proxy.close()


def test_a_replica_killed_under_load_loses_no_acknowledged_write(servers, replicas, tmp_path_factory, wasmflow_bin):
    a, b = replicas
    d = replica_of(servers[0], tmp_path_factory, wasmflow_bin, "replica-d").start()
    exp = a.create_experiment(f"kill-9-{uuid.uuid4().hex[:8]}")
    run_id = a.create_run(exp).info.run_id
    acknowledged: list[tuple[str, object]] = []
    lock = threading.Lock()
    enough = threading.Event()

    def client(worker: int):
        session = requests.Session()
        for i in range(10_000):
            try:
                if worker % 2:
                    r = session.post(
                        d.url + "/api/2.0/mlflow/runs/log-batch",
                        json={
                            "run_id": run_id,
                            "metrics": [{"key": f"w{worker}", "value": float(i), "timestamp": 1, "step": i}],
                            "params": [{"key": f"p{worker}-{i}", "value": str(i)}],
                        },
                        timeout=30,
                    )
                    ack = ("metric", (f"w{worker}", i))
                else:
                    name = f"kill-9-{worker}-{i}-{uuid.uuid4().hex[:6]}"
                    r = session.post(d.url + "/api/2.0/mlflow/experiments/create", json={"name": name}, timeout=30)
                    ack = ("experiment", (name, r.json().get("experiment_id") if r.status_code == 200 else None))
            except (requests.RequestException, ValueError):
                return  # the replica is gone: what it had not answered is not acknowledged
            if r.status_code == 200:
                with lock:
                    acknowledged.append(ack)
                    if len(acknowledged) >= 200:
                        enough.set()

    workers = [threading.Thread(target=client, args=(w,)) for w in range(8)]
    for w in workers:
        w.start()
    try:
        assert enough.wait(60), "the replica acknowledged too few writes"
        d.kill()  # SIGKILL, with writes in flight
    finally:
        d.kill()
        for w in workers:
            w.join(60)
        d.stop()
    with lock:
        acked = list(acknowledged)
    assert len(acked) >= 200
    run = b.get_run(run_id)
    for kind, what in acked:
        if kind == "metric":
            key, step = what
            assert run.data.params[f"p{key[1:]}-{step}"] == str(step)
    history = {}
    for kind, (key, step) in (x for x in acked if x[0] == "metric"):
        if key not in history:
            history[key] = {m.step for m in b.get_metric_history(run_id, key)}
        assert step in history[key], f"metric {key} step {step} was acknowledged but is lost"
    for kind, (name, exp_id) in (x for x in acked if x[0] == "experiment"):
        found = b.get_experiment_by_name(name)
        assert found is not None and found.experiment_id == exp_id, f"experiment {name} was acknowledged but is lost"


def test_tls_to_postgresql_is_verified_as_libpq_does(servers, tmp_path_factory, wasmflow_bin):
    ca = os.environ.get("WASMFLOW_TEST_POSTGRES_CA")
    if not ca:
        pytest.skip("the test PostgreSQL has no TLS certificate (scripts/test-postgres.sh makes one with openssl)")
    uri = servers[0].backend_uri
    verified = f"{uri}?sslmode=verify-full&sslrootcert={urllib.parse.quote(ca, safe='')}"
    e = replica_of(servers[0], tmp_path_factory, wasmflow_bin, "replica-tls", backend_uri=verified).start()
    try:
        r = requests.post(e.url + "/api/2.0/mlflow/experiments/create", json={"name": f"tls-{uuid.uuid4().hex[:8]}"}, timeout=30)
        assert r.status_code == 200, r.text
        database = urllib.parse.urlsplit(uri).path.lstrip("/")
        psql = subprocess.run(
            [
                "psql",
                os.environ["WASMFLOW_TEST_POSTGRES_URI"],
                "-XAtc",
                "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl) FROM pg_stat_ssl s "
                f"JOIN pg_stat_activity a USING (pid) WHERE a.datname = '{database}' AND a.application_name = ''"
                f" AND a.client_port IS NOT NULL",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert psql.returncode == 0, psql.stderr
        encrypted = int(psql.stdout.split("|")[0])
        assert encrypted >= 1, f"no TLS connection from the replica: {psql.stdout!r}"
    finally:
        e.stop()
    # A server whose certificate does not chain to the roots given is refused, in one line.
    refused = subprocess.run(
        [wasmflow_bin, "db", "upgrade", f"{uri}?sslmode=verify-full&sslrootcert=system"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode != 0
    assert "certificate" in refused.stderr.lower(), refused.stderr
    bad = subprocess.run(
        [wasmflow_bin, "db", "upgrade", f"{uri}?sslmode=verify"], capture_output=True, text=True, timeout=60
    )
    assert bad.returncode != 0 and "invalid sslmode 'verify'" in bad.stderr, bad.stderr
