#!/usr/bin/env python3
"""Trace ingestion and search, wasmflow vs `mlflow server`, in one run; prints a markdown table.

    python scripts/bench_traces.py [--traces 200] [--client-procs 4] [--otlp-traces 100000]
        [--mlflow-otlp-traces 5000] [--otlp-procs 4] [--reps 30]

For each server (a fresh SQLite store each, on this machine):
  * client ingest: `--client-procs` processes, each making `--traces` traces of 10 spans with
    `@mlflow.trace` / `start_span` (the official client exports each trace's spans over OTLP, then
    its record; async trace logging on, the client's default), timed until the last export's
    answer in the last of them (not until `flush_trace_async_logging` returns: see
    CLIENT_SCRIPT): traces per second over all processes.
  * OTLP ingest: `--otlp-procs` load-generator processes post OTLP/HTTP protobuf requests of 100
    spans (10 traces of 10 spans; bodies built before the clock starts) to `/v1/traces`:
    spans stored per second from the first request to the last answer (a refused request,
    such as mlflow's 503 "database is locked" under concurrent writers, counts for nothing).
    The bodies are encoded before the clock starts and posted with `http.client` on one
    keep-alive connection per process, so the generator costs little of the shared cores and
    the server is what is measured. These traces (`--otlp-traces`
    for wasmflow, `--mlflow-otlp-traces` for mlflow, which ingests far slower) fill the
    experiment that is searched.
  * search: `search_traces` (`POST /api/3.0/mlflow/traces/search`, 100 per page) over that
    experiment, with the filter forms MLflow users write (none = the newest 100, status, tag,
    timestamp range, span name, span attribute): median and p95 of `--reps` calls,
    client-observed to the answer's last byte (one keep-alive connection), and how many traces
    the page held; and `batchGet` of one trace with its spans (the newest 100 in turn).
Servers are started with their defaults (mlflow: `mlflow server`, its uvicorn workers); only
127.0.0.1 is touched. `--skip-mlflow` measures wasmflow alone, `--skip-wasmflow` mlflow alone.
`--otlp-only` skips the client ingest and the searches and prints, for the OTLP ingest, the
server's CPU a span by thread (from /proc/PID/task/*/stat) and its bytes and write calls a span
(from /proc/PID/io): where a server's time goes, on a machine too busy for rates to compare.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from bench_proc import KeepAlive, free_port, stop, wait_up

REPO = Path(__file__).resolve().parents[1]

CLIENT_SCRIPT = r"""
import sys, time, mlflow
from mlflow.tracing.provider import _get_span_processor
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
t = time.time()
for k in range(n):
    agent(k)
# The end is the last export's answer: the batch span processor hands its spans to the exporter,
# whose queue then has no unfinished task (each its requests sent and answered). Not when
# flush_trace_async_logging() returns: it stops the exporter's consumer thread, which waits for
# work a second at a time, so it returns about a second (1.0-1.6 s seen) after the last answer,
# on either server.
processor = _get_span_processor()
processor.force_flush()
exporter_queue = getattr(processor.span_exporter, "_async_queue", None)
if exporter_queue is not None:
    exporter_queue._queue.join()
end = time.time()
mlflow.flush_trace_async_logging()
print(t, end)
"""


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


def client_ingest(url: str, traces: int, procs: int) -> float:
    """Traces per second of `procs` client processes making `traces` traces each, at once."""
    exp_name = f"client-{random.getrandbits(32):x}"
    create_experiment(url, exp_name)  # so the processes do not race to create it
    env = {**os.environ, "MLFLOW_ENABLE_ASYNC_TRACE_LOGGING": "true"}
    running = [subprocess.Popen([sys.executable, "-c", CLIENT_SCRIPT, url, exp_name, str(traces)],
                                stdout=subprocess.PIPE, text=True, env=env) for _ in range(procs)]
    spans = []
    for p in running:
        out, _ = p.communicate()
        if p.returncode:
            raise SystemExit(f"client process failed with {p.returncode}")
        spans.append(tuple(float(x) for x in out.strip().splitlines()[-1].split()))
    return traces * procs / (max(e for _, e in spans) - min(s for s, _ in spans))


MODELS = 10


def otlp_body(rng: random.Random, start_ns: int, first_trace: int) -> bytes:
    """10 traces of 10 spans: a CHAIN root (tagged `group` = trace number mod 10, ERROR for one
    trace in 10) and 9 LLM children (`step-1`..`step-9`, attribute `tier` = m<trace mod 10>)."""
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value="bench")))
    ss = rs.scope_spans.add()
    for t in range(10):
        n = first_trace + t
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
            if s == 0:
                span.attributes.append(KeyValue(key="mlflow.traceTag.group", value=AnyValue(string_value=str(n % 10))))
            else:
                span.attributes.append(KeyValue(key="tier", value=AnyValue(string_value=f"m{n % MODELS}")))
    return req.SerializeToString()


def _otlp_worker(url, experiment_id, requests_idx, t0_ns, barrier, out):
    rng = random.Random(requests_idx[0] if requests_idx else 0)
    # Request i holds traces 10i..10i+9, started 10 ms before request i-1's.
    bodies = [otlp_body(rng, t0_ns - i * 10_000_000, i * 10) for i in requests_idx]
    headers = {"Content-Type": "application/x-protobuf", "x-mlflow-experiment-id": experiment_id}
    client = KeepAlive(url)
    barrier.wait()
    start = time.time()
    refused = 0
    for body in bodies:
        # mlflow server on SQLite answers 503 ("database is locked") to some concurrent
        # writers: such a request is counted as refused, not retried.
        refused += client.post("/v1/traces", body, headers)[0] != 200
    out.put((start, time.time(), refused))


def server_counters(pid: int) -> tuple[dict[str, int], dict[str, int]]:
    """CPU ticks by thread name, and the /proc/PID/io counters, of process `pid`."""
    ticks: dict[str, int] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:
            continue  # the thread ended
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        ticks[name] = ticks.get(name, 0) + int(fields[11]) + int(fields[12])
    io = dict((k, int(v)) for k, v in
              (line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines()))
    return ticks, io


def otlp_ingest(url: str, experiment_id: str, traces: int, procs: int, t0_ns: int) -> float:
    """Spans per second of `procs` processes posting `traces` traces in requests of 100 spans."""
    n = traces // 10
    ctx = multiprocessing.get_context("fork")
    barrier, out = ctx.Barrier(procs), ctx.Queue()
    workers = [ctx.Process(target=_otlp_worker, args=(url, experiment_id, list(range(k, n, procs)),
                                                      t0_ns, barrier, out)) for k in range(procs)]
    for w in workers:
        w.start()
    spans = [out.get() for _ in workers]
    for w in workers:
        w.join()
        if w.exitcode:
            raise SystemExit(f"load generator failed with {w.exitcode}")
    refused = sum(r for _, _, r in spans)
    if refused:
        print(f"{url}: {refused} of {n} OTLP requests refused", file=sys.stderr)
    return (n - refused) * 100 / (max(e for _, e, _ in spans) - min(s for s, _, _ in spans))


def search_latency(url: str, experiment_id: str, filter_string: str | None, reps: int):
    client = KeepAlive(url)
    body = {"locations": [{"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": experiment_id}}],
            "max_results": 100}
    if filter_string:
        body["filter"] = filter_string
    data = json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    times = []
    count = 0
    for _ in range(reps):
        t = time.perf_counter()
        status, answer = client.post("/api/3.0/mlflow/traces/search", data, headers)
        times.append((time.perf_counter() - t) * 1000)
        if status != 200:
            raise SystemExit(f"{url}: search {filter_string!r} answered {status}: {answer[:300]!r}")
        count = len(json.loads(answer).get("traces", []))
    times.sort()
    return statistics.median(times), times[max(0, int(len(times) * 0.95) - 1)], count


def get_trace_latency(url: str, experiment_id: str, reps: int):
    """`GET /api/3.0/mlflow/traces/batchGet` of one trace with its spans (what the UI's trace
    view asks), the newest 100 traces in turn: median and p95 of `reps` calls, and the spans of
    the last answer's trace."""
    client = KeepAlive(url)
    body = {"locations": [{"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": experiment_id}}],
            "max_results": 100}
    status, answer = client.post("/api/3.0/mlflow/traces/search", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    ids = [t["trace_id"] for t in json.loads(answer)["traces"]]
    times = []
    spans = 0
    for i in range(reps):
        t = time.perf_counter()
        client.conn.request("GET", f"/api/3.0/mlflow/traces/batchGet?trace_ids={ids[i % len(ids)]}")
        r = client.conn.getresponse()
        answer = r.read()
        times.append((time.perf_counter() - t) * 1000)
        if r.status != 200:
            raise SystemExit(f"{url}: batchGet answered {r.status}: {answer[:300]!r}")
        spans = len(json.loads(answer)["traces"][0]["spans"])
    times.sort()
    return statistics.median(times), times[max(0, int(len(times) * 0.95) - 1)], spans


def searches(t0_ms: int, traces: int) -> list[tuple[str, str | None]]:
    """(label, filter) of the searched forms; the time range holds about 1% of the traces."""
    mid = t0_ms - traces // 2  # the middle of the traces' times (10 traces each 10 ms)
    return [
        ("none (newest 100)", None),
        ("`trace.status = 'ERROR'`", "trace.status = 'ERROR'"),
        ("`tags.group = '7'`", "tags.group = '7'"),
        ("`timestamp_ms` range, ~1% of traces",
         f"timestamp_ms >= {mid} AND timestamp_ms < {mid + traces // 100}"),
        ("`span.name = 'step-3'`", "span.name = 'step-3'"),
        # MLflow matches span attributes with LIKE patterns over the span's JSON text (its `=`
        # matches nothing), so the form that finds spans is LIKE.
        ("`span.attributes.tier LIKE '%m3%'`", "span.attributes.tier LIKE '%m3%'"),
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wasmflow", default=os.environ.get("WASMFLOW_BIN") or str(REPO / "target/release/wasmflow"))
    ap.add_argument("--traces", type=int, default=200, help="client traces per client process")
    ap.add_argument("--client-procs", type=int, default=4)
    ap.add_argument("--otlp-traces", type=int, default=100_000)
    ap.add_argument("--mlflow-otlp-traces", type=int, default=5_000,
                    help="traces sent to mlflow server over OTLP (it ingests far slower)")
    ap.add_argument("--otlp-procs", type=int, default=4)
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--skip-mlflow", action="store_true")
    ap.add_argument("--skip-wasmflow", action="store_true")
    ap.add_argument("--otlp-only", action="store_true",
                    help="OTLP ingest alone, with the server's CPU and writes a span")
    args = ap.parse_args()

    kinds = [k for k in ["wasmflow", "mlflow"] if not getattr(args, f"skip_{k}")]
    results = {}
    forms = []
    for kind in kinds:
        store = Path(tempfile.mkdtemp(prefix=f"bench-traces-{kind}-"))
        proc, url = start(kind, args, store)
        try:
            r = {}
            traces = args.otlp_traces if kind == "wasmflow" else args.mlflow_otlp_traces
            exp = create_experiment(url, "otlp")
            t0_ns = time.time_ns()
            before = server_counters(proc.pid)
            r["otlp"] = otlp_ingest(url, exp, traces, args.otlp_procs, t0_ns)
            print(f"{kind}: OTLP {r['otlp']:,.0f} spans/s (load average {os.getloadavg()[0]:.1f})",
                  file=sys.stderr)
            if args.otlp_only:
                if kind == "mlflow":
                    continue  # its uvicorn workers are other processes
                after, spans = server_counters(proc.pid), traces * 10
                tick_us = 1e6 / os.sysconf("SC_CLK_TCK")
                cpu = {k: (v - before[0].get(k, 0)) * tick_us / spans for k, v in after[0].items()}
                print(f"{kind}: server CPU a span {sum(cpu.values()):.1f} us ("
                      + ", ".join(f"{k} {v:.1f}" for k, v in sorted(cpu.items()) if v >= 0.05)
                      + f"); written {(after[1]['wchar'] - before[1]['wchar']) / spans:,.0f} B"
                      f" in {(after[1]['syscw'] - before[1]['syscw']) / spans:.2f} calls a span",
                      file=sys.stderr)
                continue
            r["client"] = client_ingest(url, args.traces, args.client_procs)
            print(f"{kind}: client {r['client']:,.1f} traces/s", file=sys.stderr)
            r["stored"] = traces
            forms = searches(t0_ns // 1_000_000, traces)
            for label, f in forms:
                r[label] = search_latency(url, exp, f, args.reps)
                print(f"{kind}: {label}: {r[label]}", file=sys.stderr)
            r["get"] = get_trace_latency(url, exp, args.reps)
            print(f"{kind}: get trace: {r['get']}", file=sys.stderr)
            results[kind] = r
        finally:
            stop(proc)
            # 100,000 traces take about a gigabyte.
            shutil.rmtree(store, ignore_errors=True)
    if args.otlp_only:
        return 0

    def cell(kind, key, fmt):
        return fmt(results[kind][key]) if kind in results else "—"

    rate = lambda v: f"{v:,.0f}/s"
    lat = lambda v: f"{v[0]:.1f} ms (p95 {v[1]:.1f}, {v[2]} found)"
    rows = [
        (f"client ingest, traces of 10 spans ({args.client_procs} processes)", "client", rate),
        (f"OTLP/HTTP protobuf ingest, spans ({args.otlp_procs} processes, 100 a request)", "otlp", rate),
    ] + [(f"search_traces, 100 a page, {label}", label, lat) for label, _ in forms] + [
        ("batchGet, one trace with its spans", "get",
         lambda v: f"{v[0]:.1f} ms (p95 {v[1]:.1f}, {v[2]} spans)"),
    ]
    stored = " / ".join(f"{k}: {v['stored']:,} traces" for k, v in results.items())
    print(f"\n| ({stored} searched) | wasmflow | mlflow server |\n|---|---|---|")
    for label, key, fmt in rows:
        print(f"| {label} | {cell('wasmflow', key, fmt)} | {cell('mlflow', key, fmt)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
