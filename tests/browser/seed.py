"""Seeds a wasmflow server for the browser suite with the official mlflow client.

Usage: seed.py <tracking-uri> <out.json> [big-runs]

Writes what the pages must show (ids, names, values) to out.json for run.mjs to check.
"""

import json
import math
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import mlflow
import numpy as np
import requests
from mlflow import MlflowClient
from mlflow.models import infer_signature
from skl2onnx import to_onnx
from sklearn.linear_model import LinearRegression, LogisticRegression

import seed_editing
import seed_genai


def main() -> None:
    uri, out_path = sys.argv[1], sys.argv[2]
    big_runs = int(sys.argv[3]) if len(sys.argv) > 3 else 10_000
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    out: dict = {}
    # Traces, assessments and a prompt (genai.mjs), first so the other experiments stay newer.
    out["genai"] = seed_genai.seed(uri)

    exp_id = mlflow.create_experiment("ui-demo")
    out["experiment_id"] = exp_id
    mlflow.set_experiment(experiment_id=exp_id)
    runs = {}
    for i, (name, lr, layers) in enumerate([("baseline", 0.1, 2), ("wide", 0.05, 4), ("deep", 0.01, 8)]):
        with mlflow.start_run(run_name=name) as run:
            mlflow.log_params({"lr": lr, "layers": layers, "optimizer": "adam"})
            mlflow.set_tag("team", "vision")
            steps = 50 + 10 * i
            t0 = int(time.time() * 1000)
            for step in range(steps):
                loss = 2.0 * math.exp(-lr * 3 * step) + 0.01 * (i + 1)
                mlflow.log_metric("loss", loss, step=step, timestamp=t0 + 1000 * step)
            acc = round(0.7 + 0.1 * i, 4)
            mlflow.log_metric("accuracy", acc, step=steps - 1)
            runs[name] = {"run_id": run.info.run_id, "loss_points": steps, "accuracy": acc, "lr": str(lr)}
            if name == "baseline":
                mlflow.set_tag("mlflow.note.content", "The first try.")
                mlflow.log_text("epoch,loss,accuracy\n0,1.5,0.61\n1,0.9,0.72\n2,0.7,0.78\n", "data/history.csv")
                mlflow.log_dict({"optimizer": "adam", "lr": lr, "layers": [64, 32]}, "config/params.json")
                mlflow.log_text("optimizer: adam\nlr: 0.1\n", "config/params.yaml")
                mlflow.log_text("training finished\n", "logs/train.log")
                gradient = np.tile(np.linspace(0, 255, 64, dtype=np.uint8), (48, 1))
                mlflow.log_image(np.stack([gradient, gradient[::-1], np.full_like(gradient, 128)], axis=-1), "plots/gradient.png")
                with mlflow.start_run(run_name="baseline-fold-1", nested=True) as child:
                    mlflow.log_metric("loss", 0.5)
                    runs["baseline-fold-1"] = {"run_id": child.info.run_id}
    out["runs"] = runs

    # A registered model with two versions from real logged models, an alias and a stage.
    x = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    y = np.array([0, 1, 1, 0])
    model = LogisticRegression().fit(x, y)
    for run_name in ("baseline", "wide"):
        with mlflow.start_run(run_id=runs[run_name]["run_id"]):
            mlflow.sklearn.log_model(model, name="model", signature=infer_signature(x, model.predict(x)), registered_model_name="ui-classifier")
    # A model saved by hand and logged as plain files: the run page previews its MLmodel.
    with tempfile.TemporaryDirectory() as tmp, mlflow.start_run(run_id=runs["baseline"]["run_id"]):
        mlflow.sklearn.save_model(model, f"{tmp}/model", signature=infer_signature(x, model.predict(x)))
        mlflow.log_artifacts(f"{tmp}/model", "exported-model")
    client.set_registered_model_alias("ui-classifier", "champion", "1")
    client.transition_model_version_stage("ui-classifier", "1", "Staging")
    out["model"] = {"name": "ui-classifier", "versions": ["1", "2"], "alias": "champion", "alias_version": "1"}

    # An ONNX model served by the server's serving path, so /metrics has a version to report.
    xf = x.astype(np.float32)
    regression = LinearRegression().fit(xf, np.array([1.0, 2.0, 3.0, 0.0]))
    with mlflow.start_run(run_id=runs["deep"]["run_id"]):
        mlflow.onnx.log_model(to_onnx(regression, xf), name="onnx-model", registered_model_name="ui-onnx")
    for _ in range(5):
        r = requests.post(f"{uri}/serving/models/ui-onnx/1/invocations", json={"inputs": xf.tolist()}, timeout=120)
        r.raise_for_status()
    out["served"] = {"model": "ui-onnx", "version": "1", "requests": 5}

    # The big experiment, through the REST API in parallel (the client would take minutes).
    big_id = mlflow.create_experiment("ui-big")
    out["big_experiment_id"] = big_id
    api = f"{uri}/api/2.0/mlflow"
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_connections=8, pool_maxsize=8)
    session.mount("http://", adapter)
    started = time.time()

    def one(i: int) -> None:
        r = session.post(f"{api}/runs/create", json={"experiment_id": big_id, "run_name": f"big-{i:05d}", "start_time": 1_700_000_000_000 + i})
        r.raise_for_status()
        run_id = r.json()["run"]["info"]["run_id"]
        session.post(f"{api}/runs/log-batch", json={
            "run_id": run_id,
            "params": [{"key": "i", "value": str(i)}, {"key": "group", "value": f"g{i % 10}"}],
            "metrics": [{"key": "score", "value": (i * 7919) % 10_000 / 10_000, "timestamp": 1_700_000_000_000, "step": 0}],
        }).raise_for_status()

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(big_runs)))
    out["big_runs"] = big_runs
    # The editing checks' experiments, newest so they head the experiments list.
    out["editing"] = seed_editing.seed(uri)
    out["big_seed_seconds"] = round(time.time() - started, 1)
    seed_long_runs(uri, out)
    with open(out_path, "w") as f:
        json.dump(out, f, indent=2)


def seed_long_runs(uri: str, out: dict, runs: int = 100, points: int = 10_000) -> None:
    """The chart view's load test: `runs` runs of `points` steps each, logged with log-batch
    (1,000 metrics a request, MLflow's limit) through the REST API in parallel."""
    exp_id = MlflowClient(uri).create_experiment("ui-long")
    api = f"{uri}/api/2.0/mlflow"
    session = requests.Session()
    session.mount("http://", requests.adapters.HTTPAdapter(pool_connections=8, pool_maxsize=8))
    started = time.time()
    t0 = 1_700_000_000_000

    def one(i: int) -> None:
        r = session.post(f"{api}/runs/create", json={"experiment_id": exp_id, "run_name": f"long-{i:03d}", "start_time": t0 + i})
        r.raise_for_status()
        run_id = r.json()["run"]["info"]["run_id"]
        session.post(f"{api}/runs/log-batch", json={"run_id": run_id, "params": [{"key": "seed", "value": str(i)}]}).raise_for_status()
        for lo in range(0, points, 1000):
            batch = [
                {"key": "loss", "value": math.exp(-step / 2000) + 0.05 * math.sin(step / 50 + i), "timestamp": t0 + 100 * step, "step": step}
                for step in range(lo, min(lo + 1000, points))
            ]
            session.post(f"{api}/runs/log-batch", json={"run_id": run_id, "metrics": batch}).raise_for_status()

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(runs)))
    out["long"] = {"experiment_id": exp_id, "runs": runs, "points": points, "seed_seconds": round(time.time() - started, 1)}


if __name__ == "__main__":
    main()
