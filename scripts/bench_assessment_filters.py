#!/usr/bin/env python3
"""`feedback.<name>` search latency over a large SQLite store, binary against binary.

The store is made by the first `--bin` (the oldest schema of those compared: a newer wasmflow
migrates an older database, an older one refuses a newer), then filled by SQL with `--traces`
traces in sessions of 5, each with a `quality` feedback (`yes`/`no`); every 100th is
session-level (its metadata names the session; `--session-every N` for every Nth, 0 for none). Each binary then serves the same file in turn
(the first newer one migrates it, which is timed: the server's start until /health answers)
and each filter is searched `--reps` times, 100 a page; the median of all but the first two
calls is printed.

    python scripts/bench_assessment_filters.py --bin main=/path/to/old/wasmflow \\
        --bin branch=target/release/wasmflow --traces 100000

With `--postgres ADMIN_URI` (a superuser's uri; `--postgres-ca FILE` to verify its TLS) the store
is a new PostgreSQL database instead (dropped at the end), filled the same way with psycopg2.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import requests

FILTERS = [None, "feedback.quality = 'yes'", "feedback.quality != 'yes'", "feedback.quality IS NULL"]
EXPERIMENT = 5


# A PostgreSQL store keeps webhook secrets' key in the environment (any Fernet key will do here).
os.environ.setdefault("MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY", "d2FzbWZsb3ctZTJlLXdlYmhvb2sta2V5LTMyYnl0ZXM=")


def serve(binary: str, store_uri: str, artifacts: Path, port: int) -> tuple[subprocess.Popen, float]:
    t = time.perf_counter()
    proc = subprocess.Popen(
        [binary, "server", "--port", str(port), "--backend-store-uri", store_uri,
         "--artifacts-destination", str(artifacts)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while True:
        try:
            if requests.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc, time.perf_counter() - t
        except requests.ConnectionError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"{binary} exited with {proc.returncode}")
        time.sleep(0.05)


def fill(c, traces: int, mark: str, session_every: int) -> None:
    """Fills the store `c` (a DB-API connection whose placeholders are `mark`)."""
    random.seed(1)
    k = c.cursor()

    def insert(table, columns, rows):
        if mark == "%s":  # psycopg2: many rows a statement, not one
            from psycopg2.extras import execute_values

            execute_values(k, f"INSERT INTO {table} ({', '.join(columns)}) VALUES %s", rows)
            return
        marks = ", ".join([mark] * len(columns))
        k.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)

    insert("experiments", ["experiment_id", "name", "artifact_location", "lifecycle_stage", "creation_time",
                           "last_update_time"], [(EXPERIMENT, "bench", "/a", "active", 1, 1)])
    info, metadata, assessments = [], [], []
    for i in range(traces):
        tid = f"tr-{i:032x}"
        session = f"s-{i // 5}"
        info.append((tid, EXPERIMENT, 1_700_000_000_000 + i * 10, 5, "OK"))
        metadata += [(tid, "mlflow.trace.session", session), (tid, "mlflow.trace_schema.version", "3")]
        value = random.choice(["yes", "no"])
        body = {"assessment_id": f"a-{i}", "trace_id": tid, "assessment_name": "quality",
                "feedback": {"value": value}, "valid": True}
        if session_every and i % session_every == 0:
            body["metadata"] = {"mlflow.trace.session": session}
        assessments.append((f"a-{i}", tid, "quality", "feedback", json.dumps(value), 1, 1, json.dumps(body)))
    insert("trace_info", ["trace_id", "experiment_id", "request_time", "execution_duration", "state"], info)
    k.execute("SELECT * FROM trace_metadata LIMIT 0")
    if "trace_key" in [d[0] for d in k.description]:
        # Metadata is keyed by the trace's integer key since migration 0014.
        k.execute("SELECT trace_id, trace_key FROM trace_info")
        keys = dict(k.fetchall())
        insert("trace_metadata", ["trace_key", "key", "value"], [(keys[t], key, v) for t, key, v in metadata])
    else:
        insert("trace_metadata", ["trace_id", "key", "value"], metadata)
    k.execute("SELECT * FROM assessments LIMIT 0")
    if "session_level" in [d[0] for d in k.description]:
        # The schema the first binary made already marks session-level assessments (migration
        # 0012): mark them as its write path does; an older schema gets them from the migration.
        assessments = [a + (int("metadata" in json.loads(a[-1])),) for a in assessments]
        columns = ["session_level"]
    else:
        columns = []
    if "trace_key" in [d[0] for d in k.description]:
        # Each assessment keeps its trace's experiment and key since migration 0015.
        k.execute("SELECT trace_id, trace_key FROM trace_info")
        keys = dict(k.fetchall())
        assessments = [a + (EXPERIMENT, keys[a[1]]) for a in assessments]
        columns += ["experiment_id", "trace_key"]
    insert("assessments", ["assessment_id", "trace_id", "name", "kind", "value", "valid", "created", "body"]
           + columns, assessments)
    c.commit()
    if mark == "%s":
        k.execute("ANALYZE")
        c.commit()
    c.close()


def latency(url: str, filter_string: str | None, reps: int) -> tuple[float, int]:
    body = {"locations": [{"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": str(EXPERIMENT)}}],
            "max_results": 100}
    if filter_string:
        body["filter"] = filter_string
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        r = requests.post(f"{url}/api/3.0/mlflow/traces/search", json=body, timeout=300)
        times.append((time.perf_counter() - t) * 1000)
        if r.status_code != 200:
            raise SystemExit(f"{url}: {filter_string!r} answered {r.status_code}: {r.text[:300]}")
    return statistics.median(times[2:]), len(r.json().get("traces", []))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", action="append", required=True, help="NAME=PATH, oldest first")
    ap.add_argument("--traces", type=int, default=100_000)
    ap.add_argument("--reps", type=int, default=12)
    ap.add_argument("--session-every", type=int, default=100,
                    help="every Nth assessment is session-level (0: none)")
    ap.add_argument("--port", type=int, default=15990)
    ap.add_argument("--postgres", help="a PostgreSQL superuser's uri: bench a new database there")
    ap.add_argument("--postgres-ca", help="the CA file that verifies the PostgreSQL server's TLS")
    args = ap.parse_args()
    bins = [b.split("=", 1) for b in args.bin]
    with tempfile.TemporaryDirectory() as d:
        artifacts = Path(d) / "artifacts"
        if args.postgres:
            import psycopg2

            tls = {"sslmode": "verify-ca", "sslrootcert": args.postgres_ca} if args.postgres_ca else {}
            admin = psycopg2.connect(args.postgres, **tls)
            admin.autocommit = True
            name = f"bench_assessments_{os.getpid()}"
            admin.cursor().execute(f"CREATE DATABASE {name}")
            base = args.postgres.rsplit("/", 1)[0]
            query = "&".join(f"{k}={v}" for k, v in tls.items())
            store_uri = f"{base}/{name}" + (f"?{query}" if query else "")
            connect = lambda: (psycopg2.connect(f"{base}/{name}", **tls), "%s")  # noqa: E731
        else:
            store_uri = f"sqlite:///{Path(d) / 'store.db'}"
            connect = lambda: (sqlite3.connect(Path(d) / "store.db"), "?")  # noqa: E731
        try:
            proc, _ = serve(bins[0][1], store_uri, artifacts, args.port)
            proc.terminate()
            proc.wait()
            conn, mark = connect()
            fill(conn, args.traces, mark, args.session_every)
            for name_, binary in bins:
                proc, started = serve(binary, store_uri, artifacts, args.port)
                try:
                    print(f"{name_}: start (with any migration) {started:.2f} s")
                    for f in FILTERS:
                        ms, found = latency(f"http://127.0.0.1:{args.port}", f, args.reps)
                        print(f"  {str(f):32s} {ms:7.1f} ms  ({found} found)")
                finally:
                    proc.terminate()
                    proc.wait()
        finally:
            if args.postgres:
                admin.cursor().execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
