"""Protection from hostile pages and bounded resources (issue 16, parts 2 and 3).

Hostile pages: a foreign `Host` (DNS rebinding) and a cross-origin `text/plain` POST (a "simple"
request, sent without a preflight) are answered 403 with MLflow 3's texts, while the official
client, localhost origins, the server's own UI and origins allowed with `--cors-allowed-origins`
work; every answer carries `X-Content-Type-Options` and `X-Frame-Options`.

Resources: idle and slowloris connections are closed after `--idle-timeout` while a normal
client is served, connections past `--max-connections` get a 503 in MLflow's shape, scoring
requests past the row limit get a 400 before they are parsed, memory goes back after a large
request, a 1,000-clause filter is a 400 (not SQLite's 500), and interrupted or stale upload
temporaries are removed. No timed assertions beyond generous bounds.
"""

from __future__ import annotations

import json
import os
import resource
import socket
import time
from pathlib import Path

import mlflow
import pytest
import requests
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from conftest import ModelServer, ServerProcess
from test_plugins import PLUGINS_API, plugin_file, write_linear_model

INVALID_HOST = "Invalid Host header - possible DNS rebinding attack detected"
CORS_BLOCKED = "Cross-origin request blocked"
EVIL = "http://evil.example.com"
ALLOWED = "https://app.example.com"


class FlaggedServer(ServerProcess):
    """A `wasmflow server` with extra flags."""

    def __init__(self, binary, store_dir, *flags: str, name="flagged"):
        super().__init__(binary, store_dir, name=name)
        self.flags = list(flags)

    def command(self) -> list[str]:
        return super().command() + self.flags


@pytest.fixture
def flagged(wasmflow_bin, tmp_path):
    started = []

    def start(*flags: str, store: Path | None = None) -> FlaggedServer:
        srv = FlaggedServer(wasmflow_bin, store or tmp_path / f"store{len(started)}", *flags).start()
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.stop()


def create_experiment_raw(url: str, name: str, **headers) -> requests.Response:
    """experiments/create as a hostile page's `fetch(..., {mode: 'no-cors'})` sends it."""
    return requests.post(
        f"{url}/api/2.0/mlflow/experiments/create",
        data=json.dumps({"name": name}),
        headers={"Content-Type": "text/plain", **headers},
        timeout=30,
    )


def assert_security_headers(r: requests.Response, frame: str = "SAMEORIGIN"):
    assert r.headers.get("X-Content-Type-Options") == "nosniff", (r.status_code, dict(r.headers))
    assert r.headers.get("X-Frame-Options") == frame, (r.status_code, dict(r.headers))


# --- hostile pages ---------------------------------------------------------------------------


def test_a_foreign_host_is_refused_as_mlflow_refuses_it(server, client):
    url = f"{server.url}/api/2.0/mlflow/experiments/search?max_results=1"
    for host in ("rebind.attacker.net", f"rebind.attacker.net:{server.port}", "localhost.attacker.net"):
        r = requests.get(url, headers={"Host": host}, timeout=30)
        assert r.status_code == 403, (host, r.status_code, r.text)
        assert r.text == INVALID_HOST
        assert r.headers["Content-Type"].startswith("text/plain")
        assert_security_headers(r)
    # Health checks come from load balancers with addresses of their own.
    assert requests.get(server.url + "/health", headers={"Host": "lb.internal"}, timeout=30).status_code == 200
    # The loopback names, with or without the port, and the official client, work.
    for host in (f"127.0.0.1:{server.port}", f"localhost:{server.port}", "localhost"):
        assert requests.get(url, headers={"Host": host}, timeout=30).status_code == 200, host
    assert client.search_experiments(max_results=1)


def test_a_cross_origin_text_plain_post_changes_nothing(server, client, unique_name):
    name = unique_name("hostile")
    r = create_experiment_raw(server.url, name, Origin=EVIL)
    assert r.status_code == 403 and r.text == CORS_BLOCKED, (r.status_code, r.text)
    assert_security_headers(r)
    assert "Access-Control-Allow-Origin" not in r.headers
    assert client.get_experiment_by_name(name) is None

    # The same through the UI's path prefix and with the other state-changing methods.
    r = requests.post(
        f"{server.url}/ajax-api/2.0/mlflow/experiments/create",
        data=json.dumps({"name": name}),
        headers={"Content-Type": "text/plain", "Origin": EVIL},
        timeout=30,
    )
    assert r.status_code == 403, r.text
    for method in ("DELETE", "PATCH", "PUT"):
        r = requests.request(method, f"{server.url}/api/2.0/mlflow-artifacts/artifacts/x.txt",
                             data=b"x", headers={"Origin": EVIL}, timeout=30)
        assert r.status_code == 403, (method, r.status_code, r.text)
    # A cross-origin read gets its answer but no CORS header: the browser keeps it from the page.
    r = requests.get(f"{server.url}/api/2.0/mlflow/experiments/search?max_results=1",
                     headers={"Origin": EVIL}, timeout=30)
    assert r.status_code == 200 and "Access-Control-Allow-Origin" not in r.headers
    assert client.get_experiment_by_name(name) is None


def test_a_cross_origin_page_cannot_install_a_plugin(server):
    wasm = plugin_file("wasmflow_testing_hostile.wasm").read_bytes()
    before = requests.get(server.url + PLUGINS_API, timeout=30).json()["plugins"]
    r = requests.post(server.url + PLUGINS_API, data=wasm,
                      headers={"Content-Type": "text/plain", "Origin": EVIL}, timeout=120)
    assert r.status_code == 403 and r.text == CORS_BLOCKED, (r.status_code, r.text[:200])
    assert requests.get(server.url + PLUGINS_API, timeout=30).json()["plugins"] == before
    # A sandboxed frame or a file: page sends `Origin: null`.
    r = requests.post(server.url + PLUGINS_API, data=wasm, headers={"Origin": "null"}, timeout=120)
    assert r.status_code == 403, r.text[:200]


def test_localhost_and_same_origin_pages_work(server, client, unique_name):
    # The UI is served by the server itself: its requests carry the server's own origin.
    for origin in (server.url, "http://localhost:3000", "http://[::1]:8080"):
        name = unique_name("ui")
        r = create_experiment_raw(server.url, name, Origin=origin)
        assert r.status_code == 200, (origin, r.status_code, r.text)
        assert r.headers["Access-Control-Allow-Origin"] == origin
        assert client.get_experiment_by_name(name) is not None
    index = requests.get(server.url + "/", timeout=30)
    assert index.status_code == 200
    assert_security_headers(index)
    missing = requests.get(server.url + "/api/2.0/mlflow/no-such-endpoint", timeout=30)
    assert missing.status_code == 404
    assert_security_headers(missing)


def test_allowed_origins_hosts_and_frame_options_are_configurable(flagged, unique_name):
    srv = flagged(
        "--cors-allowed-origins", f"{ALLOWED},https://*.tools.example",
        "--allowed-hosts", "mlflow.corp.example,127.0.0.1:*",
        "--x-frame-options", "DENY",
    )
    name = unique_name("allowed")
    # A preflight from an allowed origin is answered; one from another origin is not.
    pre = requests.options(
        f"{srv.url}/api/2.0/mlflow/experiments/create",
        headers={"Origin": ALLOWED, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type,authorization"},
        timeout=30,
    )
    assert pre.status_code == 204, (pre.status_code, pre.text)
    assert pre.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert pre.headers["Access-Control-Allow-Credentials"] == "true"
    assert "POST" in pre.headers["Access-Control-Allow-Methods"]
    assert pre.headers["Access-Control-Allow-Headers"] == "content-type,authorization"
    evil_pre = requests.options(
        f"{srv.url}/api/2.0/mlflow/experiments/create",
        headers={"Origin": EVIL, "Access-Control-Request-Method": "POST"},
        timeout=30,
    )
    assert evil_pre.status_code == 400 and "Access-Control-Allow-Origin" not in evil_pre.headers

    r = requests.post(f"{srv.url}/api/2.0/mlflow/experiments/create", json={"name": name},
                      headers={"Origin": ALLOWED}, timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert_security_headers(r, frame="DENY")
    r = create_experiment_raw(srv.url, name + "-w", Origin="https://x.tools.example")
    assert r.status_code == 200, r.text
    assert create_experiment_raw(srv.url, name + "-e", Origin=EVIL).status_code == 403

    # --allowed-hosts replaces the defaults.
    search = f"{srv.url}/api/2.0/mlflow/experiments/search?max_results=1"
    assert requests.get(search, headers={"Host": "mlflow.corp.example"}, timeout=30).status_code == 200
    assert requests.get(search, headers={"Host": "localhost"}, timeout=30).status_code == 403
    assert MlflowClient(tracking_uri=srv.url).get_experiment_by_name(name) is not None


class EveryInterfaceServer(FlaggedServer):
    def command(self) -> list[str]:
        return ["0.0.0.0" if arg == "127.0.0.1" else arg for arg in super().command()]


def test_listening_beyond_loopback_without_auth_is_logged(wasmflow_bin, tmp_path):
    srv = EveryInterfaceServer(wasmflow_bin, tmp_path / "exposed").start()
    try:
        assert "WITHOUT authentication" in srv.log_tail(40)
        # Reached by its loopback name it answers as ever; by a foreign name it does not.
        assert requests.get(srv.url + "/api/2.0/mlflow/experiments/search?max_results=1", timeout=30).status_code == 200
        r = requests.get(srv.url + "/api/2.0/mlflow/experiments/search?max_results=1",
                         headers={"Host": "attacker.example:80"}, timeout=30)
        assert r.status_code == 403
    finally:
        srv.stop()
    loopback = FlaggedServer(wasmflow_bin, tmp_path / "loopback").start()
    try:
        assert "WITHOUT authentication" not in loopback.log_tail(40)
    finally:
        loopback.stop()


# --- bounded resources -----------------------------------------------------------------------


def _raise_fd_limit(want: int) -> int:
    """Raises this process's open-file limit (servers started after inherit it); the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _closed_by_server(sock: socket.socket, deadline: float) -> bool:
    """Whether the server closes `sock` before `deadline` (anything it sends first is read)."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        sock.settimeout(left)
        try:
            if not sock.recv(4096):
                return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False


def test_idle_and_slow_connections_are_closed_while_others_are_served(flagged, unique_name):
    limit = _raise_fd_limit(8192)
    count = min(2000, (limit - 256) // 2)
    assert count >= 200, f"open-file limit {limit} is too low for this test"
    srv = flagged("--idle-timeout", "2", "--max-connections", str(count + 100))
    socks = []
    try:
        for i in range(count):
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
            if i % 2:
                # Slowloris: a request line and half the headers, never finished.
                s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            socks.append(s)
        # Meanwhile a normal client is served, by the official client too.
        assert requests.get(srv.url + "/health", timeout=10).status_code == 200
        client = MlflowClient(tracking_uri=srv.url)
        exp = client.create_experiment(unique_name("busy"))
        assert client.get_experiment(exp).name.startswith("busy")
        # Every idle connection is closed after the timeout (2 s; 60 s is the generous bound).
        deadline = time.monotonic() + 60
        still_open = [i for i, s in enumerate(socks) if not _closed_by_server(s, deadline)]
        assert not still_open, f"{len(still_open)} of {count} idle connections still open"
        assert requests.get(srv.url + "/health", timeout=10).status_code == 200
    finally:
        for s in socks:
            s.close()


def test_connections_past_the_limit_get_a_503_in_mlflows_shape(flagged):
    srv = flagged("--max-connections", "4", "--idle-timeout", "60")
    held = [socket.create_connection(("127.0.0.1", srv.port), timeout=10) for _ in range(4)]
    try:
        time.sleep(0.2)
        r = requests.get(srv.url + "/health", timeout=10)
        assert r.status_code == 503, (r.status_code, r.text)
        assert r.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"
        assert "--max-connections" in r.json()["message"]
    finally:
        for s in held:
            s.close()
    # Freed connections make room again.
    deadline = time.monotonic() + 30
    while requests.get(srv.url + "/health", timeout=10).status_code != 200:
        assert time.monotonic() < deadline, "the server never accepted connections again"
        time.sleep(0.1)


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _rows(n: int) -> bytes:
    return json.dumps({"dataframe_split": {"columns": ["x1", "x2"], "data": [[1.5, -2.0]] * n}}).encode()


def test_scoring_requests_past_the_row_limit_are_refused_and_memory_goes_back(wasmflow_bin, tmp_path):
    model = write_linear_model(tmp_path / "linear")
    s = ModelServer(wasmflow_bin, str(model), tmp_path, "--max-scoring-rows", "200000").wait_ready()
    try:
        assert s.invoke(_rows(3)).status_code == 200
        # Past the limit: refused before parsing, in MLflow's error shape, for JSON and CSV.
        r = s.invoke(_rows(1_000_000))
        assert r.status_code == 400, (r.status_code, r.text[:300])
        assert r.json()["error_code"] == "BAD_REQUEST"
        assert "1000000 rows" in r.json()["message"] and "200000" in r.json()["message"]
        csv = "x1,x2\n" + "1.5,-2.0\n" * 200_001
        r = s.invoke(csv, content_type="text/csv")
        assert r.status_code == 400 and "limit of 200000" in r.json()["message"], r.text[:300]
        # Under it: answered, and the memory the parse took is given back afterwards.
        before = _rss_kib(s.proc.pid)
        r = s.invoke(_rows(190_000))
        assert r.status_code == 200, r.text[:300]
        assert len(r.json()["predictions"]) == 190_000
        deadline = time.monotonic() + 30
        while (after := _rss_kib(s.proc.pid)) > before + 96 * 1024:
            assert time.monotonic() < deadline, f"RSS {before} KiB before, {after} KiB after"
            time.sleep(0.5)
        assert requests.get(s.url + "/ping", timeout=10).status_code == 200
        assert s.proc.poll() is None
    finally:
        s.stop()


def test_the_default_row_limit_refuses_a_million_rows_on_the_tracking_server(server, client, tmp_path):
    model = write_linear_model(tmp_path / "m")
    name = "security-row-limit"
    mlflow.set_experiment("security-row-limit")
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(model), "model")
    version = mlflow.register_model(f"runs:/{run.info.run_id}/model", name).version
    url = f"{server.url}/serving/models/{name}/{version}/invocations"
    r = requests.post(url, data=_rows(1_000_000), headers={"Content-Type": "application/json"}, timeout=120)
    assert r.status_code == 400 and r.json()["error_code"] == "BAD_REQUEST", r.text[:300]
    assert "100000" in r.json()["message"]
    r = requests.post(url, data=_rows(3), headers={"Content-Type": "application/json"}, timeout=60)
    assert r.status_code == 200, r.text


def test_a_thousand_clause_filter_is_a_400_not_a_500(client, experiment_id):
    clauses = " and ".join(["metrics.m > 1"] * 1000)
    with pytest.raises(MlflowException) as e:
        client.search_runs([experiment_id], filter_string=clauses)
    assert e.value.error_code == "INVALID_PARAMETER_VALUE", e.value
    assert "more than 200 clauses" in str(e.value)
    with pytest.raises(MlflowException) as e:
        client.search_experiments(filter_string=" and ".join(["name = 'x'"] * 1000))
    assert e.value.error_code == "INVALID_PARAMETER_VALUE"
    # 200 clauses still work.
    assert client.search_runs([experiment_id], filter_string=" and ".join(["metrics.m > 1"] * 200)) == []


def test_interrupted_and_stale_upload_temporaries_are_removed(flagged, tmp_path):
    store = tmp_path / "uploads"
    stale = store / "artifacts" / "1" / ".artifact.uploading.leftover"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"partial")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    srv = flagged(store=store)
    deadline = time.monotonic() + 30
    while stale.exists():
        assert time.monotonic() < deadline, "the stale upload temporary was never removed"
        time.sleep(0.1)

    # An upload whose client goes away halfway leaves nothing behind.
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(
            b"PUT /api/2.0/mlflow-artifacts/artifacts/2/big.bin HTTP/1.1\r\n"
            + f"Host: 127.0.0.1:{srv.port}\r\nContent-Length: 10000000\r\n\r\n".encode()
            + b"x" * 1_000_000
        )
        time.sleep(0.5)
    temporaries = lambda: [p for p in (store / "artifacts").rglob(".artifact.uploading.*")]  # noqa: E731
    deadline = time.monotonic() + 30
    while temporaries():
        assert time.monotonic() < deadline, temporaries()
        time.sleep(0.1)
    assert not (store / "artifacts" / "2" / "big.bin").exists()
