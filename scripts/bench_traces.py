#!/usr/bin/env python3
"""Trace ingestion and search, wasmflow vs `mlflow server`, in one run; prints a markdown table.

    python scripts/bench_traces.py [--traces 2000] [--otlp-spans 100000] [--search-traces 100000]

For each server (a fresh SQLite store each, on this machine):
  * client ingest: `--traces` traces of 10 spans each made with `@mlflow.trace` / `start_span` in
    a child process pointed at the server (the client exports each trace's spans over OTLP, then
    its record), timed until `flush_trace_async_logging` returns: traces per second.
  * OTLP ingest: OTLP/HTTP protobuf requests of 100 spans (10 traces of 10 spans), 8 concurrent
    clients, `--otlp-spans` spans in all: spans per second.
  * search: `search_traces` (`POST /api/3.0/mlflow/traces/search`, 100 per page) over the
    experiment holding the OTLP traces, without a filter and with a status and a span-name
    filter: median and p95 of `--reps` calls, client-observed.
Servers are started with their defaults (mlflow: `mlflow server`, its uvicorn workers); only
127.0.0.1 is touched. `--skip-mlflow` measures wasmflow alone.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from bench_proc import free_port, stop

REPO = Path(__file__).resolve().parents[1]

CLIENT_SCRIPT = r"""
import sys, time, mlflow
url, exp_name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
mlflow.set_tracking_uri(url)
mlflow.set_experiment(exp_name)

@mlflow.trace(span_type="TOOL")
def step(i):
    with mlflow.start_span("llm", span_type="LLM") as s:
        s.set_inputs({"i": i})
        s.set_outputs({"o": i + 1})
    return i

@mlflow.trace
def agent(x):
    # 1 root + 4 steps * (step + llm) + 1 = 10 spans
    for i in range(4):
        step(i)
    with mlflow.start_span("final"):
        pass
    return x

agent(-1)  # warm-up: experiment lookup, server version probe
mlflow.flush_trace_async_logging()
t = time.perf_counter()
for k in range(n):
    agent(k)
mlflow.flush_trace_async_logging()
print(time.perf_counter() - t)
"""


def wait_up(proc: subprocess.Popen, url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server at {url} exited with {proc.returncode}")
        try:
            if requests.get(url + "/health", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise SystemExit(f"server at {url} did not come up")


def start(kind: str, args, store: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    if kind == "wasmflow":
        cmd = [args.wasmflow, "server"]
    else:
        cmd = [sys.executable, "-m", "mlflow", "server"]
    cmd += ["--host", "127.0.0.1", "--port", str(port),
            "--backend-store-uri", f"sqlite:///{store / 'db.sqlite'}",
            "--artifacts-destination", str(store / "artifacts")]
    log = open(store / f"{kind}.log", "wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, "RUST_LOG": "warn"})
    url = f"http://127.0.0.1:{port}"
    wait_up(proc, url)
    return proc, url


def create_experiment(url: str, name: str) -> str:
    r = requests.post(f"{url}/api/2.0/mlflow/experiments/create", json={"name": name}, timeout=30)
    r.raise_for_status()
    return r.json()["experiment_id"]


def client_ingest(url: str, traces: int) -> float:
    out = subprocess.run(
        [sys.executable, "-c", CLIENT_SCRIPT, url, f"client-{random.getrandbits(32):x}", str(traces)],
        check=True, capture_output=True, text=True,
        env={**os.environ, "MLFLOW_ENABLE_ASYNC_TRACE_LOGGING": "true"},
    )
    return traces / float(out.stdout.strip().splitlines()[-1])


def otlp_body(rng: random.Random, start_ns: int) -> bytes:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value="bench")))
    ss = rs.scope_spans.add()
    for t in range(10):
        trace_id = rng.getrandbits(128).to_bytes(16, "big")
        root_id = rng.getrandbits(64).to_bytes(8, "big")
        for s in range(10):
            span = ss.spans.add()
            span.trace_id = trace_id
            span.span_id = root_id if s == 0 else rng.getrandbits(64).to_bytes(8, "big")
            if s:
                span.parent_span_id = root_id
            span.name = "root" if s == 0 else f"step-{s}"
            span.start_time_unix_nano = start_ns + t * 1000 + s
            span.end_time_unix_nano = start_ns + t * 1000 + 100 - s
            span.status.code = 2 if (t == 0 and s == 0) else 1
            span.attributes.append(KeyValue(key="mlflow.spanType", value=AnyValue(string_value="LLM" if s else "CHAIN")))
            span.attributes.append(KeyValue(key="mlflow.spanInputs", value=AnyValue(string_value='{"q": "hello"}')))
    return req.SerializeToString()


def otlp_ingest(url: str, experiment_id: str, spans: int) -> float:
    rng = random.Random(7)
    now = time.time_ns()
    bodies = [otlp_body(rng, now - i * 10_000_000) for i in range(spans // 100)]
    headers = {"Content-Type": "application/x-protobuf", "x-mlflow-experiment-id": experiment_id}

    def send(chunk):
        s = requests.Session()
        for body in chunk:
            s.post(f"{url}/v1/traces", data=body, headers=headers, timeout=120).raise_for_status()

    chunks = [bodies[i::8] for i in range(8)]
    t = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(send, chunks))
    return len(bodies) * 100 / (time.perf_counter() - t)


def search_latency(url: str, experiment_id: str, filter_string: str | None, reps: int):
    s = requests.Session()
    body = {"locations": [{"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": experiment_id}}],
            "max_results": 100}
    if filter_string:
        body["filter"] = filter_string
    times = []
    count = 0
    for _ in range(reps):
        t = time.perf_counter()
        r = s.post(f"{url}/api/3.0/mlflow/traces/search", json=body, timeout=120)
        times.append((time.perf_counter() - t) * 1000)
        r.raise_for_status()
        count = len(r.json().get("traces", []))
    times.sort()
    return statistics.median(times), times[max(0, int(len(times) * 0.95) - 1)], count


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wasmflow", default=os.environ.get("WASMFLOW_BIN") or str(REPO / "target/release/wasmflow"))
    ap.add_argument("--traces", type=int, default=500)
    ap.add_argument("--otlp-spans", type=int, default=100_000)
    ap.add_argument("--mlflow-otlp-spans", type=int, default=10_000,
                    help="spans sent to mlflow server (it is slower; the rate is what matters)")
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--skip-mlflow", action="store_true")
    args = ap.parse_args()

    results = {}
    for kind in ["wasmflow"] + ([] if args.skip_mlflow else ["mlflow"]):
        store = Path(tempfile.mkdtemp(prefix=f"bench-traces-{kind}-"))
        proc, url = start(kind, args, store)
        try:
            r = {}
            r["client"] = client_ingest(url, args.traces)
            exp = create_experiment(url, "otlp")
            spans = args.otlp_spans if kind == "wasmflow" else args.mlflow_otlp_spans
            r["otlp"] = otlp_ingest(url, exp, spans)
            r["stored"] = spans // 10
            r["search"] = search_latency(url, exp, None, args.reps)
            r["search_status"] = search_latency(url, exp, "trace.status = 'ERROR'", args.reps)
            r["search_span"] = search_latency(url, exp, "span.name = 'step-3'", args.reps)
            results[kind] = r
            print(f"{kind}: {r}", file=sys.stderr)
        finally:
            stop(proc)

    def cell(kind, key, fmt):
        return fmt(results[kind][key]) if kind in results else "—"

    rate = lambda v: f"{v:,.0f}/s"
    lat = lambda v: f"{v[0]:.1f} ms (p95 {v[1]:.1f})"
    rows = [
        ("client ingest, traces of 10 spans", "client", rate),
        ("OTLP/HTTP protobuf ingest, spans (8 clients, 100 per request)", "otlp", rate),
        ("search_traces, 100 per page, no filter", "search", lat),
        ("search_traces, `trace.status = 'ERROR'`", "search_status", lat),
        ("search_traces, `span.name = 'step-3'`", "search_span", lat),
    ]
    stored = " / ".join(f"{k}: {v['stored']:,} traces" for k, v in results.items())
    print(f"\n| ({stored} searched) | wasmflow | mlflow server |\n|---|---|---|")
    for label, key, fmt in rows:
        print(f"| {label} | {cell('wasmflow', key, fmt)} | {cell('mlflow', key, fmt)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
