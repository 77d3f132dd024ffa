"""Seeds what the editing checks (editing.mjs) need, with the official mlflow client: an
experiment with a markdown description (hostile parts included) and tags, a run with a logged
dataset and a markdown note, a run to delete and restore, an experiment without runs, and a
registered model without versions. Called by seed.py; returns what the pages must show."""

import mlflow
import pandas as pd
from mlflow import MlflowClient

# Markdown a page must render, and HTML and a link a page must not execute.
EXPERIMENT_NOTE = """Predicts **churn** from usage, see [the docs](https://mlflow.org/docs/latest/).

<script>window.__xss = 'script'</script>
<img src="x" onerror="window.__xss = 'img'">
[click me](javascript:window.__xss='link')

| split | rows |
|-------|------|
| train | 4    |
"""
RUN_NOTE = "Trained on the **churn** table.\n\n- first item\n- second item\n"


def seed(uri: str) -> dict:
    client = MlflowClient(uri)
    out: dict = {}
    exp_id = mlflow.create_experiment("ui-notes", tags={"team": "growth", "owner": "ana", "mlflow.note.content": EXPERIMENT_NOTE})
    out["notes_experiment_id"] = exp_id
    mlflow.set_experiment(experiment_id=exp_id)
    frame = pd.DataFrame({"tenure": [1.0, 12.0, 30.0, 2.0], "plan": ["a", "b", "b", "a"], "churned": [1, 0, 0, 1]})
    dataset = mlflow.data.from_pandas(frame, source="https://example.com/data/churn.csv", name="churn-train", targets="churned")
    with mlflow.start_run(run_name="with-data") as run:
        mlflow.log_input(dataset, context="training")
        mlflow.log_param("model", "logreg")
        mlflow.set_tag("mlflow.note.content", RUN_NOTE)
        mlflow.set_tag("stage", "draft")
        out["data_run_id"] = run.info.run_id
    out["dataset"] = {"name": "churn-train", "digest": dataset.digest, "context": "training", "source": "https://example.com/data/churn.csv", "columns": ["tenure", "plan", "churned"]}
    with mlflow.start_run(run_name="scratch") as run:
        mlflow.log_metric("loss", 1.0)
        out["scratch_run_id"] = run.info.run_id
    out["empty_experiment_id"] = mlflow.create_experiment("ui-empty")
    client.create_registered_model("ui-no-versions")
    out["no_versions_model"] = "ui-no-versions"
    return out
