#!/usr/bin/env python3
"""The serving benchmark (issue 5): `wasmflow models serve` against `mlflow models serve` on the
very same MLflow model directory, in the same run; prints a markdown table and writes it to
<out>/report.md.  scripts/bench_serving.sh builds the binary, installs wrk and the venv, then
runs this file with the venv's python:

    python scripts/bench_serving.py --wasmflow BIN --out DIR [--seconds 10] [--starts 5]
                                    [--mlflow-workers 1,2] [--wasmflow-workers default]
                                    [--profile-seconds 8]

Measured for each server: requests/s and p50/p99 latency of POST /invocations with a 1-row and a
1,000-row `dataframe_split` payload, with 1 and 8 connections (wrk, a C load generator, posting a
body that a Lua script reads from a file); start-to-/ping-200 time (median of N starts; the
wasmflow compile cache is warmed by one start first); a cold start (wasmflow with an empty compile
cache, mlflow's first start of the run) to listening, /ping 200 and the first prediction, and
`wasmflow server`'s spawn to /health 200 with an empty cache; VmRSS of the server's process tree after the
load; and CPU seconds per request of the server tree and of wrk, to show who is the bottleneck.
Then, if perf is installed, `perf record -g` of wasmflow under the 1,000-row, 8-connection load:
its samples by category (guest code, parsing, answer writing, allocation, kernel) and top symbols.
Both servers must answer the same predictions (within 1e-5) before anything is measured.
Every server runs in its own process group; the groups are listed in <out>/pgids so that the
shell wrapper's trap can kill them even if this script is killed.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench_proc import free_port, stop

N_FEATURES = 20
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def log(msg: str) -> None:
    print(f"[bench-serving {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# ------------------------------------------------------------------------------------------------
# The model and the payloads


def make_model(model_dir: Path) -> tuple[np.ndarray, object]:
    """Trains a small MLP on a synthetic 20-feature regression, converts it with skl2onnx and saves
    it with mlflow.onnx.save_model (column signature f0..f19 float32 -> float32 tensor)."""
    import mlflow.onnx
    import pandas as pd
    import skl2onnx
    from mlflow.models import infer_signature
    from sklearn.datasets import make_regression
    from sklearn.neural_network import MLPRegressor

    x, y = make_regression(n_samples=2000, n_features=N_FEATURES, noise=0.1, random_state=0)
    x = x.astype(np.float32)
    y = ((y - y.mean()) / y.std()).astype(np.float32)  # predictions of order 1, so 1e-5 is tight
    estimator = MLPRegressor(hidden_layer_sizes=(64, 32), max_iter=300, random_state=0).fit(x, y)
    onx = skl2onnx.to_onnx(estimator, x[:1])
    frame = pd.DataFrame(x[:5], columns=[f"f{i}" for i in range(N_FEATURES)])
    if model_dir.exists():
        shutil.rmtree(model_dir)
    mlflow.onnx.save_model(onx, str(model_dir), signature=infer_signature(frame, estimator.predict(x[:5]).astype(np.float32)))
    return x, onx


def payload(rows: np.ndarray) -> bytes:
    """A dataframe_split body; values rounded to 6 decimals, as a client would print them."""
    data = np.round(rows.astype(np.float64), 6).tolist()
    body = {"dataframe_split": {"columns": [f"f{i}" for i in range(N_FEATURES)], "data": data}}
    return json.dumps(body).encode()


def flat_predictions(answer: dict) -> np.ndarray:
    """The numbers in {"predictions": ...}, whatever the shape (a list, nested lists or records)."""
    preds = answer["predictions"]
    if isinstance(preds, list) and preds and isinstance(preds[0], dict):
        preds = [list(r.values()) for r in preds]
    return np.asarray(preds, dtype=np.float64).reshape(-1)


# ------------------------------------------------------------------------------------------------
# Servers


def http_request(port: int, method: str, path: str, body: bytes | None = None, timeout: float = 120):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def process_tree(root: int) -> list[int]:
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        try:
            for task in os.listdir(f"/proc/{pid}/task"):
                todo += [int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
        except OSError:
            pass
    return pids


def tree_rss_kib(root: int) -> int:
    total = 0
    for pid in process_tree(root):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def tree_cpu_seconds(root: int) -> float:
    ticks = 0
    for pid in process_tree(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError):
            pass
    return ticks / CLK_TCK


@dataclass
class Variant:
    label: str
    command: list[str]  # with {port} placeholders
    env: dict[str, str]
    workers_note: str
    wasmflow: bool


@dataclass
class Server:
    variant: Variant
    out: Path
    pgid_file: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    log_path: Path | None = None

    def start(self, timeout: float = 300.0) -> float:
        """Spawns the server; returns seconds from spawn to the first /ping 200."""
        cmd = [c.replace("{port}", str(self.port)) for c in self.variant.command]
        self.log_path = self.out / f"{self.variant.label.replace(' ', '_')}-{self.port}.log"
        logf = open(self.log_path, "ab")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=self.variant.env, start_new_session=True)
        logf.close()
        with open(self.pgid_file, "a") as f:
            f.write(f"{self.proc.pid}\n")
        while True:
            elapsed = time.perf_counter() - t0
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.variant.label} exited with {self.proc.returncode}; see {logf.name}")
            if elapsed > timeout:
                self.stop()
                raise RuntimeError(f"{self.variant.label}: /ping not 200 within {timeout}s; see {logf.name}")
            try:
                if http_request(self.port, "GET", "/ping", timeout=2)[0] == 200:
                    return time.perf_counter() - t0
            except OSError:
                pass
            time.sleep(0.002)

    def invoke(self, body: bytes) -> dict:
        status, text = http_request(self.port, "POST", "/invocations", body)
        if status != 200:
            raise RuntimeError(f"{self.variant.label}: POST /invocations: HTTP {status}: {text[:300]!r}")
        return json.loads(text)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            stop(self.proc)


# ------------------------------------------------------------------------------------------------
# wrk

LUA = """-- POSTs the body read from {path}
local f = assert(io.open("{path}", "rb"))
wrk.body = f:read("*a")
f:close()
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
"""


def parse_duration_ms(value: str) -> float:
    for suffix, factor in (("us", 1e-3), ("ms", 1.0), ("m", 60e3), ("s", 1e3)):
        if value.endswith(suffix):
            return float(value[: -len(suffix)]) * factor
    raise ValueError(f"cannot read wrk duration '{value}'")


@dataclass
class Load:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    server_cpu_ms: float  # CPU of the server's process tree per request
    wrk_cpu_ms: float  # CPU of wrk per request


def run_wrk(server: Server, lua: Path, connections: int, seconds: int) -> Load:
    threads = min(2, connections)
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "60s", "--latency",
           "-s", str(lua), f"http://127.0.0.1:{server.port}/invocations"]
    before_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    before_server = tree_cpu_seconds(server.proc.pid)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=seconds + 120).stdout
    server_cpu = tree_cpu_seconds(server.proc.pid) - before_server
    after_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk_cpu = (after_children.ru_utime + after_children.ru_stime) - (before_children.ru_utime + before_children.ru_stime)
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk saw failed requests against {server.variant.label}:\n{out}")
    lines = [l.strip() for l in out.splitlines()]
    rps = float(next(l for l in lines if l.startswith("Requests/sec:")).split()[1])
    done = int(next(l for l in lines if "requests in" in l).split()[0])
    pct = {l.split()[0]: parse_duration_ms(l.split()[1]) for l in lines if l[:3] in ("50%", "99%")}
    if done == 0:
        raise RuntimeError(f"wrk completed no request against {server.variant.label}:\n{out}")
    return Load(rps, pct["50%"], pct["99%"], done, server_cpu / done * 1e3, wrk_cpu / done * 1e3)


# ------------------------------------------------------------------------------------------------
# The 1,000-row CPU profile (perf)

# Where a sample's symbol goes, first match wins (perf's symbol text, as `--sort sym` prints it).
PROFILE_CATEGORIES = [
    ("guest code (the ONNX plugin: tract, in Wasm)", re.compile(r"wasm\[\d+\]::")),
    ("wasmtime's host side", re.compile(r"wasmtime|cranelift")),
    ("request parsing and casting (scoring)", re.compile(
        r"serde_json|lexical|scoring::(numeric|stream|cells|split_frame|rows_to|records_frame|cast|infer|frame_to|enforce|tensor|interleave|parse)|pyjson::rewrite|memchr")),
    ("answer writing", re.compile(r"ryu|pyjson|predictions|itoa")),
    ("allocation, copies, page faults", re.compile(
        r"malloc|free|realloc|memmove|memset|memcpy|unlink_chunk|_int_|grow_one|drop_in_place|RawVec|clear_page|page_fault")),
    ("kernel (network, scheduler)", re.compile(r"\[k\]")),
]


@dataclass
class Profile:
    samples: str  # as perf counts them ("8K")
    categories: list[tuple[str, float]]  # (category, % of the server's samples)
    top: list[tuple[float, str]]  # (%, symbol)


def profile_load(server: Server, lua: Path, out: Path, seconds: int) -> Profile | None:
    """perf record -g of the server while wrk posts the 1,000-row body with 8 connections."""
    if shutil.which("perf") is None:
        log("perf not found: no CPU profile")
        return None
    data = out / "perf-1000-rows.data"
    wrk = subprocess.Popen(["wrk", "-t2", "-c8", f"-d{seconds + 2}s", "-s", str(lua), f"http://127.0.0.1:{server.port}/invocations"],
                           stdout=subprocess.DEVNULL)
    try:
        time.sleep(1)
        subprocess.run(["perf", "record", "-F", "999", "-g", "-p", str(server.proc.pid), "-o", str(data), "--", "sleep", str(seconds)],
                       check=True, capture_output=True, timeout=seconds + 60)
    except (subprocess.SubprocessError, OSError) as e:
        log(f"perf record failed ({e}): no CPU profile")
        return None
    finally:
        wrk.wait()
    text = subprocess.run(["perf", "report", "-i", str(data), "--no-children", "--sort", "sym", "--stdio", "-g", "none"],
                          check=True, capture_output=True, text=True).stdout
    samples = re.search(r"^# Samples: (\S+)", text, re.M)
    lines = [(float(m[1]), m[2].strip()) for m in re.finditer(r"^\s+([\d.]+)%\s+(.*)$", text, re.M)]
    sums: dict[str, float] = {}
    for pct, sym in lines:
        name = next((c for c, pattern in PROFILE_CATEGORIES if pattern.search(sym)), "other (tokio, hyper, axum, ...)")
        sums[name] = sums.get(name, 0.0) + pct
    top = [(pct, re.sub(r"^\[[.k]\]\s+", "", sym)[:110]) for pct, sym in lines[:8]]
    return Profile(samples[1] if samples else "?", sorted(sums.items(), key=lambda kv: -kv[1]), top)


# ------------------------------------------------------------------------------------------------
# The benchmark


@dataclass
class Result:
    variant: Variant
    starts: list[float] = field(default_factory=list)
    loads: dict[tuple[str, int], Load] = field(default_factory=dict)
    rss_kib: int = 0
    load_avg: str = ""
    # wasmflow's own account of each start: ms to listening, ms loading the model.
    phases: list[tuple[int, int]] = field(default_factory=list)
    # A first start (empty compile cache for wasmflow): seconds to listening, /ping 200, prediction.
    cold: dict[str, float] = field(default_factory=dict)
    profile: Profile | None = None


LISTENING = re.compile(r"listening on \S+ \((\d+) ms after start\)")
LOADED = re.compile(r"model loaded .* in (\d+) ms; ready")


def start_phases(log_path: Path) -> tuple[int, int] | None:
    text = log_path.read_text(errors="replace")
    listening, loaded = LISTENING.search(text), LOADED.search(text)
    return (int(listening[1]), int(loaded[1])) if listening and loaded else None


CASES = [("1 row", 1), ("1 row", 8), ("1,000 rows", 1), ("1,000 rows", 8)]


def poll(port: int, method: str, path: str, t0: float, until, body: bytes | None = None, timeout: float = 600) -> float:
    """Seconds from t0 to the first answer of `method path` for which `until(status)` holds."""
    while time.perf_counter() - t0 < timeout:
        try:
            if until(http_request(port, method, path, body, timeout=timeout)[0]):
                return time.perf_counter() - t0
        except OSError:
            pass
        time.sleep(0.002)
    raise RuntimeError(f"{method} {path} on port {port}: no answer within {timeout}s")


def cold_start(variant: Variant, out: Path, pgids: Path, body: bytes) -> dict[str, float]:
    """A first start: for wasmflow an empty compile cache (so the ONNX plugin compiles on the
    way to the first prediction); for mlflow its first start of this run. Seconds from spawn to
    the first HTTP answer of any status (listening), to /ping 200 (model loaded) and to the
    answer of the first prediction."""
    if variant.wasmflow:
        # Emptied here and filled by this start: the later starts of the run are warm ones.
        shutil.rmtree(variant.env["WASMFLOW_PLUGIN_CACHE_DIR"], ignore_errors=True)
    s = Server(variant, out, pgids)
    cmd = [c.replace("{port}", str(s.port)) for c in variant.command]
    s.log_path = out / f"cold-{variant.label.replace(' ', '_')}-{s.port}.log"
    t0 = time.perf_counter()
    with open(s.log_path, "ab") as logf:
        s.proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  env=variant.env, start_new_session=True)
    with open(pgids, "a") as f:
        f.write(f"{s.proc.pid}\n")
    try:
        times = {"listening": poll(s.port, "GET", "/health", t0, lambda status: True)}
        times["ping"] = poll(s.port, "GET", "/ping", t0, lambda status: status == 200)
        times["prediction"] = poll(s.port, "POST", "/invocations", t0, lambda status: status == 200, body)
    finally:
        s.stop()
    return times


def server_cold_health(binary: str, out: Path, pgids: Path, env: dict[str, str]) -> float:
    """`wasmflow server` from an empty working directory with an empty compile cache: seconds
    from spawn to the first /health 200."""
    work = out / "server-cold"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    port = free_port()
    cmd = [binary, "server", "--host", "127.0.0.1", "--port", str(port),
           "--plugin-cache-dir", str(work / "plugin-cache")]
    t0 = time.perf_counter()
    with open(out / "server-cold.log", "ab") as logf:
        proc = subprocess.Popen(cmd, cwd=work, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, start_new_session=True)
    with open(pgids, "a") as f:
        f.write(f"{proc.pid}\n")
    try:
        return poll(port, "GET", "/health", t0, lambda status: status == 200, timeout=60)
    finally:
        stop(proc)


def measure(variant: Variant, out: Path, pgids: Path, bodies: dict[str, tuple[Path, Path]], seconds: int, starts: int,
            profile_seconds: int = 0) -> Result:
    res = Result(variant)
    for i in range(starts):
        s = Server(variant, out, pgids)
        try:
            res.starts.append(s.start())
        finally:
            s.stop()
        if variant.wasmflow and (phases := start_phases(s.log_path)):
            res.phases.append(phases)
        log(f"{variant.label}: start {i + 1}/{starts}: {res.starts[-1] * 1e3:.0f} ms to /ping 200")
    s = Server(variant, out, pgids)
    try:
        s.start()
        run_wrk(s, bodies["1,000 rows"][1], 8, 2)  # warm-up: lazy imports, allocator, pools
        for kind, conns in CASES:
            res.loads[(kind, conns)] = load = run_wrk(s, bodies[kind][1], conns, seconds)
            log(f"{variant.label}: {kind}, {conns} conn: {load.rps:.1f} req/s, p50 {load.p50_ms:.2f} ms, "
                f"p99 {load.p99_ms:.2f} ms; CPU/request server {load.server_cpu_ms:.3f} ms, wrk {load.wrk_cpu_ms:.3f} ms; "
                f"load average {load_average()}")
        res.rss_kib = tree_rss_kib(s.proc.pid)
        res.load_avg = load_average()
        if variant.wasmflow and profile_seconds > 0:
            res.profile = profile_load(s, bodies["1,000 rows"][1], out, profile_seconds)
    finally:
        s.stop()
    return res


def idle_rss(variant: Variant, out: Path, pgids: Path) -> tuple[int, int]:
    """wasmflow's VmRSS (KiB) idle with its model loaded: after a start on an empty compile cache
    (so it compiled), then after a second start on the cache that start filled."""
    cache = out / "rss-plugin-cache"
    shutil.rmtree(cache, ignore_errors=True)
    v = Variant(variant.label, variant.command, {**variant.env, "WASMFLOW_PLUGIN_CACHE_DIR": str(cache)},
                variant.workers_note, True)
    kib = []
    for _ in range(2):
        s = Server(v, out, pgids)
        try:
            s.start()
            time.sleep(3)  # idle: nothing compiles or loads any more
            kib.append(tree_rss_kib(s.proc.pid))
        finally:
            s.stop()
    shutil.rmtree(cache, ignore_errors=True)
    return kib[0], kib[1]


def rss_breakdown_kib(pid: int) -> dict[str, int]:
    """VmRSS, RssAnon and RssFile (KiB) of one process."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile"):
            found[key] = int(value.split()[0])
    return found


def idle_release(variant: Variant, out: Path, pgids: Path, bodies: dict[str, tuple[Path, Path]]) -> dict | None:
    """wasmflow with `--idle-release 2` on the warm compile cache: its RSS once it has given its code
    pages back (5 s after /ping 200, and again after a 1-row and a 1,000-row request), and the latency of
    the first request after a release against the next one. None when the binary has no such flag."""
    help_text = subprocess.run([variant.command[0], "models", "serve", "--help"], capture_output=True, text=True).stdout
    if "--idle-release" not in help_text:
        return None
    v = Variant(variant.label, [*variant.command, "--idle-release", "2"], variant.env, variant.workers_note, True)
    s = Server(v, out, pgids)
    found: dict = {}
    try:
        s.start()
        time.sleep(3)
        for kind in ("1 row", "1,000 rows"):
            time.sleep(5)  # > 2 s with no request: released
            found.setdefault("released", []).append(rss_breakdown_kib(s.proc.pid))
            body = bodies[kind][0].read_bytes()
            times = []
            for _ in range(3):  # the first after the release, then two more
                t0 = time.perf_counter()
                s.invoke(body)
                times.append(time.perf_counter() - t0)
            found[kind] = times
            found.setdefault("after", []).append(rss_breakdown_kib(s.proc.pid))
    finally:
        s.stop()
    return found


def fmt_rate(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:,.1f}"


def fmt_ms(v: float) -> str:
    return f"{v:.2f}" if v < 10 else f"{v:.0f}" if v >= 100 else f"{v:.1f}"


def report(results: list[Result], meta: list[str]) -> str:
    wf = next(r for r in results if r.variant.wasmflow)
    others = [r for r in results if r is not wf]
    head = ["measure", f"{wf.variant.label}"] + [r.variant.label for r in others] + [f"ratio vs {r.variant.label}" for r in others]
    rows: list[list[str]] = []
    for kind, conns in CASES:
        w = wf.loads[(kind, conns)]
        rows.append([f"req/s, {kind}, {conns} conn", fmt_rate(w.rps)] + [fmt_rate(r.loads[(kind, conns)].rps) for r in others]
                    + [f"**{w.rps / r.loads[(kind, conns)].rps:,.1f}×**" for r in others])
        rows.append([f"p50 / p99 ms, {kind}, {conns} conn", f"{fmt_ms(w.p50_ms)} / {fmt_ms(w.p99_ms)}"]
                    + [f"{fmt_ms(r.loads[(kind, conns)].p50_ms)} / {fmt_ms(r.loads[(kind, conns)].p99_ms)}" for r in others]
                    + [f"{r.loads[(kind, conns)].p50_ms / w.p50_ms:,.1f}× lower p50" for r in others])
    ws = statistics.median(wf.starts)
    rows.append([f"start to /ping 200, median of {len(wf.starts)} (s)", f"{ws:.3f}"]
                + [f"{statistics.median(r.starts):.2f}" for r in others]
                + [f"{statistics.median(r.starts) / ws:,.0f}× faster" for r in others])
    rows.append(["RSS after the load, process tree (MiB)", f"{wf.rss_kib / 1024:.0f}"]
                + [f"{r.rss_kib / 1024:.0f}" for r in others]
                + [f"{r.rss_kib / wf.rss_kib:,.1f}× less" for r in others])
    if wf.cold:
        for key, what in (("listening", "first HTTP answer"), ("ping", "/ping 200"), ("prediction", "first prediction")):
            rows.append([f"cold start to {what} (s)", f"{wf.cold[key]:.3f}"] + [f"{r.cold[key]:.2f}" for r in others]
                        + [f"{r.cold[key] / wf.cold[key]:,.1f}× sooner" if r.cold[key] >= wf.cold[key]
                           else f"{wf.cold[key] / r.cold[key]:,.1f}× later" for r in others])
    # CPU per request is the figure least distorted by other work on a shared machine.
    for kind, conns in CASES:
        w = wf.loads[(kind, conns)]
        rows.append([f"server CPU ms per request (wrk's), {kind}, {conns} conn", f"{w.server_cpu_ms:.3f} ({w.wrk_cpu_ms:.3f})"]
                    + [f"{r.loads[(kind, conns)].server_cpu_ms:.2f} ({r.loads[(kind, conns)].wrk_cpu_ms:.3f})" for r in others]
                    + [f"{r.loads[(kind, conns)].server_cpu_ms / w.server_cpu_ms:,.1f}× less CPU" for r in others])
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    starts = "; ".join(f"{r.variant.label}: " + ", ".join(f"{t:.3f}" for t in r.starts) for r in results)
    workers = "; ".join(f"{r.variant.label}: {r.variant.workers_note}" for r in results)
    loads = "; ".join(f"{r.variant.label}: {r.load_avg}" for r in results)
    phases = ""
    if wf.phases:
        phases = (f"- wasmflow's own log of its starts (median): listening {statistics.median(p[0] for p in wf.phases):.0f} ms "
                  f"after start (plugin manager opened), model loaded {statistics.median(p[1] for p in wf.phases):.0f} ms later")
    profile: list[str] = []
    if wf.profile:
        p = wf.profile
        profile = ["", f"## Where {wf.variant.label}'s CPU goes at 1,000 rows, 8 connections (perf, {p.samples} samples)", "",
                   "| share of the server's samples | |", "|---:|---|"]
        profile += [f"| {pct:.1f}% | {name} |" for name, pct in p.categories]
        profile += ["", "Top symbols:", ""] + [f"- {pct:.1f}% `{sym}`" for pct, sym in p.top]
    return "\n".join(["# Serving benchmark", "", *meta, f"- workers: {workers}",
                      f"- all start times (s): {starts}", *([phases] if phases else []), f"- load average (1/5/15 min) after each server's load: {loads}",
                      "", *lines, *profile, ""])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wasmflow", required=True, help="the wasmflow binary (a copy, not the build output)")
    ap.add_argument("--out", required=True, type=Path, help="work directory (model, caches, logs, report.md)")
    ap.add_argument("--seconds", type=int, default=10, help="seconds of load per case")
    ap.add_argument("--starts", type=int, default=5, help="timed starts per server")
    ap.add_argument("--mlflow-workers", default="1,2", help="comma-separated -w values for mlflow (1 is its default)")
    ap.add_argument("--wasmflow-workers", default="default", help="comma-separated --workers values; 'default' = one per core")
    ap.add_argument("--profile-seconds", type=int, default=8,
                    help="seconds of `perf record -g` on wasmflow under the 1,000-row, 8-connection load (0: none)")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("error: wrk is not on PATH (scripts/bench_serving.sh installs it)")
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    for old_log in out.glob("*.log"):  # the servers' logs of this run only
        old_log.unlink()
    pgids = out / "pgids"
    pgids.write_text("")
    # SIGTERM/SIGINT unwind through the finally blocks, which stop the servers.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    load_at_start = load_average()
    model_dir = out / "model"
    log(f"training the model and saving it to {model_dir}")
    x, onx = make_model(model_dir)
    bodies = {}
    for kind, n in (("1 row", 1), ("1,000 rows", 1000)):
        body = payload(x[:n])
        path = out / f"payload-{n}.json"
        path.write_bytes(body)
        lua = out / f"post-{n}.lua"
        lua.write_text(LUA.replace("{path}", str(path)))
        bodies[kind] = (path, lua)

    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "WASMFLOW_"))}
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"  # mlflow runs `uvicorn` from PATH
    variants: list[Variant] = []
    for w in [w.strip() for w in args.wasmflow_workers.split(",") if w.strip()]:
        extra = [] if w == "default" else ["--workers", w]
        variants.append(Variant(
            "wasmflow" if w == "default" else f"wasmflow --workers {w}",
            [args.wasmflow, "models", "serve", "-m", str(model_dir), "--host", "127.0.0.1", "-p", "{port}",
             "--plugins-dir", str(out / "plugins"), *extra],
            {**env, "WASMFLOW_PLUGIN_CACHE_DIR": str(out / "plugin-cache"), "RUST_LOG": "info"},
            f"{os.cpu_count()} instances (one per core)" if w == "default" else f"{w} instances", True))
    for w in [w.strip() for w in args.mlflow_workers.split(",") if w.strip()]:
        variants.append(Variant(
            f"mlflow -w {w}",
            [str(Path(sys.executable).parent / "mlflow"), "models", "serve", "-m", str(model_dir), "--env-manager", "local",
             "-h", "127.0.0.1", "-p", "{port}", "-w", w],
            env, f"{w} uvicorn worker process(es)" + (" (mlflow's default)" if w == "1" else ""), False))
    if not any(v.wasmflow for v in variants) or len(variants) < 2:
        sys.exit("error: need one wasmflow variant and at least one mlflow variant")
    variants.sort(key=lambda v: not v.wasmflow)
    if sum(v.wasmflow for v in variants) > 1:
        sys.exit("error: one wasmflow variant per run (the ratios are against it)")

    # Cold starts before anything else has started the servers in this run.
    colds = {}
    for v in variants:
        colds[v.label] = cold_start(v, out, pgids, bodies["1 row"][0].read_bytes())
        log(f"{v.label}: cold start: " + ", ".join(f"{k} {t:.3f} s" for k, t in colds[v.label].items()))
    server_health = server_cold_health(args.wasmflow, out, pgids, env)
    log(f"wasmflow server, empty compile cache and working directory: /health 200 in {server_health * 1e3:.0f} ms")

    # Correctness first: every server answers what onnxruntime answers, on both payloads.
    import onnxruntime

    sess = onnxruntime.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    want = {kind: sess.run(None, {sess.get_inputs()[0].name: np.round(x[:n].astype(np.float64), 6).astype(np.float32)})[0].reshape(-1)
            for kind, n in (("1 row", 1), ("1,000 rows", 1000))}
    shapes: dict[str, dict[str, str]] = {}
    answers: dict[str, dict[str, np.ndarray]] = {}
    for v in variants:
        s = Server(v, out, pgids)
        try:
            t = s.start()
            log(f"{v.label}: first start of the correctness check: {t:.2f} s")
            for kind, (body, _) in bodies.items():
                answer = s.invoke(body.read_bytes())
                got = flat_predictions(answer)
                if got.shape != want[kind].shape or not np.allclose(got, want[kind], rtol=0, atol=1e-5):
                    diff = np.max(np.abs(got - want[kind])) if got.shape == want[kind].shape else f"shape {got.shape}"
                    raise RuntimeError(f"{v.label}: {kind}: predictions differ from onnxruntime's (max |diff| {diff})")
                answers.setdefault(kind, {})[v.label] = got
                shapes.setdefault(kind, {})[v.label] = json.dumps(answer["predictions"][:2])[:80]
        finally:
            s.stop()
    for kind, by_label in answers.items():
        first, *rest = by_label.values()
        worst = max(float(np.max(np.abs(first - r))) for r in rest)
        if worst > 1e-5:
            raise RuntimeError(f"{kind}: the servers' predictions differ by {worst}")
        log(f"{kind}: predictions agree (max |diff| between servers {worst:.2e}, each within 1e-5 of onnxruntime)")
    shape_notes = []
    for kind, by_label in shapes.items():
        if len(set(by_label.values())) > 1:
            log(f"note: response shapes differ for {kind}: {by_label}")
            shape_notes.append(f"- the response shapes differ ({kind}; the first predictions): "
                               + "; ".join(f"{label} `{text}`" for label, text in by_label.items()))

    results = [measure(v, out, pgids, bodies, args.seconds, args.starts, args.profile_seconds) for v in variants]
    compiled_kib, warm_kib = idle_rss(variants[0], out, pgids)
    log(f"wasmflow idle RSS: {compiled_kib / 1024:.1f} MiB after compiling, {warm_kib / 1024:.1f} MiB from a warm cache")
    released = idle_release(variants[0], out, pgids, bodies)
    release_notes = []
    if released:
        mib = lambda d: f"{d['VmRSS'] / 1024:.1f} MiB (anonymous {d['RssAnon'] / 1024:.1f}, file {d['RssFile'] / 1024:.1f})"
        for i, kind in enumerate(("1 row", "1,000 rows")):
            t = released[kind]
            note = (f"- wasmflow `--idle-release 2`, warm cache: idle after the release {mib(released['released'][i])}; "
                    f"a {kind} request right after it {t[0] * 1e3:.2f} ms, the next two {t[1] * 1e3:.2f} / {t[2] * 1e3:.2f} ms "
                    f"(client-side, one connection each); then {mib(released['after'][i])}")
            log(note[2:])
            release_notes.append(note)
    for r in results:
        r.cold = colds[r.variant.label]

    meta = [
        f"- {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.cpu_count()} cores "
        f"({platform_cpu()}); load average (1/5/15 min) at the start {load_at_start}, at the end {load_average()}",
        f"- model: scikit-learn MLPRegressor (20 -> 64 -> 32 -> 1) via skl2onnx, saved by mlflow.onnx.save_model with a "
        f"column signature; both servers serve {model_dir}",
        f"- load: wrk (1 thread for 1 connection, 2 threads for 8), {args.seconds} s per case after a 2 s warm-up, "
        f"POST /invocations with a dataframe_split body of 1 row ({bodies_size(out, 1)}) or 1,000 rows ({bodies_size(out, 1000)}); "
        "no non-2xx or socket errors",
        "- start: spawn to the first GET /ping 200 (polled every 2 ms); wasmflow's compile cache warm",
        "- cold start: the first start of the run, wasmflow with an empty compile cache (the ONNX plugin compiles while "
        "it already listens); spawn to the first answer of GET /health (any status), to /ping 200, to the first "
        "1-row prediction",
        f"- `wasmflow server` from an empty working directory with an empty compile cache: spawn to /health 200 in "
        f"{server_health * 1e3:.0f} ms",
        "- CPU per request: user+system time of the server's process tree and of wrk over the case, divided by requests",
        "- predictions: each server within 1e-5 of onnxruntime (and of each other) on both payloads before the load",
        f"- wasmflow idle RSS (VmRSS 3 s after /ping 200, model loaded, no load yet): {compiled_kib / 1024:.1f} MiB after "
        f"a start on an empty compile cache (it compiled), {warm_kib / 1024:.1f} MiB after a start on the warm cache",
        *release_notes,
        *shape_notes,
    ]
    text = report(results, meta)
    (out / "report.md").write_text(text)
    print(text)


def platform_cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def bodies_size(out: Path, n: int) -> str:
    size = (out / f"payload-{n}.json").stat().st_size
    return f"{size} B" if size < 1024 else f"{size / 1024:.0f} KiB"


if __name__ == "__main__":
    main()
