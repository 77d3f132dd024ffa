#!/usr/bin/env python3
"""The tracking benchmark on PostgreSQL + S3, wasmflow and `mlflow server` side by side in one run,
then wasmflow's throughput with one and with two replicas; prints markdown tables.

    python scripts/bench_pg.py --wasmflow BIN [--pg-uri postgresql://SUPERUSER@HOST:PORT/postgres]

Both servers get a fresh database of their own on the same PostgreSQL (created under `--pg-uri`,
default $WASMFLOW_TEST_POSTGRES_URI) and a prefix of their own in one bucket of a moto S3 server
(`moto_server`, started here; MLflow's own S3 tests use it) that they reach through
MLFLOW_S3_ENDPOINT_URL and AWS_*, as MLflow documents for S3-compatible stores. `mlflow server`
runs with its defaults (its uvicorn workers); it needs psycopg2 and boto3 in this Python, which
tests/requirements.txt installs into the e2e venv.

The tracking measures are scripts/bench.py's (wrk on loopback for rates and latencies; Python only
loads data), plus uploading and downloading a 1 MiB artifact through each server's artifact proxy.

Replicas: two `wasmflow server` processes on one database and one bucket; the 8 clients of the
log-metric case are split between them on the client side (two wrk processes of 4 connections,
one per replica; a real deployment puts a load balancer there). The one-replica figure uses the
same two wrk processes, both against one replica. The CPU each process used during the window is
read from /proc (the PostgreSQL cluster's processes too, when --pg-uri is a local superuser's).
Only 127.0.0.1 is touched.
"""

from __future__ import annotations

import argparse
import base64
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import requests

import bench
from bench_proc import free_port, stop, wait_up

CLK_TCK = os.sysconf("SC_CLK_TCK")

# Where the process groups started here are listed, for scripts/bench_common.sh to kill if this
# script dies before stopping them.
PGIDS: Path | None = None


def started(proc: subprocess.Popen) -> subprocess.Popen:
    if PGIDS is not None:
        with open(PGIDS, "a") as f:
            f.write(f"{proc.pid}\n")
    return proc


# ------------------------------------------------------------------------------------------------
# Services


class Moto:
    def __init__(self, work: Path):
        exe = Path(sys.executable).parent / "moto_server"
        if not exe.exists():
            raise SystemExit(f"moto_server is not installed beside {sys.executable} (pip install 'moto[server]')")
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc = started(subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(self.port)],
                                             stdout=open(work / "moto.log", "wb"), stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL, start_new_session=True))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                requests.get(self.endpoint + "/moto-api/", timeout=2)
                break
            except requests.RequestException:
                time.sleep(0.1)
        else:
            raise SystemExit("moto_server did not start")
        self.env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                    "AWS_DEFAULT_REGION": "us-east-1", "MLFLOW_S3_ENDPOINT_URL": self.endpoint}
        import boto3

        self.bucket = f"bench-{uuid.uuid4().hex[:8]}"
        boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                     aws_access_key_id="testing", aws_secret_access_key="testing").create_bucket(Bucket=self.bucket)


def pg_database(base_uri: str, name: str) -> str:
    import psycopg2

    conn = psycopg2.connect(base_uri)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    conn.close()
    return urlunsplit(urlsplit(base_uri)._replace(path=f"/{name}"))


def postmaster_pid(base_uri: str) -> int | None:
    """The cluster's postmaster, when it runs on this machine and the uri is a superuser's."""
    import psycopg2

    try:
        conn = psycopg2.connect(base_uri)
        with conn.cursor() as cur:
            cur.execute("SHOW data_directory")
            data = cur.fetchone()[0]
        conn.close()
        return int(Path(data, "postmaster.pid").read_text().split()[0])
    except Exception:  # noqa: BLE001 — CPU of PostgreSQL is then not reported
        return None


def start(kind: str, binary: str, db_uri: str, artifacts: str, env: dict, work: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    if kind == "wasmflow":
        cmd = [binary, "server"]
    else:
        cmd = [sys.executable, "-m", "mlflow", "server"]
        # SQLAlchemy's default PostgreSQL driver is psycopg 3; MLflow's docs and this venv use psycopg2.
        db_uri = db_uri.replace("postgresql://", "postgresql+psycopg2://", 1)
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--backend-store-uri", db_uri,
            "--artifacts-destination", artifacts]
    proc = started(subprocess.Popen(cmd, stdout=open(work / f"{kind}-{port}.log", "wb"), stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True,
                                    env={**os.environ, **env, "RUST_LOG": "warn"}))
    url = f"http://127.0.0.1:{port}"
    log = work / f"{kind}-{port}.log"
    deadline = time.monotonic() + 300  # mlflow migrates an empty database first
    wait_up(proc, url, timeout=300, what=f"{kind} (log: {log})")
    if kind == "mlflow":
        # uvicorn's parent answers before its worker processes have started (a minute on a busy
        # machine): wait until as many workers are ready as were started, and none for 3 s more.
        ready, since = -1, time.monotonic()
        while time.monotonic() < deadline:
            text = log.read_text(errors="replace")
            n = text.count("Application startup complete")
            if n != ready or n < text.count("Started server process") or n == 0:
                ready, since = n, time.monotonic()
            elif time.monotonic() - since > 3:
                break
            time.sleep(0.2)
    return proc, url


# ------------------------------------------------------------------------------------------------
# Measures


def artifact_round_trip(url: str, reps: int) -> tuple:
    """PUT then GET a 1 MiB file through the server's artifact proxy; median of each."""
    s = requests.Session()
    api = bench.Api(url, s)
    run = api.run(api.experiment())
    base = f"{url}/api/2.0/mlflow-artifacts/artifacts/bench/{run}/file-"
    data = os.urandom(1 << 20)
    up, down = [], []
    for i in range(reps + 1):
        t0 = time.perf_counter()
        r = s.put(f"{base}{i}.bin", data=data, timeout=120)
        t1 = time.perf_counter()
        r.raise_for_status()
        g = s.get(f"{base}{i}.bin", timeout=120)
        t2 = time.perf_counter()
        g.raise_for_status()
        assert g.content == data, "the artifact read back differs"
        if i:  # the first is a warm-up
            up.append(t1 - t0)
            down.append(t2 - t1)
    return statistics.median(up) * 1e3, statistics.median(down) * 1e3


# One history run per server, made once: logging 50,000 points into `mlflow server` takes
# minutes, and both history rows below read the same run.
HISTORY_RUNS: dict[str, str] = {}


def history_run(url: str, points: int) -> str:
    if url not in HISTORY_RUNS:
        HISTORY_RUNS[url] = bench.history_run(url, points)
    return HISTORY_RUNS[url]


def history(url: str, points: int, reps: int) -> float:
    """Median ms of `MlflowClient.get_metric_history` over `points` points, as a user sees it
    (the client pages through MLflow's answers; wasmflow's is one page)."""
    return bench.client_history(url, points, reps, history_run(url, points)) * 1e3


def history_server(url: str, points: int) -> float:
    """Mean ms wrk saw for one REST get-history of all `points` points: the server alone, without
    the Python client's parsing, which is most of the client-included figure on both sides."""
    run = history_run(url, points)
    _, lat = bench.wrk(url, f"/api/2.0/mlflow/metrics/get-history?run_id={run}&metric_key=h", connections=1)
    return lat


def cpu_ticks(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except OSError:
            pass
    return total


def children(pid: int) -> list[int]:
    out = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def split_log_metric(urls: list[str], connections: int, seconds: int, groups: dict[str, list[int]],
                     postmaster: int | None) -> tuple[float, dict[str, float]]:
    """One wrk process of `connections` connections per url, all at once, each on a run of its own;
    returns the summed rate and the CPU (% of one core) of each group of processes."""
    lua_files, cmds = [], []
    for url in urls:
        api = bench.Api(url)
        run = api.run(api.experiment())
        lua = bench.log_metric_lua(run)
        f = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
        f.write(lua)
        f.close()
        lua_files.append(f.name)
        cmds.append([bench.WRK, f"-t{min(2, connections)}", f"-c{connections}", f"-d{seconds}s",
                     "--timeout", "30s", "-s", f.name, url + "/api/2.0/mlflow/runs/log-metric"])
    pg = children(postmaster) if postmaster else []
    watched = {**groups, **({"PostgreSQL": pg} if pg else {})}
    before = {k: cpu_ticks(v) for k, v in watched.items()}
    t0 = time.perf_counter()
    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, text=True) for c in cmds]
    outs = [p.communicate(timeout=seconds + 60)[0] for p in procs]
    wall = time.perf_counter() - t0
    # PostgreSQL's backends started during the window count too.
    if postmaster:
        watched["PostgreSQL"] = children(postmaster)
    cpu = {k: (cpu_ticks(v) - before.get(k, 0)) / CLK_TCK / wall * 100 for k, v in watched.items()}
    for f in lua_files:
        os.unlink(f)
    rate = 0.0
    for out in outs:
        if "Non-2xx" in out:
            raise RuntimeError(f"wrk saw error responses:\n{out}")
        rate += float(next(l for l in out.splitlines() if l.startswith("Requests/sec:")).split()[1])
    return rate, cpu


# ------------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wasmflow", default=bench.default_binary())
    ap.add_argument("--pg-uri", default=os.environ.get("WASMFLOW_TEST_POSTGRES_URI"),
                    help="a superuser's uri; the benchmark's databases are created beside it")
    ap.add_argument("--out", type=Path, help="where the report and server logs go")
    ap.add_argument("--runs", type=int, default=1000, help="runs in the search experiment")
    ap.add_argument("--points", type=int, default=50_000, help="points of the metric history")
    ap.add_argument("--skip-mlflow", action="store_true")
    ap.add_argument("--mlflow-seconds", type=int, default=30,
                    help="wrk's window for mlflow server (a 5 s one may see no call of its finish)")
    ap.add_argument("--skip-replicas", action="store_true")
    args = ap.parse_args()
    if not args.pg_uri:
        raise SystemExit("--pg-uri or WASMFLOW_TEST_POSTGRES_URI is needed")
    if not bench.WRK:
        raise SystemExit("wrk is needed (scripts/bench_pg.sh installs it)")
    work = args.out or Path(tempfile.mkdtemp(prefix="wasmflow-bench-pg-"))
    work.mkdir(parents=True, exist_ok=True)
    global PGIDS
    if args.out:
        PGIDS = args.out / "pgids"
        PGIDS.write_text("")
    moto = Moto(work)
    pgids: list[subprocess.Popen] = []
    tag = uuid.uuid4().hex[:8]
    env = {**moto.env, "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode()}
    kinds = ["wasmflow"] + ([] if args.skip_mlflow else ["mlflow"])
    results: dict[str, dict[str, str]] = {k: {} for k in kinds}
    values: dict[str, dict[str, float]] = {k: {} for k in kinds}
    rows = [
        ("log-metric, 1 client (req/s)", lambda u: bench.wrk_log_metric(u, 1)[0], "{:,.0f}", True),
        ("log-metric, 8 clients (req/s)", lambda u: bench.wrk_log_metric(u, 8)[0], "{:,.0f}", True),
        ("log-batch, 1000 metrics a call (metrics/s)", lambda u: bench.wrk_log_batch(u)[0], "{:,.0f}", True),
        (f"search {args.runs} runs, filter + order (ms)", lambda u: bench.bench_search(u, args.runs, 5)[0], "{:.1f}", False),
        (f"get_metric_history, {args.points:,} points, client included (ms)", lambda u: history(u, args.points, 3), "{:.0f}", False),
        (f"get-history REST call, {args.points:,} points, server only (wrk mean, ms)", lambda u: history_server(u, args.points), "{:.0f}", False),
    ]
    try:
        for kind in kinds:
            db = pg_database(args.pg_uri, f"bench_{kind}_{tag}")
            binary = args.wasmflow if kind == "wasmflow" else ""
            proc, url = start(kind, binary, db, f"s3://{moto.bucket}/{kind}", env, work)
            pgids.append(proc)
            print(f"... {kind} at {url}", file=sys.stderr, flush=True)
            bench.WRK_SECONDS = 5 if kind == "wasmflow" else args.mlflow_seconds
            for name, fn, fmt, _ in rows:
                print(f"... {kind}: {name}", file=sys.stderr, flush=True)
                try:
                    v = fn(url)
                    if v <= 0:
                        raise RuntimeError(f"no call finished within wrk's {bench.WRK_SECONDS} s")
                    values[kind][name] = v
                    results[kind][name] = fmt.format(v)
                except Exception as e:  # noqa: BLE001 — report and go on
                    results[kind][name] = f"FAILED: {type(e).__name__}: {e}"[:160]
            print(f"... {kind}: artifacts", file=sys.stderr, flush=True)
            up, down = artifact_round_trip(url, 10)
            for name, v in (("upload 1 MiB artifact to S3 through the server (ms)", up),
                            ("download 1 MiB artifact from S3 through the server (ms)", down)):
                values[kind][name] = v
                results[kind][name] = f"{v:.1f}"
            stop(proc)
            pgids.remove(proc)

        names = [r[0] for r in rows] + ["upload 1 MiB artifact to S3 through the server (ms)",
                                        "download 1 MiB artifact from S3 through the server (ms)"]
        higher = {r[0]: r[3] for r in rows}
        report = ["| benchmark (PostgreSQL + S3) | wasmflow | mlflow server | ratio |", "| --- | ---: | ---: | ---: |"]
        for name in names:
            w, m = values["wasmflow"].get(name), values.get("mlflow", {}).get(name)
            ratio = ""
            if w and m:
                ratio = f"{(w / m if higher.get(name, False) else m / w):.1f}×"
            report.append(f"| {name} | {results['wasmflow'].get(name, '')} | "
                          f"{results.get('mlflow', {}).get(name, '')} | {ratio} |")

        if not args.skip_replicas:
            db = pg_database(args.pg_uri, f"bench_replicas_{tag}")
            a, url_a = start("wasmflow", args.wasmflow, db, f"s3://{moto.bucket}/replicas", env, work)
            pgids.append(a)
            b, url_b = start("wasmflow", args.wasmflow, db, f"s3://{moto.bucket}/replicas", env, work)
            pgids.append(b)
            postmaster = postmaster_pid(args.pg_uri)
            groups = {"replica A": children(a.pid), "replica B": children(b.pid)}
            report += ["", "| 8 clients of log-metric (2 wrk × 4 connections) | req/s | CPU replica A | CPU replica B | CPU PostgreSQL |",
                       "| --- | ---: | ---: | ---: | ---: |"]
            bench.WRK_SECONDS = 10
            for label, urls in (("1 replica", [url_a, url_a]), ("2 replicas", [url_a, url_b]),
                                ("1 replica (again)", [url_a, url_a]), ("2 replicas (again)", [url_a, url_b])):
                print(f"... {label}", file=sys.stderr, flush=True)
                rate, cpu = split_log_metric(urls, 4, bench.WRK_SECONDS, groups, postmaster)
                pg = f"{cpu['PostgreSQL']:.0f}%" if "PostgreSQL" in cpu else "n/a"
                report.append(f"| {label} | {rate:,.0f} | {cpu['replica A']:.0f}% | {cpu['replica B']:.0f}% | {pg} |")
            for p in (a, b):
                stop(p)
                pgids.remove(p)
    finally:
        for p in pgids:
            stop(p)
        stop(moto.proc)

    load = open("/proc/loadavg").read().split()[:3]
    text = (f"\nwasmflow tracking benchmark on PostgreSQL + S3 (moto), {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
            f"load average {' '.join(load)}, {os.cpu_count()} cores\n\n" + "\n".join(report) + "\n")
    print(text)
    if args.out:
        (args.out / "report.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
