#!/usr/bin/env python3
"""Model-registry micro-benchmarks over raw REST; prints a markdown table.

    python scripts/bench_registry.py                        # starts $WASMFLOW_BIN on a temp store
    python scripts/bench_registry.py http://127.0.0.1:5000  # measures a running server

Loads 100 registered models with 100 versions each (10,000 versions, every version tagged), then
times `model-versions/search` with filters, paging through all versions, and alias resolution
(`registered-models/alias` and wasmflow's `models/resolve`). Latencies are client-observed
(`requests.Session`, ~0.3-1 ms of the figure is Python); the median and p95 of each query are shown.
Only 127.0.0.1 is touched.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from bench_proc import free_port

REPO = Path(__file__).resolve().parents[1]


def start_server(binary: str, store: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [binary, "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{store / 'db.sqlite'}",
         "--artifacts-destination", str(store / "artifacts")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "RUST_LOG": "warn"},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(url + "/health", timeout=1).status_code == 200:
                return proc, url
        except requests.RequestException:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("server did not come up")


def load(url: str, prefix: str, models: int, versions: int) -> float:
    api = f"{url}/api/2.0/mlflow"
    started = time.perf_counter()

    def one_model(i: int) -> None:
        s = requests.Session()
        name = f"{prefix}-{i:03d}"
        s.post(f"{api}/registered-models/create", json={"name": name}, timeout=30).raise_for_status()
        for v in range(versions):
            s.post(
                f"{api}/model-versions/create",
                json={"name": name, "source": f"s3://bucket/{name}/{v}/model",
                      "tags": [{"key": "parity", "value": "even" if v % 2 == 0 else "odd"}]},
                timeout=30,
            ).raise_for_status()
        s.post(f"{api}/registered-models/alias",
               json={"name": name, "alias": "champion", "version": str(versions // 2)},
               timeout=30).raise_for_status()

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one_model, range(models)))
    return time.perf_counter() - started


def timed(session: requests.Session, url: str, params: dict, reps: int) -> tuple[float, float, int]:
    times, count = [], 0
    for _ in range(reps):
        t = time.perf_counter()
        r = session.get(url, params=params, timeout=60)
        times.append((time.perf_counter() - t) * 1000)
        r.raise_for_status()
        body = r.json()
        # A search answers `{}` when nothing matches; the other calls answer one entity.
        count = len(body.get("model_versions", [])) if "/search" in url else 1
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.95) - 1], count


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("url", nargs="?")
    ap.add_argument("--bin", default=os.environ.get("WASMFLOW_BIN") or str(REPO / "target/release/wasmflow"))
    ap.add_argument("--models", type=int, default=100)
    ap.add_argument("--versions", type=int, default=100)
    ap.add_argument("--reps", type=int, default=100)
    args = ap.parse_args()

    tmp = None
    proc = None
    url = args.url
    if not url:
        tmp = Path(tempfile.mkdtemp(prefix="wasmflow-bench-registry-"))
        proc, url = start_server(args.bin, tmp)
    try:
        prefix = f"bench-{uuid.uuid4().hex[:6]}"
        n = args.models * args.versions
        load_s = load(url, prefix, args.models, args.versions)
        api = f"{url}/api/2.0/mlflow"
        s = requests.Session()
        mid = f"{prefix}-{args.models // 2:03d}"
        rows = [("load: create models + versions (8 clients)", f"{n} versions in {load_s:.1f} s",
                 f"{n / load_s:.0f} versions/s", "")]
        searches = [
            ("search versions: name = one model", {"filter": f"name = '{mid}'"}),
            ("search versions: name = .. AND tags.parity = 'even'",
             {"filter": f"name = '{mid}' AND tags.parity = 'even'"}),
            ("search versions: name LIKE '<10 models>%' AND version_number > 50",
             {"filter": f"name LIKE '{prefix}-00%' AND version_number > 50"}),
            ("search versions: tags.parity = 'odd', first page of 100",
             {"filter": "tags.parity = 'odd'", "max_results": 100}),
            ("search versions: run_id IN (..) (no match, index)",
             {"filter": "run_id IN ('a', 'b')"}),
        ]
        for label, params in searches:
            med, p95, count = timed(s, f"{api}/model-versions/search", params, args.reps)
            rows.append((label, f"{count} results", f"{med:.2f} ms", f"{p95:.2f} ms"))

        # Page through all versions of the benchmark's models.
        t = time.perf_counter()
        token, total, pages = None, 0, 0
        while True:
            params = {"filter": f"name LIKE '{prefix}-%'", "max_results": 1000}
            if token:
                params["page_token"] = token
            body = s.get(f"{api}/model-versions/search", params=params, timeout=120).json()
            total += len(body.get("model_versions", []))
            pages += 1
            token = body.get("next_page_token")
            if not token:
                break
        elapsed = (time.perf_counter() - t) * 1000
        rows.append((f"search versions: all {total}, pages of 1000", f"{pages} pages",
                     f"{elapsed:.0f} ms total", ""))

        med, p95, _ = timed(s, f"{api}/registered-models/alias",
                            {"name": mid, "alias": "champion"}, args.reps * 5)
        rows.append(("alias: GET registered-models/alias", "1 version", f"{med:.2f} ms", f"{p95:.2f} ms"))
        med, p95, _ = timed(s, f"{url}/api/2.0/wasmflow/models/resolve",
                            {"uri": f"models:/{mid}@champion"}, args.reps * 5)
        rows.append(("alias: GET wasmflow/models/resolve models:/m@alias", "1 version",
                     f"{med:.2f} ms", f"{p95:.2f} ms"))
        med, p95, _ = timed(s, f"{api}/registered-models/get", {"name": mid}, args.reps * 5)
        rows.append(("registered-models/get (100 versions, latest per stage)", "1 model",
                     f"{med:.2f} ms", f"{p95:.2f} ms"))

        print(f"\nModel registry, {args.models} models x {args.versions} versions\n")
        print("| operation | size | median | p95 |")
        print("|---|---|---|---|")
        for row in rows:
            print("| " + " | ".join(row) + " |")
        return 0
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
