"""End-to-end fixtures: run the real `wasmflow` binary and drive it with the official MLflow client.

The binary is taken from `$WASMFLOW_BIN` (scripts/test.sh sets it to the release build).  Every server
started here gets its own temporary SQLite store and artifact root, listens on a free loopback port,
and writes its stdout/stderr to a log file whose tail is shown when it fails to come up.

With `WASMFLOW_E2E_BACKEND=postgres`, every server gets a new database of its own on the PostgreSQL
server `$WASMFLOW_TEST_POSTGRES_URI` names (scripts/test.sh starts a throwaway one) instead.

Any executable with the same CLI (`<bin> server --host --port --backend-store-uri
--artifacts-destination`, `GET /health` -> 200) can stand in, e.g. the reference `mlflow` server:
`WASMFLOW_BIN=$(which mlflow) WASMFLOW_STARTUP_TIMEOUT=120 pytest tests/e2e`.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import uuid
from pathlib import Path

import pytest
import requests

REPO_ROOT = Path(__file__).resolve().parents[2]

# The client must fail fast instead of retrying 5xx answers with exponential backoff for minutes;
# the crash test also relies on it not retrying across the kill.  Set before mlflow reads them.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "120")
# Don't let a stray user configuration point the client elsewhere.
# No usage telemetry from test runs; it also keeps the client from reading the session id it
# keeps in the environment, which a run of many files in one process lost (every request of
# test_onnx_flavor.py failed with KeyError '_MLFLOW_TELEMETRY_SESSION_ID').
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.pop("MLFLOW_EXPERIMENT_ID", None)
os.environ.pop("MLFLOW_EXPERIMENT_NAME", None)
os.environ.pop("MLFLOW_RUN_ID", None)

import mlflow  # noqa: E402  (after the environment above)

STARTUP_TIMEOUT = float(os.environ.get("WASMFLOW_STARTUP_TIMEOUT", "120"))
PLUGIN_CACHE = Path(
    os.environ.get("WASMFLOW_PLUGIN_CACHE_DIR")
    or (Path(os.environ.get("CARGO_TARGET_DIR") or REPO_ROOT / "target") / "e2e-plugin-cache")
)


def _find_binary() -> str:
    env = os.environ.get("WASMFLOW_BIN")
    if env:
        return env
    target = os.environ.get("CARGO_TARGET_DIR") or str(REPO_ROOT / "target")
    return str(Path(target) / "release" / "wasmflow")


POSTGRES = os.environ.get("WASMFLOW_E2E_BACKEND", "sqlite") == "postgres"
# Replicas of a PostgreSQL store share webhook secrets' key through the environment.
WEBHOOK_KEY = "d2FzbWZsb3ctZTJlLXdlYmhvb2sta2V5LTMyYnl0ZXM="
if POSTGRES:
    # For every server the tests start, through ServerProcess or their own command lines.
    os.environ.setdefault("MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY", WEBHOOK_KEY)


def fresh_postgres_database() -> str:
    """A new, empty database on the test PostgreSQL server, as a backend store URI."""
    admin = os.environ.get("WASMFLOW_TEST_POSTGRES_URI")
    if not admin:
        pytest.fail("WASMFLOW_E2E_BACKEND=postgres needs WASMFLOW_TEST_POSTGRES_URI", pytrace=False)
    psql = shutil.which("psql") or max(glob.glob("/usr/lib/postgresql/*/bin/psql"), default=None)
    if psql is None:
        pytest.fail("psql not found (scripts/test.sh installs PostgreSQL)", pytrace=False)
    name = f"wasmflow_e2e_{uuid.uuid4().hex}"
    subprocess.run([psql, admin, "-qXc", f"CREATE DATABASE {name}"], check=True, timeout=60)
    parts = urllib.parse.urlsplit(admin)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """One `wasmflow server` process over a given store directory."""

    def __init__(
        self,
        binary: str,
        store_dir: Path,
        port: int | None = None,
        name: str = "server",
        backend_uri: str | None = None,
    ):
        self.binary = binary
        self.store_dir = Path(store_dir)
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self.db_path = self.store_dir / "db.sqlite"
        # A server started again on a store dir reads the same database: on PostgreSQL, pass the
        # first server's `backend_uri` (each new ServerProcess gets a database of its own).
        self.backend_uri = backend_uri or (
            fresh_postgres_database() if POSTGRES else f"sqlite:///{self.db_path}"
        )
        self.artifacts_dir = self.store_dir / "artifacts"
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.store_dir / f"{name}-{self.port}-{uuid.uuid4().hex[:6]}.log"
        self.proc: subprocess.Popen | None = None
        self._log_file = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def command(self) -> list[str]:
        return [
            self.binary,
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--backend-store-uri",
            self.backend_uri,
            "--artifacts-destination",
            str(self.artifacts_dir),
            "--plugins-dir",
            str(self.store_dir / "plugins"),
        ]

    def start(self, timeout: float = STARTUP_TIMEOUT) -> "ServerProcess":
        if not os.path.exists(self.binary):
            pytest.fail(
                f"wasmflow binary not found at {self.binary!r}; build it with "
                "`cargo build --release -p wasmflow-server` or set WASMFLOW_BIN",
                pytrace=False,
            )
        self._log_file = open(self.log_path, "ab")
        env = dict(os.environ)
        env.setdefault("RUST_BACKTRACE", "1")
        # Compiled plugins are shared by every server of the session: compiling the built-in
        # ones takes seconds, loading them from the cache milliseconds.
        env.setdefault("WASMFLOW_PLUGIN_CACHE_DIR", str(PLUGIN_CACHE))
        # Hostile-plugin tests wait for the deadline; keep it short.
        env.setdefault("WASMFLOW_PLUGIN_TIMEOUT", "3")
        env.setdefault("WASMFLOW_PLUGIN_MEMORY_MIB", "256")
        # A real `mlflow server` prices spans from its bundled model catalog, as wasmflow does,
        # instead of first trying to download a newer one (there is no network here).
        env.setdefault("MLFLOW_MODEL_CATALOG_URI", "")
        # Its own session, so that a kill reaches any helper processes too.
        self.proc = subprocess.Popen(
            self.command(),
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        self.wait_healthy(timeout)
        return self

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last_err = "no attempt"
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                self._fail(f"server exited with code {self.proc.returncode} before /health answered")
            try:
                r = requests.get(self.url + "/health", timeout=2)
                if r.status_code == 200:
                    assert r.text.strip() == "OK", f"/health answered {r.text!r}, expected 'OK'"
                    return
                last_err = f"HTTP {r.status_code}: {r.text[:200]!r}"
            except requests.RequestException as e:  # not listening yet
                last_err = repr(e)
            time.sleep(0.05)
        self.stop()
        self._fail(f"/health did not answer 200 within {timeout}s (last: {last_err})")

    def log_tail(self, lines: int = 60) -> str:
        try:
            with open(self.log_path, "rb") as f:
                data = f.read().decode("utf-8", "replace")
        except OSError as e:
            return f"<no log: {e}>"
        return "\n".join(data.splitlines()[-lines:])

    def _fail(self, why: str) -> None:
        pytest.fail(
            f"{why}\ncommand: {' '.join(self.command())}\n--- server log tail ({self.log_path}) ---\n"
            f"{self.log_tail()}",
            pytrace=False,
        )

    def kill(self) -> None:
        """SIGKILL, no chance to flush or clean up: a crash."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)

    def stop(self, timeout: float = 10) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


class MlflowServer(ServerProcess):
    """A real `mlflow server` (the venv's MLflow 3.17.2, one worker) over its own SQLite store and
    artifact root, for tests that compare what a client sees from it and from wasmflow."""

    def __init__(self, store_dir: Path):
        super().__init__(sys.executable, store_dir, name="mlflow")

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "mlflow", "server",
            "--host", "127.0.0.1", "--port", str(self.port),
            "--backend-store-uri", f"sqlite:///{self.db_path}",
            "--artifacts-destination", str(self.artifacts_dir),
            "--workers", "1",
        ]


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """One real `mlflow server` for the session (started on first use: it takes seconds)."""
    srv = MlflowServer(tmp_path_factory.mktemp("mlflow-server")).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def wasmflow_bin() -> str:
    return _find_binary()


@pytest.fixture(scope="session")
def server(tmp_path_factory, wasmflow_bin):
    """The shared server for all tests but the crash test; the tracking URI points at it."""
    store = tmp_path_factory.mktemp("wasmflow-store")
    srv = ServerProcess(wasmflow_bin, store, name="main").start()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", srv.url)
        mlflow.set_tracking_uri(srv.url)
        try:
            yield srv
        finally:
            srv.stop()
            # Surface crashes/panics of the server in the test output.
            if srv.proc is not None and srv.proc.returncode not in (0, -signal.SIGTERM, None):
                sys.stderr.write(
                    f"\nwasmflow server exited with {srv.proc.returncode}; log tail:\n"
                    f"{srv.log_tail()}\n"
                )


@pytest.fixture(autouse=True)
def _tracking(request, monkeypatch):
    """Point the client at the shared server and leave no active run behind."""
    if "isolated_server" in request.fixturenames:
        yield
        return
    srv = request.getfixturevalue("server")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", srv.url)
    mlflow.set_tracking_uri(srv.url)
    try:
        yield
    finally:
        while mlflow.active_run() is not None:
            mlflow.end_run()


@pytest.fixture
def base_url(server) -> str:
    return server.url


@pytest.fixture
def api(server):
    """`api(path)` -> full URL of a REST endpoint under /api/2.0/mlflow/."""
    return lambda path: f"{server.url}/api/2.0/mlflow/{path.lstrip('/')}"


@pytest.fixture
def client(server) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(tracking_uri=server.url)


@pytest.fixture
def unique_name(request):
    """`unique_name("prefix")` -> a name no other test (or earlier session) uses."""
    test = request.node.name.replace("[", "-").replace("]", "")[:60]

    def make(prefix: str = "exp") -> str:
        return f"{prefix}-{test}-{uuid.uuid4().hex[:10]}"

    return make


@pytest.fixture
def experiment_id(client, unique_name) -> str:
    """A fresh experiment of this test's own, also made the active one for fluent calls."""
    name = unique_name("exp")
    exp_id = client.create_experiment(name)
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


@pytest.fixture
def isolated_server(tmp_path, wasmflow_bin):
    """Factory for extra servers (own store unless a directory is given); all stopped afterwards."""
    started: list[ServerProcess] = []

    def start(store_dir: Path | None = None, name: str = "extra", backend_uri: str | None = None) -> ServerProcess:
        srv = ServerProcess(wasmflow_bin, store_dir or tmp_path / "store", name=name,
                            backend_uri=backend_uri).start()
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.stop()


class ModelServer:
    """One `wasmflow models serve` process."""

    def __init__(self, binary: str, model_uri: str, tmp: Path, *extra: str, env: dict | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp / f"serve-{self.port}.log"
        self.command = [
            binary, "models", "serve", "-m", model_uri, "-p", str(self.port),
            "--plugins-dir", str(tmp / "serve-plugins"), *extra,
        ]
        full_env = {**os.environ, "WASMFLOW_PLUGIN_CACHE_DIR": str(PLUGIN_CACHE), **(env or {})}
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            self.command, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=full_env
        )

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"models serve exited with {self.proc.returncode}:\n{self.logs()}"
            try:
                if requests.get(self.url + "/ping", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.05)
        pytest.fail(f"/ping never answered 200:\n{self.logs()}")

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def invoke(self, body, content_type="application/json"):
        data = body if isinstance(body, (str, bytes)) else json.dumps(body)
        return requests.post(self.url + "/invocations", data=data, headers={"Content-Type": content_type}, timeout=60)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)
        self.log.close()


class MotoS3:
    """One moto S3 server (`moto_server`, as MLflow's own S3 tests use) for a pytest process."""

    def __init__(self, tmp: Path):
        exe = Path(sys.executable).parent / "moto_server"
        if not exe.exists():
            why = f"moto_server is not installed beside {sys.executable} (pip install 'moto[server]')"
            # scripts/test.sh installs it: there a missing moto is a failure, not a skip.
            if os.environ.get("WASMFLOW_E2E_REQUIRE_S3") == "1":
                pytest.fail(why, pytrace=False)
            pytest.skip(why)
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp / f"moto-{self.port}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [str(exe), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"moto_server exited:\n{self.log_path.read_text(errors='replace')}"
            try:
                requests.get(self.endpoint + "/moto-api/", timeout=2)
                break
            except requests.RequestException:
                time.sleep(0.05)
        else:
            self.stop()
            pytest.fail(f"moto_server did not answer within {STARTUP_TIMEOUT}s", pytrace=False)

    # What both the server and the client (boto3) read, as MLflow documents for S3-compatible stores.
    def env(self) -> dict:
        return {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "MLFLOW_S3_ENDPOINT_URL": self.endpoint,
        }

    def client(self):
        import boto3

        e = self.env()
        return boto3.client(
            "s3", endpoint_url=self.endpoint, region_name=e["AWS_DEFAULT_REGION"],
            aws_access_key_id=e["AWS_ACCESS_KEY_ID"], aws_secret_access_key=e["AWS_SECRET_ACCESS_KEY"],
        )

    def new_bucket(self) -> str:
        """A bucket of its own for one test (names are 3 to 63 lowercase characters)."""
        name = f"wf-{uuid.uuid4().hex[:20]}"
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> dict[str, dict]:
        """Every object under `prefix`: key -> {"Size", "ETag"}."""
        out = {}
        for page in self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                out[obj["Key"]] = {"Size": obj["Size"], "ETag": obj["ETag"]}
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._log.close()


@pytest.fixture(scope="session")
def moto_s3(tmp_path_factory):
    """A moto S3 server for this pytest process (each xdist worker starts its own); tests take a
    bucket of their own with `moto_s3.new_bucket()`."""
    s3 = MotoS3(tmp_path_factory.mktemp("moto"))
    try:
        yield s3
    finally:
        s3.stop()
