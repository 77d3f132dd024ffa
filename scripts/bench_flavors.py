#!/usr/bin/env python3
"""The flavors benchmark (issue 12): `wasmflow models serve` against `mlflow models serve` on the
very same MLflow model directories, in the same run, for four models logged as MLflow saves them
by default (scikit-learn and its pipelines as skops, XGBoost as UBJSON); writes <out>/report.md.
scripts/bench_flavors.sh builds the binary, installs wrk and the venv, then runs this file with
the venv's python:

    python scripts/bench_flavors.py --wasmflow BIN --out DIR [--seconds 3] [--connections 1,8]
                                    [--models rf,hgb,pipeline,xgb]

Models (trained here on synthetic data, saved with `mlflow.<flavor>.save_model`):
  rf        RandomForestClassifier, 100 trees, max_depth 10, 20 float features
  hgb       HistGradientBoostingRegressor, 100 iterations, 20 features with 10% NaN
  pipeline  ColumnTransformer(OneHotEncoder(handle_unknown="ignore") on 2 string columns,
            SimpleImputer + StandardScaler on 3 numeric ones) + LogisticRegression
  xgb       XGBClassifier, 100 trees, max_depth 6, 20 features with 10% NaN (model.ubj)

For each model and server: requests/s and p50/p99 latency of POST /invocations with a 1-row and a
1,000-row `dataframe_split` body (wrk, N seconds per cell after a 1 s warm-up), after checking
that both servers answer the same predictions as the framework (labels equal, floats within 1e-6
relative) and noting whether their bytes are identical.

Predict time: the framework's own `predict` on the 1,000 rows as a DataFrame in this process
(median of repeated calls, the framework's default threads), against wasmflow's "1,000-row p50 -
1-row p50" at one connection: the time the server spends on 999 more rows, i.e. an upper bound
of the predict call in Wasm, since it also includes parsing those rows' JSON and writing their
answers. The same difference is shown for MLflow's server.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serving import LUA, Server, Variant, fmt_ms, fmt_rate, http_request, load_average, platform_cpu, run_wrk  # noqa: E402

N_FEATURES = 20
ROWS = 1000


def log(msg: str) -> None:
    print(f"[bench-flavors {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------
# Models


def numeric(rows: int, seed: int, nan: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, N_FEATURES))
    if nan:
        x[rng.random(x.shape) < nan] = np.nan
    return pd.DataFrame(x, columns=[f"f{i}" for i in range(N_FEATURES)])


def mixed(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "a": rng.normal(size=rows), "b": rng.normal(scale=3, size=rows), "count": rng.integers(0, 20, size=rows),
        "color": rng.choice(["red", "green", "blue", "black"], size=rows),
        "city": rng.choice([f"city{i}" for i in range(30)], size=rows),
    })
    frame.loc[rng.random(rows) < 0.1, "a"] = np.nan
    return frame


def score(frame: pd.DataFrame) -> np.ndarray:
    if "f0" in frame:
        f = frame.fillna(0.0).to_numpy()
        return f[:, 0] + 0.8 * f[:, 1] * f[:, 2] - 0.5 * f[:, 3] ** 2 + 0.3 * f[:, 4:].sum(axis=1)
    return (frame.a.fillna(0) + 0.2 * frame.b - 0.05 * frame["count"] + (frame.color == "red")
            - 0.7 * frame.city.isin(["city1", "city7", "city9"])).to_numpy()


def build(kind: str, model_dir: Path):
    """Trains the model, saves it as MLflow does by default; -> (model, probe frame, description)."""
    import mlflow
    import sklearn
    import skops.io

    rng = np.random.default_rng(0)
    if kind in ("rf", "xgb"):
        x, probe = numeric(5000, 1, 0.1 if kind == "xgb" else 0.0), numeric(ROWS, 2, 0.1 if kind == "xgb" else 0.0)
        y = (score(x) + rng.normal(scale=0.5, size=len(x)) > 0).astype(np.int64)
    elif kind == "hgb":
        x, probe = numeric(5000, 3, 0.1), numeric(ROWS, 4, 0.1)
        y = score(x) + rng.normal(scale=0.3, size=len(x))
    else:
        x, probe = mixed(5000, 5), mixed(ROWS, 6)
        probe.loc[:9, "city"] = "nowhere"  # unknown categories
        y = np.where(score(x) + rng.normal(scale=0.5, size=len(x)) > 0.3, "yes", "no")

    if model_dir.exists():
        shutil.rmtree(model_dir)
    common = dict(input_example=x[:5])
    if kind == "xgb":
        import xgboost as xgb

        model = xgb.XGBClassifier(n_estimators=100, max_depth=6).fit(x, y)
        mlflow.xgboost.save_model(model, str(model_dir), pip_requirements=[f"xgboost=={xgb.__version__}"], **common)
        return model, probe, "XGBClassifier (100 trees, max_depth 6), 20 features with 10% NaN; model.ubj"
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    if kind == "rf":
        model, what = RandomForestClassifier(n_estimators=100, max_depth=10, random_state=0), \
            "RandomForestClassifier (100 trees, max_depth 10), 20 features"
    elif kind == "hgb":
        model, what = HistGradientBoostingRegressor(max_iter=100, random_state=0), \
            "HistGradientBoostingRegressor (100 iterations), 20 features with 10% NaN"
    else:
        model = Pipeline([
            ("prep", ColumnTransformer([
                ("cat", OneHotEncoder(handle_unknown="ignore"), ["color", "city"]),
                ("num", Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())]), ["a", "b", "count"]),
            ])),
            ("clf", LogisticRegression()),
        ])
        what = ("Pipeline: OneHotEncoder (2 string columns, 34 categories) + SimpleImputer/StandardScaler "
                "(3 numeric) + LogisticRegression")
    model.fit(x, y)
    # The types skops distrusts in this model, as MLflow's refusal asks the user to list them.
    trusted = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    mlflow.sklearn.save_model(model, str(model_dir), pip_requirements=[f"scikit-learn=={sklearn.__version__}"],
                              **({"skops_trusted_types": trusted} if trusted else {}), **common)
    return model, probe, what


def body(frame: pd.DataFrame) -> bytes:
    rows = [[None if isinstance(v, float) and np.isnan(v) else (int(v) if isinstance(v, np.integer) else v)
             for v in row] for row in frame.astype(object).itertuples(index=False)]
    return json.dumps({"dataframe_split": {"columns": list(frame.columns), "data": rows}}).encode()


def same_values(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    if a.dtype.kind in "OUS" or b.dtype.kind in "OUS":
        return a.astype(str).tolist() == b.astype(str).tolist()
    return bool(np.allclose(a.astype(float), b.astype(float), rtol=1e-6, atol=1e-12, equal_nan=True))


def framework_predict_ms(model, frame: pd.DataFrame, one_thread: bool = False, budget_s: float = 2.0) -> float:
    if one_thread:
        from threadpoolctl import threadpool_limits

        saved = model.get_params().get("n_jobs", "absent") if hasattr(model, "get_params") else "absent"
        if saved != "absent":
            model.set_params(n_jobs=1)  # XGBoost and forests take it from here, not from OpenMP's limit
        try:
            with threadpool_limits(1):
                return framework_predict_ms(model, frame, False, budget_s)
        finally:
            if saved != "absent":
                model.set_params(n_jobs=saved)
    model.predict(frame)  # warm-up
    times = []
    deadline = time.perf_counter() + budget_s
    while len(times) < 5 or (time.perf_counter() < deadline and len(times) < 200):
        t0 = time.perf_counter()
        model.predict(frame)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


# ------------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wasmflow", required=True)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--seconds", type=int, default=3, help="seconds of load per cell")
    ap.add_argument("--connections", default="1,8")
    ap.add_argument("--models", default="rf,hgb,pipeline,xgb")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("error: wrk is not on PATH (scripts/bench_flavors.sh installs it)")
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.log"):
        old.unlink()
    pgids = out / "pgids"
    pgids.write_text("")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    warnings.simplefilter("ignore")
    conns = [int(c) for c in args.connections.split(",")]
    kinds = [k.strip() for k in args.models.split(",") if k.strip()]
    load_at_start = load_average()

    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "WASMFLOW_"))}
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    rows_md, predict_md, notes = [], [], []
    for kind in kinds:
        model_dir = out / "models" / kind
        log(f"{kind}: training and saving to {model_dir}")
        model, probe, what = build(kind, model_dir)
        bodies = {}
        for label, n in (("1 row", 1), ("1,000 rows", ROWS)):
            path = out / f"{kind}-{n}.json"
            path.write_bytes(body(probe[:n]))
            lua = out / f"{kind}-{n}.lua"
            lua.write_text(LUA.replace("{path}", str(path)))
            bodies[label] = (path, lua)
        want = model.predict(probe)
        variants = [
            Variant("wasmflow", [args.wasmflow, "models", "serve", "-m", str(model_dir), "--host", "127.0.0.1", "-p", "{port}",
                                 "--plugins-dir", str(out / "plugins")],
                    {**env, "WASMFLOW_PLUGIN_CACHE_DIR": str(out / "plugin-cache"), "RUST_LOG": "info"},
                    "one instance per core", True),
            Variant("mlflow", [str(Path(sys.executable).parent / "mlflow"), "models", "serve", "-m", str(model_dir),
                               "--env-manager", "local", "-h", "127.0.0.1", "-p", "{port}", "-w", "1"],
                    env, "1 uvicorn worker (its default)", False),
        ]
        loads, answers = {}, {}
        for v in variants:
            s = Server(v, out, pgids)
            try:
                started = s.start()
                log(f"{kind}: {v.label} up in {started:.2f} s")
                status, text = http_request(s.port, "POST", "/invocations", bodies["1,000 rows"][0].read_bytes())
                if status != 200:
                    raise RuntimeError(f"{kind}: {v.label}: HTTP {status}: {text[:400]!r}")
                answers[v.label] = text
                if not same_values(json.loads(text)["predictions"], want):
                    raise RuntimeError(f"{kind}: {v.label}'s predictions differ from the framework's")
                run_wrk(s, bodies["1 row"][1], 1, 1)  # warm-up
                for label in bodies:
                    for c in conns:
                        loads[(v.label, label, c)] = load = run_wrk(s, bodies[label][1], c, args.seconds)
                        log(f"{kind}: {v.label}: {label}, {c} conn: {load.rps:.1f} req/s, p50 {load.p50_ms:.2f} ms, "
                            f"p99 {load.p99_ms:.2f} ms; load average {load_average()}")
            finally:
                s.stop()
        identical = answers["wasmflow"] == answers["mlflow"]
        notes.append(f"- {kind}: {what}; the 1,000-row answers are {'byte-identical' if identical else 'equal in value (not byte-identical)'}")
        for label in bodies:
            for c in conns:
                w, m = loads[("wasmflow", label, c)], loads[("mlflow", label, c)]
                rows_md.append(f"| {kind} | {label} | {c} | {fmt_rate(w.rps)} | {fmt_rate(m.rps)} | **{w.rps / m.rps:,.1f}×** | "
                               f"{fmt_ms(w.p50_ms)} / {fmt_ms(w.p99_ms)} | {fmt_ms(m.p50_ms)} / {fmt_ms(m.p99_ms)} |")
        fw = framework_predict_ms(model, probe)
        fw1 = framework_predict_ms(model, probe, one_thread=True)
        c1 = min(conns)
        wasm_bound = loads[("wasmflow", "1,000 rows", c1)].p50_ms - loads[("wasmflow", "1 row", c1)].p50_ms
        mlflow_diff = loads[("mlflow", "1,000 rows", c1)].p50_ms - loads[("mlflow", "1 row", c1)].p50_ms
        predict_md.append(f"| {kind} | {fmt_ms(wasm_bound)} | {fmt_ms(fw)} | {fmt_ms(fw1)} | {fw / wasm_bound:,.1f}× / {fw1 / wasm_bound:,.1f}× | {fmt_ms(mlflow_diff)} |")
        log(f"{kind}: predict 1,000 rows: wasm ≤ {wasm_bound:.2f} ms, framework {fw:.2f} ms ({fw1:.2f} ms on 1 thread), "
            f"mlflow server {mlflow_diff:.2f} ms")

    text = "\n".join([
        "# Flavors serving benchmark", "",
        f"- {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.cpu_count()} cores ({platform_cpu()}); "
        f"load average (1/5/15 min) at the start {load_at_start}, at the end {load_average()}",
        "- servers: `wasmflow models serve` (one Wasm instance per core) and `mlflow models serve --env-manager local -w 1` "
        "(its default), each on the same model directory, one after the other",
        f"- load: wrk, {args.seconds} s per cell after a 1 s warm-up, POST /invocations with a dataframe_split body "
        "(NaN sent as null); both servers checked against the framework's predictions first",
        *notes, "",
        "| model | rows | conn | wasmflow req/s | mlflow req/s | ratio | wasmflow p50 / p99 ms | mlflow p50 / p99 ms |",
        "|---|---|---|---|---|---|---|---|", *rows_md, "",
        f"Predict time for 1,000 rows (ms). Wasm: the server's 1,000-row p50 minus its 1-row p50 at {min(conns)} connection, "
        "an upper bound of the plugin's predict (it includes parsing and writing 999 more rows). Framework: the "
        "estimator's own `predict` on the same rows as a DataFrame in Python (median of repeated calls), with its "
        "default threads and on one thread (as one Wasm instance runs).", "",
        "| model | Wasm (upper bound) | framework predict | framework predict, 1 thread | framework / Wasm (default / 1 thread) | mlflow server, same difference |",
        "|---|---|---|---|---|---|", *predict_md, "",
    ])
    (out / "report.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
