"""`/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval`, the sampled histories MLflow's UI
(and wasmflow's chart view) draws: the same histories are logged to wasmflow and to MLflow's own
SQL store (`SqlAlchemyStore` on SQLite, in this process), and wasmflow must answer the points
MLflow's store samples, for whole histories and step ranges, long and short runs, repeated steps."""

from __future__ import annotations

import uuid

import mlflow
import pytest
import requests
from mlflow.entities import Metric
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

URL = "/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval"


def histories():
    """Three runs: 1,000 steps, 37 steps with some logged twice, and steps from -5."""
    t0 = 1_700_000_000_000
    long = [Metric("loss", 1.0 / (1 + s), t0 + s, s) for s in range(1000)]
    repeated = [Metric("loss", float(s % 7), t0 + 10 * s, s) for s in range(37)]
    repeated += [Metric("loss", float(s) + 0.5, t0 + 10 * s + 1, s) for s in range(0, 37, 4)]
    negative = [Metric("loss", float(s * s), t0 + s, s) for s in range(-5, 300)]
    return [long, repeated, negative]


@pytest.fixture(scope="module")
def both(tmp_path_factory, server):
    """Run ids in wasmflow and in MLflow's store, with the same histories, and MLflow's store."""
    client = mlflow.MlflowClient(tracking_uri=server.url)
    tmp = tmp_path_factory.mktemp("mlflow-store")
    store = SqlAlchemyStore(f"sqlite:///{tmp}/mlflow.db", str(tmp / "artifacts"))
    theirs_exp = store.create_experiment("bulk-interval")
    ours_exp = client.create_experiment(f"bulk-interval-{uuid.uuid4().hex[:8]}")
    ours, theirs = [], []
    for points in histories():
        ours_run = client.create_run(ours_exp).info.run_id
        theirs_run = store.create_run(theirs_exp, "user", 0, [], "r").info.run_id
        for i in range(0, len(points), 1000):
            client.log_batch(ours_run, metrics=points[i : i + 1000])
            store.log_batch(theirs_run, metrics=points[i : i + 1000], params=[], tags=[])
        ours.append(ours_run)
        theirs.append(theirs_run)
    return ours, theirs, store


@pytest.mark.parametrize(
    "max_results,steps",
    [(None, None), (320, None), (7, None), (1, None), (50, (10, 500)), (3, (-5, 2)), (2500, (0, 0))],
)
def test_sampling_matches_mlflow(base_url, both, max_results, steps):
    ours, theirs, store = both
    query = [("run_ids", r) for r in ours] + [("metric_key", "loss")]
    if max_results is not None:
        query.append(("max_results", str(max_results)))
    if steps is not None:
        query += [("start_step", str(steps[0])), ("end_step", str(steps[1]))]
    r = requests.get(f"{base_url}{URL}", params=query)
    assert r.status_code == 200, r.text
    got = r.json()["metrics"]
    expected = store.get_metric_history_bulk_interval(
        run_ids=theirs,
        metric_key="loss",
        max_results=max_results or 2500,
        start_step=steps[0] if steps else None,
        end_step=steps[1] if steps else None,
    )
    run_of = dict(zip(theirs, ours))
    want = [(run_of[m.run_id], m.step, m.timestamp, m.value) for m in expected]
    have = [(m["run_id"], int(m["step"]), int(m["timestamp"]), m["value"]) for m in got]
    assert have == want
    assert all(m["key"] == "loss" for m in got)


def test_bad_requests_answer_as_mlflow(base_url, both):
    ours, _, _ = both
    cases = [
        ([("metric_key", "loss")], "run_ids"),
        ([("run_ids", ours[0]), ("metric_key", "loss"), ("max_results", "2501")], "max_results must be between 1 and 2500."),
        ([("run_ids", ours[0]), ("metric_key", "loss"), ("start_step", "1")], "If either start step or end step are specified, both must be specified."),
        ([("run_ids", ours[0]), ("metric_key", "loss"), ("start_step", "5"), ("end_step", "1")], "end_step must be greater than start_step. Found start_step=5 and end_step=1."),
        ([("run_ids", f"{i:032x}") for i in range(101)] + [("metric_key", "loss")], "at most 100 run_ids. Received 101 run_ids."),
    ]
    for query, message in cases:
        r = requests.get(f"{base_url}{URL}", params=query)
        assert r.status_code == 400, r.text
        assert r.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        assert message in r.json()["message"]
