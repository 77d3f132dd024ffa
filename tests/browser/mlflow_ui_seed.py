"""Seeds a wasmflow server for MLflow's own UI (mlflow_ui.mjs) with the official mlflow client.

Usage: mlflow_ui_seed.py <tracking-uri> <out.json>

One experiment with two runs (params, tags, a metric with history, artifacts, a dataset input),
a logged sklearn model registered as two versions of one model with an alias. Writes the ids and
names the pages must show to out.json.
"""

import json
import math
import sys

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.models import infer_signature
from sklearn.linear_model import LogisticRegression


def main() -> None:
    uri, out_path = sys.argv[1], sys.argv[2]
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    exp_id = mlflow.create_experiment("mlflow-ui-demo")
    mlflow.set_experiment(experiment_id=exp_id)
    x = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    y = np.array([0, 1, 1, 0])
    frame = pd.DataFrame(x, columns=["a", "b"]).assign(label=y)
    dataset = mlflow.data.from_pandas(frame, name="toy-data", targets="label")
    model = LogisticRegression().fit(x, y)
    runs = {}
    model_ids = {}
    for i, (name, lr) in enumerate([("alpha-run", 0.1), ("beta-run", 0.05)]):
        with mlflow.start_run(run_name=name) as run:
            mlflow.log_params({"lr": lr, "optimizer": "adam"})
            mlflow.set_tag("team", "vision")
            for step in range(20):
                mlflow.log_metric("train_loss", 2.0 * math.exp(-lr * 3 * step) + 0.01 * i, step=step)
            mlflow.log_metric("val_accuracy", 0.7 + 0.1 * i)
            mlflow.log_input(dataset, context="training")
            mlflow.log_text("epoch,loss\n0,1.5\n1,0.9\n", "data/history.csv")
            info = mlflow.sklearn.log_model(model, name="model", signature=infer_signature(x, model.predict(x)),
                                            registered_model_name="mlflow-ui-classifier",
                                            # Named, so the client skips inferring them (~15 s a model).
                                            pip_requirements=["scikit-learn"])
            runs[name] = run.info.run_id
            model_ids[name] = info.model_id
    client.set_registered_model_alias("mlflow-ui-classifier", "champion", "1")
    client.set_model_version_tag("mlflow-ui-classifier", "1", "reviewed", "yes")
    out = {
        "experiment_id": exp_id,
        "experiment_name": "mlflow-ui-demo",
        "runs": runs,
        "model_ids": model_ids,
        "metric": "train_loss",
        "model": "mlflow-ui-classifier",
        "alias": "champion",
        "artifact": "data/history.csv",
        "dataset": "toy-data",
    }
    with open(out_path, "w") as f:
        json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
