#!/usr/bin/env python3
"""Micro-benchmarks of a wasmflow (or any MLflow-compatible) tracking server; prints a markdown table.

    python scripts/bench.py                       # starts $WASMFLOW_BIN on a temp store
    python scripts/bench.py http://127.0.0.1:5000 # measures a running server

Request rates and latencies are measured with wrk (Debian's `wrk`, which scripts/bench.sh installs),
a C load generator that is not the bottleneck; Python only loads the data.  Without wrk, the script
falls back to raw `requests.Session` POSTs, whose own overhead (~1.5 ms a request) then dominates.
The metric-history fetch is also timed through `MlflowClient.get_metric_history`, as a user sees it.  Start-up time and idle RSS are measured only
when the script starts the server itself.  Request loops are bounded and only touch 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import requests

from bench_proc import free_port

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------------
# Server management


def default_binary() -> str:
    if os.environ.get("WASMFLOW_BIN"):
        return os.environ["WASMFLOW_BIN"]
    target = os.environ.get("CARGO_TARGET_DIR") or str(REPO / "target")
    return str(Path(target) / "release" / "wasmflow")


class Server:
    def __init__(self, binary: str, store: Path):
        self.binary, self.store = binary, store
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.log = open(store / f"server-{self.port}.log", "ab")

    def start(self, timeout: float = 60.0) -> float:
        """Starts the server; returns seconds from spawn to the first /health 200."""
        cmd = [
            self.binary, "server", "--host", "127.0.0.1", "--port", str(self.port),
            "--backend-store-uri", f"sqlite:///{self.store / 'db.sqlite'}",
            "--artifacts-destination", str(self.store / "artifacts"),
        ]
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        sess = requests.Session()
        while time.perf_counter() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; see {self.log.name}")
            try:
                if sess.get(self.url + "/health", timeout=1).status_code == 200:
                    return time.perf_counter() - t0
            except requests.RequestException:
                pass
            time.sleep(0.002)
        self.stop()
        raise RuntimeError(f"/health not ready within {timeout}s; see {self.log.name}")

    def rss_kib(self) -> int | None:
        """VmRSS of the server process (summed over its process group's direct children if any)."""
        if self.proc is None:
            return None
        pids = [self.proc.pid]
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
            pids += [int(c) for c in children]
        except OSError:
            pass
        total = 0
        for pid in pids:
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except OSError:
                pass
        return total or None

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


# ------------------------------------------------------------------------------------------------
# REST helpers


class Api:
    def __init__(self, url: str, session: requests.Session | None = None):
        self.base = url.rstrip("/") + "/api/2.0/mlflow/"
        self.s = session or requests.Session()

    def post(self, path: str, body: dict) -> dict:
        r = self.s.post(self.base + path, json=body, timeout=120)
        if r.status_code != 200:
            raise RuntimeError(f"POST {path}: HTTP {r.status_code}: {r.text[:300]}")
        return r.json()

    def experiment(self) -> str:
        return self.post("experiments/create", {"name": f"bench-{uuid.uuid4().hex[:12]}"})["experiment_id"]

    def run(self, exp: str) -> str:
        return self.post("runs/create", {"experiment_id": exp, "start_time": now_ms()})["run"]["info"]["run_id"]


def now_ms() -> int:
    return int(time.time() * 1000)


def metric(key: str, value: float, step: int) -> dict:
    return {"key": key, "value": value, "timestamp": now_ms(), "step": step}


# ------------------------------------------------------------------------------------------------
# wrk


WRK = shutil.which("wrk")
WRK_SECONDS = 5


def wrk(url: str, path: str, *, connections: int = 1, lua: str | None = None,
        seconds: int | None = None) -> tuple[float, float]:
    """Runs wrk against url+path for `seconds` (default WRK_SECONDS, read when called); returns
    (requests/s, mean latency in ms). Fails on non-2xx."""
    seconds = seconds or WRK_SECONDS
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(lua or "")
        script = f.name
    try:
        # A 30 s timeout: wrk's 2 s default would drop a slow server's answers from its count.
        cmd = [WRK, f"-t{min(2, connections)}", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "30s",
               "-s", script, url.rstrip("/") + path]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=seconds + 60).stdout
    finally:
        os.unlink(script)
    if "Non-2xx" in out:
        raise RuntimeError(f"wrk saw error responses:\n{out}")
    rate = float(next(l for l in out.splitlines() if l.startswith("Requests/sec:")).split()[1])
    lat = next(l for l in out.splitlines() if l.strip().startswith("Latency") and "Distribution" not in l)
    value = lat.split()[1]
    unit_ms = {"us": 1e-3, "ms": 1.0, "s": 1e3}
    for suffix, factor in sorted(unit_ms.items(), key=lambda kv: -len(kv[0])):
        if value.endswith(suffix):
            return rate, float(value[: -len(suffix)]) * factor
    raise RuntimeError(f"cannot read wrk latency '{value}'")


def post_lua(body_expr: str) -> str:
    """A wrk script that POSTs JSON built by the Lua expression `body_expr` (with `n` counting)."""
    return f"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
n = 0
request = function()
  n = n + 1
  return wrk.format(nil, nil, nil, {body_expr})
end
"""


def log_metric_lua(run: str) -> str:
    """POSTs of one metric to `run`, every point distinct: each wrk thread counts from 0, and its
    own number (set by `setup`, as each thread has a Lua state of its own) keeps steps apart."""
    return post_lua(
        f"'{{\"run_id\":\"{run}\",\"key\":\"m\",\"value\":' .. n .. "
        "',\"timestamp\":1700000000000,\"step\":' .. (n * 16 + (id or 0)) .. '}'"
    ) + """
local threads = 0
function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end
"""


def wrk_log_metric(url: str, clients: int) -> tuple:
    api = Api(url)
    run = api.run(api.experiment())
    lua = log_metric_lua(run)
    rate, lat = wrk(url, "/api/2.0/mlflow/runs/log-metric", connections=clients, lua=lua)
    return rate, "req/s", f"wrk, {clients} connection(s), {WRK_SECONDS} s; mean latency {lat:.3f} ms"


def wrk_log_batch(url: str) -> tuple:
    api = Api(url)
    run = api.run(api.experiment())
    # 1000 distinct metric keys per call, a new step each call, so every point is new.
    lua = post_lua(
        f"'{{\"run_id\":\"{run}\",\"metrics\":[' .. batch(n) .. ']}}'"
    ) + """
function batch(step)
  local parts = {}
  for i = 0, 999 do
    parts[#parts + 1] = '{"key":"k' .. i .. '","value":' .. (i * 0.5) .. ',"timestamp":1700000000000,"step":' .. step .. '}'
  end
  return table.concat(parts, ",")
end
"""
    rate, lat = wrk(url, "/api/2.0/mlflow/runs/log-batch", connections=1, lua=lua)
    return rate * 1000, "metrics/s", f"wrk, 1 connection, 1000 metrics per call; {lat:.2f} ms a call"


# ------------------------------------------------------------------------------------------------
# Benchmarks; each returns (value, unit, note)


def bench_log_metric_sequential(url: str, n: int) -> tuple:
    api = Api(url)
    run = api.run(api.experiment())
    for i in range(20):  # warm-up
        api.post("runs/log-metric", {"run_id": run, **metric("warm", 1.0, i)})
    t0 = time.perf_counter()
    for i in range(n):
        api.post("runs/log-metric", {"run_id": run, **metric("m", float(i), i)})
    dt = time.perf_counter() - t0
    return n / dt, "req/s", f"{n} sequential POSTs, one keep-alive session; {dt / n * 1e3:.2f} ms each"


def bench_log_metric_concurrent(url: str, n_per_client: int, clients: int) -> tuple:
    api = Api(url)
    exp = api.experiment()
    runs = [api.run(exp) for _ in range(clients)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(clients + 1)

    def worker(run_id: str):
        a = Api(url)
        a.post("runs/log-metric", {"run_id": run_id, **metric("warm", 1.0, 0)})
        barrier.wait()
        try:
            for i in range(n_per_client):
                a.post("runs/log-metric", {"run_id": run_id, **metric("m", float(i), i)})
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(r,)) for r in runs]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    dt = time.perf_counter() - t0
    if errors:
        raise errors[0]
    total = n_per_client * clients
    return total / dt, "req/s", f"{clients} threads x {n_per_client} POSTs, own session each, own run each"


def bench_log_batch(url: str, batches: int, size: int = 1000) -> tuple:
    api = Api(url)
    run = api.run(api.experiment())
    payloads = [
        {"run_id": run, "metrics": [metric("b", float(j), b * size + j) for j in range(size)]}
        for b in range(batches)
    ]
    api.post("runs/log-batch", {"run_id": run, "metrics": [metric("warm", 1.0, 0)]})
    t0 = time.perf_counter()
    for p in payloads:
        api.post("runs/log-batch", p)
    dt = time.perf_counter() - t0
    return batches * size / dt, "metrics/s", f"{batches} log-batch calls of {size} metrics; {dt / batches * 1e3:.1f} ms each"


def bench_search(url: str, n_runs: int, reps: int) -> tuple:
    api = Api(url)
    exp = api.experiment()
    for i in range(n_runs):
        run = api.run(exp)
        api.post("runs/log-batch", {
            "run_id": run,
            "metrics": [metric("m", (i * 7919 % 1000) / 1000.0, 0), metric("n", float(i), 0)],
            "params": [{"key": "p", "value": "x" if i % 2 == 0 else "y"}, {"key": "q", "value": str(i)}],
            "tags": [{"key": "t", "value": f"tag-{i % 10}"}],
        })
    body = {
        "experiment_ids": [exp],
        "filter": "metrics.m > 0.5 and params.p = 'x'",
        "order_by": ["metrics.m DESC"],
        "max_results": 1000,
    }
    expected = api.post("runs/search", body)
    n_found = len(expected.get("runs", []))
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        res = api.post("runs/search", body)
        times.append(time.perf_counter() - t0)
        assert len(res.get("runs", [])) == n_found
    med = statistics.median(times)
    if WRK:
        import json
        lua = post_lua("'" + json.dumps(body).replace("'", "\\'") + "'")
        _, lat = wrk(url, "/api/2.0/mlflow/runs/search", connections=1, lua=lua)
        return lat, "ms (mean)", (f"wrk, 1 connection: {n_runs} runs, {n_found} match, full runs returned "
                                 f"(Python requests + json: median {med * 1e3:.1f} ms)")
    return med * 1e3, "ms (median)", f"{n_runs} runs, {n_found} match, median of {reps}"


def history_run(url: str, points: int) -> str:
    """A new run with `points` points of metric "h", logged 1000 to a log-batch."""
    api = Api(url)
    run = api.run(api.experiment())
    for start in range(0, points, 1000):
        api.post("runs/log-batch", {
            "run_id": run,
            "metrics": [metric("h", float(i), i) for i in range(start, min(points, start + 1000))],
        })
    return run


def client_history(url: str, points: int, reps: int, run: str | None = None) -> float:
    """Median seconds of `MlflowClient.get_metric_history` over a run of `points` points (made
    unless `run` is given), client parsing included, as a user sees it."""
    from mlflow.tracking import MlflowClient

    run = run or history_run(url, points)
    client = MlflowClient(tracking_uri=url)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        hist = client.get_metric_history(run, "h")
        times.append(time.perf_counter() - t0)
        assert len(hist) == points, f"got {len(hist)} of {points} points"
    return statistics.median(times)


def bench_history(url: str, points: int, reps: int) -> tuple:
    run = history_run(url, points)
    med = client_history(url, points, reps, run)
    note = f"MlflowClient.get_metric_history (incl. client parsing): median {med * 1e3:.0f} ms of {reps}"
    if WRK:
        _, lat = wrk(url, f"/api/2.0/mlflow/metrics/get-history?run_id={run}&metric_key=h", connections=1)
        return lat, "ms (mean)", f"wrk, 1 connection, all {points} points in one response; {note}"
    return med * 1e3, "ms (median)", note


# ------------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("url", nargs="?", help="server URL; omitted: start $WASMFLOW_BIN on a temp store")
    ap.add_argument("--bin", default=default_binary(), help="server binary (default: $WASMFLOW_BIN or target/release/wasmflow)")
    ap.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    args = ap.parse_args()

    q = args.quick
    sizes = dict(
        seq=200 if q else 2000,
        conc=50 if q else 500,  # per client; 8 clients
        batches=5 if q else 50,
        runs=200 if q else 2000,
        search_reps=5 if q else 20,
        points=5000 if q else 50000,
        hist_reps=2 if q else 5,
        starts=2 if q else 5,
    )

    rows: list[tuple[str, str, str, str]] = []
    tmp = Path(tempfile.mkdtemp(prefix="wasmflow-bench-"))
    server = None
    try:
        if args.url:
            url = args.url
            requests.get(url.rstrip("/") + "/health", timeout=10).raise_for_status()
        else:
            if not os.path.exists(args.bin):
                print(f"error: server binary {args.bin} not found; build it or pass a URL", file=sys.stderr)
                return 2
            # Start-up time: fresh empty store each time; the RSS of each idle server.
            startups, rss = [], []
            for i in range(sizes["starts"]):
                d = tmp / f"start-{i}"
                d.mkdir()
                s = Server(args.bin, d)
                try:
                    startups.append(s.start())
                    time.sleep(0.5)
                    rss.append(s.rss_kib())
                finally:
                    s.stop()
            rows.append(("start-up to /health 200", f"{statistics.median(startups) * 1e3:.0f}", "ms (median)",
                         f"{len(startups)} starts on an empty store"))
            rss_ok = [r for r in rss if r]
            if rss_ok:
                rows.append(("idle RSS after start", f"{statistics.median(rss_ok) / 1024:.1f}", "MiB (median)",
                             "VmRSS from /proc/PID/status, 0.5 s after /health"))
            d = tmp / "bench"
            d.mkdir()
            server = Server(args.bin, d)
            server.start()
            url = server.url

        def add(name, fn, *a):
            print(f"... {name}", file=sys.stderr, flush=True)
            try:
                value, unit, note = fn(url, *a)
                rows.append((name, f"{value:,.1f}", unit, note))
            except Exception as e:  # noqa: BLE001 — report and go on
                rows.append((name, "FAILED", "", f"{type(e).__name__}: {e}"[:200]))

        if WRK:
            add("log-metric, sequential", wrk_log_metric, 1)
            add("log-metric, 8 concurrent clients", wrk_log_metric, 8)
            add("log-batch, 1000 metrics per call", wrk_log_batch)
        else:
            add("log-metric, sequential", bench_log_metric_sequential, sizes["seq"])
            add("log-metric, 8 concurrent clients", bench_log_metric_concurrent, sizes["conc"], 8)
            add("log-batch, 1000 metrics per call", bench_log_batch, sizes["batches"])
        add(f"search {sizes['runs']} runs (filter + order)", bench_search, sizes["runs"], sizes["search_reps"])
        add(f"get-history {sizes['points']} points", bench_history, sizes["points"], sizes["hist_reps"])
        if server is not None:
            r = server.rss_kib()
            if r:
                rows.append(("RSS after the benchmarks", f"{r / 1024:.1f}", "MiB", "same server, all data above loaded"))
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"\n### wasmflow benchmark ({'quick' if q else 'full'}; server: {args.url or args.bin})\n")
    print("| benchmark | value | unit | notes |")
    print("| --- | ---: | --- | --- |")
    for name, value, unit, note in rows:
        print(f"| {name} | {value} | {unit} | {note} |")
    if WRK:
        print("\nRates and latencies measured with wrk on loopback (same 2-core machine as the server).")
    else:
        print("\nwrk not found: rates use raw `requests.Session` POSTs, so Python's HTTP overhead "
              "dominates them; install wrk (scripts/bench.sh does) for the server's own figures.")
    return 1 if any(r[1] == "FAILED" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
