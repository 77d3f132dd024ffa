#!/usr/bin/env python3
"""Store scaling benchmark (issue 17, item 5); prints a markdown table per backend.

    python scripts/bench_scale.py --wasmflow BIN [--sizes 10000,100000,1000000]
                                  [--backends sqlite,postgres] [--pg-uri postgresql://...]

Grows one experiment to each size in turn (every run: 3 metrics, 2 params, 1 tag, logged over
REST by several client processes: `runs/create` with the tag, then one `runs/log-batch`) and
prints the ingest rate of each step. At each size it times, client-observed over REST:

- search top-100 with a metric filter and a metric order
  (`metrics.m0 > 0.5`, `order_by metrics.m1 DESC`, `max_results 100`);
- newest-100 by start time (no filter, MLflow's default order, `max_results 100`);
- the next page of the newest-100 search (its page token);

and once per backend, log-batch throughput: 1000-metric `runs/log-batch` calls into one run.

Sizes up to `--rest-max` (default 100,000) are grown over REST, which measures the ingest rate;
REST ingest runs at a few hundred to a thousand runs a second here, so larger steps are seeded:
the server is stopped, the same rows a REST-created run gets (its `runs` row copied from a
REST-created run, the `mlflow.runName` and `t0` tags, 2 params, 3 metrics and their
`latest_metrics` rows, random values, increasing start times) are inserted with SQL in one
transaction (Python's sqlite3, or `psql` then `VACUUM ANALYZE` as autovacuum would), and the
server is started again. The report says which steps were seeded.

PostgreSQL: `--pg-uri` (default $WASMFLOW_TEST_POSTGRES_URI) names a superuser's database; the
bench creates a database of its own beside it (with `psql`) and drops it at the end.
Latencies run from sending the request to reading the answer's last byte: they include the
Python client (~0.3 ms) and the server's loading and JSON of 100 whole runs, not Python's
decoding of that JSON.
Only 127.0.0.1 is touched.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from multiprocessing import Pool
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from bench_proc import KeepAlive, free_port, stop

REPO = Path(__file__).resolve().parents[1]
API = "/api/2.0/mlflow"


class Client:
    """MLflow's REST API on one keep-alive connection (`bench_proc.KeepAlive`)."""

    def __init__(self, port: int):
        self.http = KeepAlive(f"http://127.0.0.1:{port}", timeout=120)

    def post(self, path: str, body: bytes | dict) -> dict:
        data = self.raw(path, body)
        return json.loads(data) if data else {}

    def raw(self, path: str, body: bytes | dict) -> bytes:
        """The answer's bytes, read to the last one."""
        if isinstance(body, dict):
            body = json.dumps(body).encode()
        status, data = self.http.post(API + path, body, {"Content-Type": "application/json"})
        if status != 200:
            raise RuntimeError(f"{path}: {status} {data[:300]!r}")
        return data


def start_server(binary: str, backend_uri: str, work: Path, out: Path | None) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen(
        [binary, "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", backend_uri, "--artifacts-destination", str(work / "artifacts")],
        stdout=subprocess.DEVNULL, stderr=open(work / "server.log", "ab"),
        # A PostgreSQL store keeps no key file: the webhook secrets' key comes from the environment.
        env={"MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY": "YmVuY2gtc2NhbGUtd2ViaG9vay1rZXktMzItYnl0ZXM=",
             **os.environ, "RUST_LOG": "warn"}, start_new_session=True,
    )
    if out is not None:
        with open(out / "pgids", "a") as f:
            f.write(f"{proc.pid}\n")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", "/health")
            if c.getresponse().status == 200:
                return proc, port
        except OSError:
            time.sleep(0.05)
        if proc.poll() is not None:
            break
    stop(proc)
    raise SystemExit(f"server did not come up; see {work / 'server.log'}")


# ---------------------------------------------------------------------------------------------
# Ingest


def _grow(task: tuple[int, str, int, int, int]) -> int:
    """One client process: creates runs first..last (exclusive) with their data."""
    port, exp_id, first, last, t0 = task
    c = Client(port)
    rnd = random.Random(first)
    for i in range(first, last):
        # Start times are distinct and increasing, as runs started one after another.
        start = t0 + i
        run = c.post("/runs/create", {
            "experiment_id": exp_id, "start_time": start, "run_name": f"run-{i}",
            "tags": [{"key": "t0", "value": f"tag-{i % 7}"}],
        })["run"]["info"]["run_id"]
        c.post("/runs/log-batch", {
            "run_id": run,
            "metrics": [{"key": f"m{k}", "value": rnd.random(), "timestamp": start, "step": 0}
                        for k in range(3)],
            "params": [{"key": "p0", "value": str(i % 10)}, {"key": "p1", "value": f"v{i % 3}"}],
        })
    return last - first


# The seeded rows, as the REST ingest writes them (see `_grow`); `seed` is a temporary table of
# (i, id, v0, v1, v2) made per dialect. `{template}` is a REST-created run whose `runs` row the
# seeded runs copy (with their own id, name and start time).
SEED_ROWS = [
    """INSERT INTO runs (run_uuid, experiment_id, name, user_id, status, start_time, artifact_uri,
                         lifecycle_stage)
       SELECT id, t.experiment_id, 'run-' || i, t.user_id, t.status, {t0} + i,
              replace(t.artifact_uri, t.run_uuid, id), t.lifecycle_stage
       FROM seed, (SELECT * FROM runs WHERE run_uuid = '{template}') t ORDER BY id""",
    """INSERT INTO tags (run_uuid, key, value)
       SELECT id, k, v FROM (SELECT id, 'mlflow.runName' AS k, 'run-' || i AS v FROM seed
                             UNION ALL SELECT id, 't0', 'tag-' || (i % 7) FROM seed) x
       ORDER BY id, k""",
    """INSERT INTO params (run_uuid, key, value)
       SELECT id, k, v FROM (SELECT id, 'p0' AS k, CAST(i % 10 AS TEXT) AS v FROM seed
                             UNION ALL SELECT id, 'p1', 'v' || (i % 3) FROM seed) x
       ORDER BY id, k""",
    # The metric tables name runs by run_key and keys by their id in metric_keys (migration
    # 0010); m0..m2 are there already from the REST-created runs.
    """INSERT INTO metrics (run_key, metric_key_id, step, timestamp, value, is_nan)
       SELECT r.run_key, mk.metric_key_id, 0, {t0} + i, v, 0
       FROM (SELECT id, i, 'm0' AS k, v0 AS v FROM seed UNION ALL SELECT id, i, 'm1', v1 FROM seed
             UNION ALL SELECT id, i, 'm2', v2 FROM seed) x
       JOIN runs r ON r.run_uuid = x.id JOIN metric_keys mk ON mk.key = x.k
       ORDER BY r.run_key, mk.metric_key_id""",
    """INSERT INTO latest_metrics (run_key, metric_key_id, experiment_id, step, timestamp, value,
                                   is_nan)
       SELECT r.run_key, mk.metric_key_id, {exp_id}, 0, {t0} + i, v, 0
       FROM (SELECT id, i, 'm0' AS k, v0 AS v FROM seed UNION ALL SELECT id, i, 'm1', v1 FROM seed
             UNION ALL SELECT id, i, 'm2', v2 FROM seed) x
       JOIN runs r ON r.run_uuid = x.id JOIN metric_keys mk ON mk.key = x.k
       ORDER BY r.run_key, mk.metric_key_id""",
]
SEED_TABLE = {
    "sqlite": """CREATE TEMP TABLE seed AS
        WITH RECURSIVE s(i) AS (SELECT {first} UNION ALL SELECT i + 1 FROM s WHERE i + 1 < {last})
        SELECT i, lower(hex(randomblob(16))) AS id,
               (random() & 9007199254740991) / 9007199254740992.0 AS v0,
               (random() & 9007199254740991) / 9007199254740992.0 AS v1,
               (random() & 9007199254740991) / 9007199254740992.0 AS v2 FROM s""",
    "postgres": """CREATE TEMP TABLE seed AS
        SELECT i, md5(random()::text || i::text) AS id, random() AS v0, random() AS v1,
               random() AS v2
        FROM generate_series({first}::bigint, {last}::bigint - 1) i""",
}


def seed(backend: str, uri: str, exp_id: str, template: str, first: int, last: int, t0: int) -> None:
    """Inserts runs first..last (exclusive) into the stopped server's database in one transaction."""
    assert all(ch in "0123456789abcdef" for ch in template) and exp_id.isdigit()
    fill = {"first": first, "last": last, "t0": t0, "exp_id": exp_id, "template": template}
    statements = [SEED_TABLE[backend].format(**fill)] + [s.format(**fill) for s in SEED_ROWS]
    if backend == "sqlite":
        import sqlite3
        db = sqlite3.connect(uri.removeprefix("sqlite:///"), isolation_level=None)
        db.execute("PRAGMA cache_size = -1000000")
        db.execute("BEGIN")
        for sql in statements:
            db.execute(sql)
        db.execute("COMMIT")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
    else:
        script = "BEGIN;\n" + ";\n".join(statements) + ";\nCOMMIT;\n"
        subprocess.run(["psql", uri, "-q", "-v", "ON_ERROR_STOP=1"], input=script.encode(), check=True)
        subprocess.run(["psql", uri, "-q", "-c", "VACUUM ANALYZE"], check=True)


def grow(port: int, exp_id: str, have: int, want: int, clients: int, t0: int) -> float:
    """Grows the experiment from `have` to `want` runs; returns the seconds taken."""
    chunk = 500
    tasks = [(port, exp_id, a, min(a + chunk, want), t0) for a in range(have, want, chunk)]
    started = time.perf_counter()
    with Pool(clients) as pool:
        for _ in pool.imap_unordered(_grow, tasks):
            pass
    return time.perf_counter() - started


# ---------------------------------------------------------------------------------------------
# Queries


def timed(c: Client, path: str, body: dict, reps: int) -> tuple[float, float, dict]:
    """Median and p95 ms from sending the request to reading the answer's last byte; decoding
    the JSON in Python (several ms for 100 runs on the loaded 2-core machine) is not the
    server's time and is left out."""
    raw = json.dumps(body).encode()
    answer = c.raw(path, raw)  # warm-up
    c.raw(path, raw)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        answer = c.raw(path, raw)
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return statistics.median(times), times[max(0, int(len(times) * 0.95) - 1)], json.loads(answer)


def queries(port: int, exp_id: str, reps: int) -> list[tuple[str, float, float, str]]:
    c = Client(port)
    rows = []
    top = {"experiment_ids": [exp_id], "filter": "metrics.m0 > 0.5",
           "order_by": ["metrics.m1 DESC"], "max_results": 100}
    med, p95, ans = timed(c, "/runs/search", top, reps)
    runs = ans.get("runs", [])
    values = [next(m["value"] for m in r["data"]["metrics"] if m["key"] == "m1") for r in runs]
    assert len(runs) == 100 and values == sorted(values, reverse=True), "top-100 answer is wrong"
    rows.append(("search: metrics.m0 > 0.5, order by metrics.m1 DESC, top 100", med, p95, ""))

    newest = {"experiment_ids": [exp_id], "max_results": 100}
    med, p95, ans = timed(c, "/runs/search", newest, reps)
    starts = [r["info"]["start_time"] for r in ans["runs"]]
    assert len(starts) == 100 and starts == sorted(starts, reverse=True), "newest-100 is wrong"
    rows.append(("search: newest 100 by start time (default order)", med, p95, ""))

    med, p95, ans2 = timed(c, "/runs/search", {**newest, "page_token": ans["next_page_token"]}, reps)
    assert ans2["runs"][0]["info"]["start_time"] < starts[-1], "second page is wrong"
    rows.append(("search: newest 100, second page (page token)", med, p95, ""))
    return rows


def log_batch_rate(port: int, exp_id: str, calls: int) -> tuple[float, float]:
    """1000-metric log-batch calls, one client; returns (metrics/s, ms a call)."""
    c = Client(port)
    run = c.post("/runs/create", {"experiment_id": exp_id, "start_time": 0})["run"]["info"]["run_id"]
    bodies = [json.dumps({"run_id": run, "metrics": [
        {"key": f"lb{k % 10}", "value": (n * 1000 + k) * 0.001, "timestamp": 1_700_000_000_000 + n,
         "step": n * 100 + k // 10} for k in range(1000)]}).encode() for n in range(calls + 2)]
    c.post("/runs/log-batch", bodies[0])
    c.post("/runs/log-batch", bodies[1])
    t = time.perf_counter()
    for body in bodies[2:]:
        c.post("/runs/log-batch", body)
    dt = time.perf_counter() - t
    return calls * 1000 / dt, dt / calls * 1000


# ---------------------------------------------------------------------------------------------
# Backends


def pg_database(base_uri: str) -> tuple[str, str]:
    """Creates a fresh database beside `base_uri`'s; returns (its uri, its name)."""
    if not shutil.which("psql"):
        raise SystemExit("psql is needed to create the benchmark's PostgreSQL database")
    name = f"wasmflow_bench_scale_{uuid.uuid4().hex[:8]}"
    subprocess.run(["psql", base_uri, "-q", "-c", f"CREATE DATABASE {name}"], check=True)
    parts = urlsplit(base_uri)
    return urlunsplit(parts._replace(path=f"/{name}")), name


def database_bytes(backend: str, uri: str) -> int:
    """The database's size: SQLite's pages in use (page_count less the free list, as a reader
    sees them, write-ahead log included; the files' sizes would count the log's stale pages), or
    PostgreSQL's `pg_database_size`."""
    if backend == "sqlite":
        import sqlite3
        db = sqlite3.connect(f"file:{uri.removeprefix('sqlite:///')}?mode=ro", uri=True)
        try:
            pages, free, size = (db.execute(f"PRAGMA {p}").fetchone()[0]
                                 for p in ("page_count", "freelist_count", "page_size"))
        finally:
            db.close()
        return (pages - free) * size
    out = subprocess.run(["psql", uri, "-qtA", "-c", "SELECT pg_database_size(current_database())"],
                         check=True, capture_output=True, text=True)
    return int(out.stdout.strip())


def run_backend(args, backend: str, sizes: list[int], out: Path | None) -> list[str]:
    work = Path(tempfile.mkdtemp(prefix=f"wasmflow-bench-scale-{backend}-"))
    dropdb = None
    if backend == "sqlite":
        uri = f"sqlite:///{work / 'db.sqlite'}"
    else:
        if not args.pg_uri:
            raise SystemExit("--pg-uri or WASMFLOW_TEST_POSTGRES_URI is needed for postgres")
        uri, dropdb = pg_database(args.pg_uri)
    proc, port = start_server(args.wasmflow, uri, work, out)
    lines = [f"\n### {backend}\n", "| runs | step | ingest | query | median ms | p95 ms |",
             "|---:|---|---:|---|---:|---:|"]
    try:
        c = Client(port)
        exp_id = c.post("/experiments/create", {"name": f"scale-{uuid.uuid4().hex[:6]}"})["experiment_id"]
        t0 = 1_700_000_000_000
        have = 0
        for size in sizes:
            n = size - have
            if size <= args.rest_max or have == 0:
                secs = grow(port, exp_id, have, size, args.clients, t0)
                ingest = f"{n / secs:,.0f} runs/s ({3 * n / secs:,.0f} metrics/s, {secs:.0f} s)"
                step = f"grow by {n:,} over REST ({args.clients} clients)"
            else:
                template = Client(port).post("/runs/search", {"experiment_ids": [exp_id], "max_results": 1})
                template = template["runs"][0]["info"]["run_id"]
                stop(proc)
                started = time.perf_counter()
                seed(backend, uri, exp_id, template, have, size, t0)
                secs = time.perf_counter() - started
                proc, port = start_server(args.wasmflow, uri, work, out)
                ingest = f"seeded with SQL in {secs:.0f} s (not an ingest rate)"
                step = f"seed {n:,} (SQL, server stopped)"
            print(f"{backend}: {size} runs; {step}: {ingest}", file=sys.stderr, flush=True)
            lines.append(f"| {size:,} | {step} | {ingest} | | | |")
            have = size
            for name, med, p95, _ in queries(port, exp_id, args.reps):
                lines.append(f"| {size:,} | | | {name} | {med:.2f} | {p95:.2f} |")
                print(f"  {name}: {med:.2f} ms median, {p95:.2f} ms p95", file=sys.stderr, flush=True)
            size_bytes = database_bytes(backend, uri)
            lines.append(f"| {size:,} | database size | {size_bytes / 2**20:,.1f} MiB "
                         f"({size_bytes / size:,.0f} bytes a run) | | | |")
            print(f"  database: {size_bytes / size:,.0f} bytes a run", file=sys.stderr, flush=True)
        rate, per_call = log_batch_rate(port, exp_id, args.batch_calls)
        lines.append(f"| {have:,} | log-batch, 1000 metrics a call, 1 client | "
                     f"{rate:,.0f} metrics/s ({per_call:.2f} ms a call) | | | |")
        print(f"  log-batch: {rate:,.0f} metrics/s", file=sys.stderr, flush=True)
    finally:
        stop(proc)
        if dropdb:
            subprocess.run(["psql", args.pg_uri, "-q", "-c", f"DROP DATABASE IF EXISTS {dropdb}"], check=False)
        shutil.rmtree(work, ignore_errors=True)
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wasmflow", default=os.environ.get("WASMFLOW_BIN") or str(REPO / "target/release/wasmflow"))
    ap.add_argument("--out", type=Path)
    ap.add_argument("--sizes", default="10000,100000,1000000",
                    help="comma-separated run counts the experiment grows to, in turn")
    ap.add_argument("--backends", default="sqlite,postgres")
    ap.add_argument("--pg-uri", default=os.environ.get("WASMFLOW_TEST_POSTGRES_URI"))
    ap.add_argument("--rest-max", type=int, default=100_000,
                    help="larger steps are seeded with SQL instead of grown over REST")
    ap.add_argument("--clients", type=int, default=4, help="client processes that grow the experiment")
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--batch-calls", type=int, default=100)
    args = ap.parse_args()
    sizes = sorted(int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip())
    report = ["## Store scaling (bench_scale.py)",
              f"\nsizes {', '.join(f'{s:,}' for s in sizes)}; each run 3 metrics, 2 params, 1 tag; "
              f"{args.reps} timed calls per query"]
    for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
        if backend not in ("sqlite", "postgres"):
            raise SystemExit(f"unknown backend '{backend}' (sqlite, postgres)")
        report += run_backend(args, backend, sizes, args.out)
    text = "\n".join(report) + "\n"
    print(text)
    if args.out:
        (args.out / "report.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
