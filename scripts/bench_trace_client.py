#!/usr/bin/env python3
"""Where the official client's trace ingest spends its time, wasmflow vs `mlflow server`.

    python scripts/bench_trace_client.py [--traces 100] [--client-procs 4] [--sync]
        [--null] [--profile N] [--skip-mlflow] [--skip-wasmflow]

`bench_traces.py`'s client ingest (the same traced function: traces of 10 spans made with
`@mlflow.trace` / `start_span`), with the client's settings left as it ships them (async trace
logging and its batch span processor on) unless `--sync` turns async logging off. Each client
process wraps, before importing mlflow, `requests.Session.request` (one call of the client's
REST helper) and urllib3's `HTTPConnectionPool._make_request` (one request on the wire, so
urllib3's own retries show as more wire requests than calls), and records the client's
warnings. The processes warm up (one trace, flushed), then wait together: the server's CPU
(its whole process tree, so uvicorn's workers count for MLflow) and the cores' idle time are
read, the processes are released, and both are read again when the last process has had its
last export answered (bench_traces.py's end of the timed part). Per trace it prints:
  * the rate (traces/s over all processes; also as bench_traces.py timed it before 2026-12-05,
    until `flush_trace_async_logging` returned), the traces the server then holds, the client
    processes' CPU, the server's CPU, the cores' idle time and the rest (other processes:
    the machine is shared);
  * each client thread's CPU (the main thread makes the spans; `BatchSpanProcessor` hands
    them to the exporter; the async queue's workers make the HTTP requests);
  * the requests by method, path and status: count a trace, and their server latency
    (`Response.elapsed`: from the request sent to the answer's headers) median and p95;
  * retries on the wire, connections opened and the client's warnings (which should be none).
`--null` adds a run in which the client's HTTP adapter answers every request itself at once
(what the servers answer: the version, an empty OTLP answer, the trace record back tagged
`mlflow.trace.spansLocation = TRACKING_STORE`): the upper bound the client alone allows.
`--profile N` runs cProfile in every thread of the first client process and prints the N
functions with most CPU, their callees included (cumulative; each thread timed by its own CPU
clock, so waits do not count; the threads merged; a call still running when the profile is
read, such as a worker thread's wait, shows a meaningless time).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from bench_proc import stop
from bench_traces import CLIENT_SCRIPT, create_experiment, start

REPO = Path(__file__).resolve().parents[1]

# Runs before CLIENT_SCRIPT's body (which it execs with its warm-up and timed loop split).
PROBE = r"""
import collections, json, logging, os, sys, threading, time, urllib.parse, warnings
import requests, urllib3.connectionpool

url, exp_name, n, null, profile = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1", int(sys.argv[5])
calls, wire, warned = [], collections.Counter(), collections.Counter()
lock = threading.Lock()

_request = requests.Session.request
def request(self, method, u, *a, **kw):
    r = _request(self, method, u, *a, **kw)
    with lock:
        calls.append((method, urllib.parse.urlsplit(u).path, r.status_code, r.elapsed.total_seconds()))
    return r
requests.Session.request = request

_make_request = urllib3.connectionpool.HTTPConnectionPool._make_request
def make_request(self, conn, method, u, *a, **kw):
    with lock:
        wire[(method, urllib.parse.urlsplit(u).path)] += 1
    return _make_request(self, conn, method, u, *a, **kw)
urllib3.connectionpool.HTTPConnectionPool._make_request = make_request

# Connections opened: a server that closed them would cost the client a connect a request.
_new_conn = urllib3.connectionpool.HTTPConnectionPool._new_conn
def new_conn(self):
    with lock:
        wire[("connect", "")] += 1
    return _new_conn(self)
urllib3.connectionpool.HTTPConnectionPool._new_conn = new_conn

if null:
    # The server's answers, made by the client's own adapter: no socket, no server.
    import requests.adapters
    def send(self, req, *a, **kw):
        path = urllib.parse.urlsplit(req.url).path
        r = requests.Response()
        r.status_code, r.url, r.request = 200, req.url, req
        r.headers["Content-Type"] = "application/json"
        if path.endswith("/version"):
            body = b"3.17.2"
        elif path == "/v1/traces":
            body, r.headers["Content-Type"] = b"", "application/x-protobuf"
        elif path == "/api/3.0/mlflow/traces" and req.method == "POST":
            info = json.loads(req.body)["trace"]["trace_info"]
            info.setdefault("tags", {})["mlflow.trace.spansLocation"] = "TRACKING_STORE"
            body = json.dumps({"trace": {"trace_info": info}}).encode()
        else:
            body = json.dumps(_real(self, req, *a, **kw).json()).encode()
        r._content = body
        import datetime
        r.elapsed = datetime.timedelta(0)
        return r
    _real = requests.adapters.HTTPAdapter.send
    requests.adapters.HTTPAdapter.send = send

class Count(logging.Handler):
    def emit(self, record):
        warned[record.getMessage()[:160]] += 1
logging.getLogger("mlflow").addHandler(Count(level=logging.WARNING))
_showwarning = warnings.showwarning
def showwarning(message, *a, **kw):
    warned[str(message)[:160]] += 1
warnings.showwarning = showwarning

profiles = []
if profile:
    import cProfile
    _run = threading.Thread.run
    def run(self):
        p = cProfile.Profile(time.thread_time)
        profiles.append(p)
        p.enable()
        try:
            _run(self)
        finally:
            p.disable()
    threading.Thread.run = run

# CPU of each thread by name; a thread that ends adds its own at its end (its row in
# /proc/self/task goes with it), counted from the timed part's start if it was running then.
window = {"on": False, "base": {}}
ended = collections.Counter()
def thread_name(name):
    # ThreadPoolExecutor's workers are named <prefix>_<n>: one row for them all.
    return name.rsplit("_", 1)[0] if name[-1:].isdigit() and "_" in name else name
_run0 = threading.Thread.run
def run0(self):
    try:
        _run0(self)
    finally:
        if window["on"]:
            with lock:
                ended[thread_name(self.name)] += time.thread_time() - window["base"].get(self.native_id, 0)
threading.Thread.run = run0

def thread_cpu():
    tick = os.sysconf("SC_CLK_TCK")
    names = {t.native_id: t.name for t in threading.enumerate()}
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            f = open(f"/proc/self/task/{tid}/stat").read()
        except OSError:
            continue
        fields = f[f.rindex(")") + 2:].split()
        out[int(tid)] = (names.get(int(tid), "not Python's"), (int(fields[11]) + int(fields[12])) / tick)
    return out
"""

SYNC = r"""
print("ready", flush=True)
sys.stdin.readline()
cpu0, thr0 = os.times(), thread_cpu()
window["base"] = {tid: cpu for tid, (_, cpu) in thr0.items()}
window["on"] = True
del calls[:]; wire.clear()
main_profile = None
if profile:
    import cProfile
    main_profile = cProfile.Profile(time.thread_time)
    main_profile.enable()
t = time.time()
"""
# At the timed part's end (the last export answered, before the untimed flush): the CPU read
# and the parent told, which reads the server's CPU then.
END = r"""
end = time.time()
if main_profile:
    main_profile.disable()
cpu1, thr1 = os.times(), thread_cpu()
window["on"] = False
threads = collections.Counter(ended)
for tid, (name, cpu) in thr1.items():
    threads[thread_name(name)] += cpu - window["base"].get(tid, 0)
print("done", flush=True)
"""
REPORT = r"""
flushed = time.time()  # when flush_trace_async_logging() returned, bench_traces.py's old end
stats = None
if profile:
    import io, pstats
    for p in profiles:
        p.disable()
    s = pstats.Stats(main_profile)
    for p in profiles:
        try:
            s.add(p)
        except TypeError:
            pass  # a thread that made no call
    buf = io.StringIO()
    s.stream = buf
    s.sort_stats("cumulative").print_stats(profile)
    stats = buf.getvalue()
print(json.dumps({
    "cpu": (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system),
    "threads": threads, "loop": t_loop - t, "flushed": flushed,
    "calls": calls, "wire": [[list(k), v] for k, v in wire.items()],
    "warned": dict(warned), "profile": stats,
}))
"""
# The timed part of CLIENT_SCRIPT, split so that the processes start together.
HEAD, TAIL = CLIENT_SCRIPT.split("t = time.time()\n")
# The time the loop took without the final flush.
TAIL = TAIL.replace("    agent(k)\n", "    agent(k)\nt_loop = time.time()\n")
assert "end = time.time()\n" in TAIL
TAIL = TAIL.replace("end = time.time()\n", END)
# PROBE parses the arguments; CLIENT_SCRIPT's `print(t, end)` is kept (the rate is computed from
# it as in bench_traces.py), REPORT follows it.
SCRIPT = PROBE + HEAD.replace("url, exp_name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])\n", "") \
    + SYNC + TAIL + REPORT


def tree_cpu(pid: int) -> float:
    """CPU seconds of `pid` and every process below it (MLflow's uvicorn workers)."""
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            s = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        fields = s[s.rindex(")") + 2:].split()
        stats[int(d)] = fields
        children.setdefault(int(fields[1]), []).append(int(d))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        if p in stats:
            # utime, stime, and the reaped children's cutime, cstime.
            total += sum(int(x) for x in stats[p][11:15])
        todo += children.get(p, [])
    return total / os.sysconf("SC_CLK_TCK")


def idle_cpu() -> float:
    """Seconds all cores have idled (idle and iowait of /proc/stat's first line)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    return (int(fields[4]) + int(fields[5])) / os.sysconf("SC_CLK_TCK")


def stored_traces(url: str, experiment_id: str) -> int:
    """How many traces the server holds in the experiment (the warm-up's included)."""
    count, token = 0, None
    while True:
        body = {"locations": [{"type": "MLFLOW_EXPERIMENT",
                               "mlflow_experiment": {"experiment_id": experiment_id}}],
                "max_results": 500}
        if token:
            body["page_token"] = token
        r = requests.post(f"{url}/api/3.0/mlflow/traces/search", json=body, timeout=60)
        r.raise_for_status()
        count += len(r.json().get("traces", []))
        token = r.json().get("next_page_token")
        if not token:
            return count


def run_clients(url: str | None, server_pid: int | None, args, null: bool) -> dict:
    exp_name = f"client-{random.getrandbits(32):x}"
    experiment_id = create_experiment(url, exp_name)
    env = {**os.environ}
    if args.sync:
        env["MLFLOW_ENABLE_ASYNC_TRACE_LOGGING"] = "false"
    procs = [subprocess.Popen(
        [sys.executable, "-c", SCRIPT, url, exp_name, str(args.traces), "1" if null else "0",
         str(args.profile if i == 0 else 0)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        for i in range(args.client_procs)]
    for p in procs:
        if p.stdout.readline().strip() != "ready":
            raise SystemExit("a client process failed before its timed part")
    server0, idle0 = tree_cpu(server_pid) if server_pid else 0.0, idle_cpu()
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    for p in procs:
        if p.stdout.readline().strip() != "done":
            raise SystemExit("a client process failed in its timed part")
    server1, idle1 = tree_cpu(server_pid) if server_pid else 0.0, idle_cpu()
    results, spans = [], []
    for p in procs:
        # Not communicate(): it would read past what readline() above already buffered.
        p.stdin.close()
        out = p.stdout.read()
        if p.wait():
            raise SystemExit(f"client process failed with {p.returncode}")
        lines = out.strip().splitlines()
        if len(lines) < 2:
            raise SystemExit(f"a client process printed {out!r}")
        spans.append(tuple(float(x) for x in lines[-2].split()))
        results.append(json.loads(lines[-1]))
    t0, t1 = min(s for s, _ in spans), max(e for _, e in spans)
    n = args.traces * args.client_procs
    threads: dict[str, float] = {}
    for r in results:
        for k, v in r["threads"].items():
            threads[k] = threads.get(k, 0) + v
    calls = [c for r in results for c in r["calls"]]
    wire: dict[tuple, int] = {}
    for r in results:
        for k, v in r["wire"]:
            wire[tuple(k)] = wire.get(tuple(k), 0) + v
    warned: dict[str, int] = {}
    for r in results:
        for k, v in r["warned"].items():
            warned[k] = warned.get(k, 0) + v
    return {
        "rate": n / (t1 - t0), "wall": t1 - t0, "n": n, "procs": len(procs),
        "stored": None if null else stored_traces(url, experiment_id),
        "loop": statistics.mean(r["loop"] for r in results),
        "flush_rate": n / (max(r["flushed"] for r in results) - t0),
        "client_cpu": sum(r["cpu"] for r in results), "server_cpu": server1 - server0,
        "idle": idle1 - idle0, "threads": threads, "calls": calls, "wire": wire,
        "warned": warned, "profile": results[0]["profile"],
    }


def report(kind: str, r: dict, cores: int) -> None:
    n = r["n"]
    ms = lambda s: f"{s * 1000 / n:.1f} ms"
    # What the cores did besides: idled, or ran other processes (the machine is shared).
    other = cores * r["wall"] - r["client_cpu"] - r["server_cpu"] - r["idle"]
    print(f"\n### {kind}: {r['rate']:.1f} traces/s ({n} traces in {r['wall']:.2f} s, of it "
          f"making them {r['loop']:.2f} s and the export's tail the rest; load average "
          f"{os.getloadavg()[0]:.1f})")
    if r["stored"] is not None:
        # Each process's warm-up trace is in the experiment too.
        print(f"stored afterwards: {r['stored'] - r['procs']} of the {n} timed traces")
    print(f"timed until flush_trace_async_logging() returned instead (bench_traces.py before "
          f"2026-12-05): {r['flush_rate']:.1f} traces/s")
    print(f"a trace: wall {ms(r['wall'])} over all processes; client CPU {ms(r['client_cpu'])}, "
          f"server CPU {ms(r['server_cpu'])}, the {cores} cores idle {ms(r['idle'])} and running "
          f"other processes {ms(other)}")
    print("client CPU a trace by thread: " + ", ".join(
        f"{k} {v * 1000 / n:.2f} ms" for k, v in sorted(r["threads"].items(), key=lambda kv: -kv[1])
        if v > 0))
    by: dict[tuple, list[float]] = {}
    for method, path, status, elapsed in r["calls"]:
        if "/traces/tr-" in path:
            path = re.sub(r"/traces/tr-[0-9a-f]+/", "/traces/<trace id>/", path)
        by.setdefault((method, path, status), []).append(elapsed * 1000)
    print("| request | a trace | server latency median | p95 |\n|---|---:|---:|---:|")
    for (method, path, status), lat in sorted(by.items(), key=lambda kv: -len(kv[1])):
        lat.sort()
        print(f"| {method} {path} → {status} | {len(lat) / n:.2f} | {statistics.median(lat):.2f} ms "
              f"| {lat[max(0, int(len(lat) * 0.95) - 1)]:.2f} ms |")
    connects = r["wire"].pop(("connect", ""), 0)
    wire_total = sum(r["wire"].values())
    if not r["null"]:
        print(f"on the wire {wire_total} requests for {len(r['calls'])} calls"
              f" ({wire_total - len(r['calls'])} retries), {connects} connections opened")
    print("client warnings: " + (json.dumps(r["warned"]) if r["warned"] else "none"))
    if r["profile"]:
        print(r["profile"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wasmflow", default=os.environ.get("WASMFLOW_BIN") or str(REPO / "target/release/wasmflow"))
    ap.add_argument("--traces", type=int, default=100, help="traces per client process")
    ap.add_argument("--client-procs", type=int, default=4)
    ap.add_argument("--sync", action="store_true", help="MLFLOW_ENABLE_ASYNC_TRACE_LOGGING=false")
    ap.add_argument("--null", action="store_true", help="also a run against no server")
    ap.add_argument("--profile", type=int, default=0, help="cProfile's top N in the first process")
    ap.add_argument("--skip-mlflow", action="store_true")
    ap.add_argument("--skip-wasmflow", action="store_true")
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    kinds = [k for k in ["wasmflow", "mlflow"] if not getattr(args, f"skip_{k}")]
    if args.null:
        kinds.append("null")
    for kind in kinds:
        store = Path(tempfile.mkdtemp(prefix=f"bench-trace-client-{kind}-"))
        # The null run still needs a server for the warm-up's experiment lookup: wasmflow's.
        proc, url = start("wasmflow" if kind == "null" else kind, args, store)
        try:
            r = run_clients(url, None if kind == "null" else proc.pid, args, kind == "null")
            r["null"] = kind == "null"
            report(kind + (" (no server: the client's adapter answers)" if kind == "null" else ""),
                   r, cores)
        finally:
            stop(proc)
            shutil.rmtree(store, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
