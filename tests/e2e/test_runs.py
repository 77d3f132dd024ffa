"""Runs through the official client: lifecycle, logging, metric history, search and datasets."""

from __future__ import annotations

import math
import time

import mlflow
import mlflow.data
import numpy as np
import pandas as pd
import pytest
import requests
from mlflow.entities import Metric, Param, RunStatus, RunTag, ViewType
from mlflow.exceptions import MlflowException

# MLflow's SQL store keeps +/-inf as the largest finite doubles (sqlalchemy_store.sanitize_metric_value).
DBL_MAX = 1.7976931348623157e308


def now_ms() -> int:
    return int(time.time() * 1000)


# --------------------------------------------------------------------------------------------------
# Lifecycle


def test_start_and_end_run(client, experiment_id):
    before = now_ms()
    with mlflow.start_run(run_name="first-run") as run:
        run_id = run.info.run_id
        live = client.get_run(run_id)
        assert live.info.status == "RUNNING"
        assert live.info.lifecycle_stage == "active"
        assert live.info.experiment_id == experiment_id
        assert live.info.run_name == "first-run"
        assert live.data.tags["mlflow.runName"] == "first-run"
        assert live.info.end_time is None
        assert before - 5000 <= live.info.start_time <= now_ms() + 5000
        assert mlflow.active_run().info.run_id == run_id
    assert mlflow.active_run() is None

    done = client.get_run(run_id)
    assert done.info.status == "FINISHED"
    assert done.info.end_time is not None
    assert done.info.end_time >= done.info.start_time
    assert len(run_id) == 32 and all(c in "0123456789abcdef" for c in run_id)
    assert done.info.artifact_uri, "a run must have an artifact URI"


def test_run_failing_inside_context_is_marked_failed(client, experiment_id):
    with pytest.raises(RuntimeError):
        with mlflow.start_run() as run:
            raise RuntimeError("boom")
    assert client.get_run(run.info.run_id).info.status == "FAILED"


def test_nested_runs(client, experiment_id):
    with mlflow.start_run(run_name="parent") as parent:
        with mlflow.start_run(run_name="child-1", nested=True) as child1:
            pass
        with mlflow.start_run(run_name="child-2", nested=True) as child2:
            with mlflow.start_run(run_name="grandchild", nested=True) as grandchild:
                pass
    pid = parent.info.run_id
    c1 = client.get_run(child1.info.run_id)
    c2 = client.get_run(child2.info.run_id)
    gc = client.get_run(grandchild.info.run_id)
    assert c1.data.tags["mlflow.parentRunId"] == pid
    assert c2.data.tags["mlflow.parentRunId"] == pid
    assert gc.data.tags["mlflow.parentRunId"] == child2.info.run_id
    assert "mlflow.parentRunId" not in client.get_run(pid).data.tags
    for r in (c1, c2, gc):
        assert r.info.status == "FINISHED"

    children = client.search_runs([experiment_id], filter_string=f"tags.mlflow.parentRunId = '{pid}'")
    assert {r.info.run_id for r in children} == {child1.info.run_id, child2.info.run_id}
    assert client.get_parent_run(child1.info.run_id).info.run_id == pid


def test_log_param_metric_tag_and_get_run(client, experiment_id):
    with mlflow.start_run() as run:
        mlflow.log_param("lr", 0.1)
        mlflow.log_params({"depth": 5, "optimizer": "adam"})
        mlflow.log_metric("acc", 0.5, step=0)
        mlflow.log_metric("acc", 0.75, step=1)
        mlflow.log_metrics({"loss": 1.25, "f1": 0.3})
        mlflow.set_tag("team", "alpha")
        mlflow.set_tags({"owner": "me", "note": "ünïcödé ✓"})
    data = client.get_run(run.info.run_id).data
    assert data.params == {"lr": "0.1", "depth": "5", "optimizer": "adam"}
    # Run data carries the latest value (highest step) of each metric.
    assert data.metrics == {"acc": 0.75, "loss": 1.25, "f1": 0.3}
    assert data.tags["team"] == "alpha"
    assert data.tags["owner"] == "me"
    assert data.tags["note"] == "ünïcödé ✓"


def test_latest_metric_is_by_step_then_timestamp(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    t = now_ms()
    client.log_metric(run_id, "m", 10.0, timestamp=t, step=5)
    client.log_metric(run_id, "m", 20.0, timestamp=t + 100, step=1)  # later but lower step
    client.log_metric(run_id, "m", 30.0, timestamp=t - 100, step=5)  # same step, older
    assert client.get_run(run_id).data.metrics["m"] == 10.0
    client.log_metric(run_id, "m", 40.0, timestamp=t + 1, step=5)  # same step, newer
    assert client.get_run(run_id).data.metrics["m"] == 40.0


def test_log_param_same_value_twice_is_idempotent(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    client.log_param(run_id, "p", "same")
    client.log_param(run_id, "p", "same")
    assert client.get_run(run_id).data.params == {"p": "same"}


def test_log_batch(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    t = now_ms()
    client.log_batch(
        run_id,
        metrics=[Metric("m1", 1.0, t, 0), Metric("m1", 2.0, t + 1, 1), Metric("m2", -3.5, t, 7)],
        params=[Param("p1", "a"), Param("p2", "b")],
        tags=[RunTag("t1", "x"), RunTag("t2", "")],
    )
    run = client.get_run(run_id)
    assert run.data.metrics == {"m1": 2.0, "m2": -3.5}
    assert run.data.params == {"p1": "a", "p2": "b"}
    assert run.data.tags["t1"] == "x"
    assert run.data.tags["t2"] == ""
    hist = client.get_metric_history(run_id, "m1")
    assert [(m.step, m.value, m.timestamp) for m in hist] == [(0, 1.0, t), (1, 2.0, t + 1)]
    (m2,) = client.get_metric_history(run_id, "m2")
    assert (m2.key, m2.value, m2.step, m2.timestamp) == ("m2", -3.5, 7, t)


def test_metric_history_basic(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    t = now_ms()
    values = [(t + i, i, float(i) / 3) for i in range(25)]
    for ts, step, v in values:
        client.log_metric(run_id, "curve", v, timestamp=ts, step=step)
    hist = client.get_metric_history(run_id, "curve")
    assert [(m.timestamp, m.step, m.value) for m in hist] == values
    assert all(m.key == "curve" for m in hist)
    assert client.get_metric_history(run_id, "never-logged") == []


def test_metric_history_many_pages(client, experiment_id):
    """30,000 points span more than one page of get-history (the client pages by 25,000)."""
    run_id = client.create_run(experiment_id).info.run_id
    t0 = now_ms()
    n = 30_000
    expected = [(t0 + i // 10, i, math.sin(i / 100.0)) for i in range(n)]
    for start in range(0, n, 1000):
        chunk = expected[start : start + 1000]
        client.log_batch(run_id, metrics=[Metric("big", v, ts, s) for ts, s, v in chunk])

    hist = client.get_metric_history(run_id, "big")
    got = [(m.timestamp, m.step, m.value) for m in hist]
    assert len(got) == n
    # MLflow orders history by (timestamp, step, value).
    assert got == sorted(expected)
    assert client.get_run(run_id).data.metrics["big"] == pytest.approx(expected[-1][2])


def test_metric_history_rest_paging(client, experiment_id, api):
    """Small explicit pages over the REST API: every point exactly once, a final page without token."""
    run_id = client.create_run(experiment_id).info.run_id
    t0 = now_ms()
    expected = [(t0, i, float(i)) for i in range(2500)]
    for start in range(0, len(expected), 1000):
        client.log_batch(
            run_id, metrics=[Metric("h", v, ts, s) for ts, s, v in expected[start : start + 1000]]
        )
    got = []
    token = None
    pages = 0
    while True:
        params = {"run_id": run_id, "metric_key": "h", "max_results": 1000}
        if token:
            params["page_token"] = token
        r = requests.get(api("metrics/get-history"), params=params, timeout=60)
        assert r.status_code == 200, r.text
        body = r.json()
        metrics = body.get("metrics", [])
        assert len(metrics) <= 1000
        got.extend((int(m["timestamp"]), int(m["step"]), float(m["value"])) for m in metrics)
        pages += 1
        token = body.get("next_page_token")
        if not token:
            break
        assert pages < 10
    assert pages == 3
    assert got == expected


def test_nan_and_inf_metrics(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    t = now_ms()
    client.log_metric(run_id, "nan", float("nan"), timestamp=t, step=0)
    client.log_metric(run_id, "pinf", float("inf"), timestamp=t, step=0)
    client.log_metric(run_id, "ninf", float("-inf"), timestamp=t, step=0)
    client.log_batch(
        run_id,
        metrics=[
            Metric("mixed", 1.0, t, 0),
            Metric("mixed", float("nan"), t, 1),
            Metric("mixed", float("inf"), t, 2),
            Metric("mixed", 2.0, t, 3),
        ],
    )
    metrics = client.get_run(run_id).data.metrics
    assert math.isnan(metrics["nan"])
    assert metrics["pinf"] == DBL_MAX
    assert metrics["ninf"] == -DBL_MAX
    assert metrics["mixed"] == 2.0

    (nan,) = client.get_metric_history(run_id, "nan")
    assert math.isnan(nan.value)
    (pinf,) = client.get_metric_history(run_id, "pinf")
    assert pinf.value == DBL_MAX
    (ninf,) = client.get_metric_history(run_id, "ninf")
    assert ninf.value == -DBL_MAX
    mixed = client.get_metric_history(run_id, "mixed")
    assert [m.step for m in mixed] == [0, 1, 2, 3]
    assert mixed[0].value == 1.0
    assert math.isnan(mixed[1].value)
    assert mixed[2].value == DBL_MAX
    assert mixed[3].value == 2.0


def test_set_terminated_statuses(client, experiment_id):
    for status in ("FINISHED", "FAILED", "KILLED"):
        run_id = client.create_run(experiment_id).info.run_id
        client.set_terminated(run_id, status=status)
        info = client.get_run(run_id).info
        assert info.status == status
        assert info.end_time is not None and info.end_time >= info.start_time

    run_id = client.create_run(experiment_id).info.run_id
    client.set_terminated(run_id, status="FINISHED", end_time=now_ms() + 12345)
    info = client.get_run(run_id).info
    assert info.status == "FINISHED"
    assert info.end_time > now_ms()

    # update_run: status and name.
    run_id = client.create_run(experiment_id, run_name="before").info.run_id
    client.update_run(run_id, status="SCHEDULED", name="after")
    run = client.get_run(run_id)
    assert run.info.status == RunStatus.to_string(RunStatus.SCHEDULED)
    assert run.info.run_name == "after"
    assert run.data.tags["mlflow.runName"] == "after"


def test_logging_to_finished_run_is_allowed(client, experiment_id):
    """MLflow only refuses writes to *deleted* runs, not to terminated ones."""
    run_id = client.create_run(experiment_id).info.run_id
    client.set_terminated(run_id, "FINISHED")
    client.log_metric(run_id, "late", 1.0)
    client.log_param(run_id, "late_p", "1")
    client.set_tag(run_id, "late_t", "1")
    data = client.get_run(run_id).data
    assert data.metrics["late"] == 1.0
    assert data.params["late_p"] == "1"
    assert data.tags["late_t"] == "1"


def test_delete_and_restore_run(client, experiment_id):
    keep = client.create_run(experiment_id).info.run_id
    gone = client.create_run(experiment_id).info.run_id
    client.delete_run(gone)
    assert client.get_run(gone).info.lifecycle_stage == "deleted"

    active = {r.info.run_id for r in client.search_runs([experiment_id])}
    assert active == {keep}
    deleted = client.search_runs([experiment_id], run_view_type=ViewType.DELETED_ONLY)
    assert [r.info.run_id for r in deleted] == [gone]
    every = {r.info.run_id for r in client.search_runs([experiment_id], run_view_type=ViewType.ALL)}
    assert every == {keep, gone}

    client.restore_run(gone)
    assert client.get_run(gone).info.lifecycle_stage == "active"
    assert {r.info.run_id for r in client.search_runs([experiment_id])} == {keep, gone}
    assert client.search_runs([experiment_id], run_view_type=ViewType.DELETED_ONLY) == []


def test_delete_tag(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    client.set_tag(run_id, "a", "1")
    client.set_tag(run_id, "b", "2")
    client.delete_tag(run_id, "a")
    tags = client.get_run(run_id).data.tags
    assert "a" not in tags
    assert tags["b"] == "2"
    with pytest.raises(MlflowException) as exc:
        client.delete_tag(run_id, "a")
    assert exc.value.error_code == "RESOURCE_DOES_NOT_EXIST"


# --------------------------------------------------------------------------------------------------
# Search


@pytest.fixture
def search_runs_fixture(client, experiment_id):
    """Five runs with distinct metrics, params, tags, names and statuses."""
    spec = [
        # name,        acc,  loss, lr,     team,    status
        ("alpha-one", 0.9, 0.1, "0.1", "apollo", "FINISHED"),
        ("alpha-two", 0.7, 0.3, "0.01", "artemis", "FINISHED"),
        ("Beta-Three", 0.6, 0.4, "0.1", "borealis", "FAILED"),
        ("beta-four", 0.2, 0.8, "0.1", "apollo", "RUNNING"),
        ("gamma-five", 0.4, 0.6, "0.001", "ceres", "KILLED"),
    ]
    ids = {}
    t = now_ms()
    for name, acc, loss, lr, team, status in spec:
        run_id = client.create_run(experiment_id, run_name=name).info.run_id
        client.log_batch(
            run_id,
            metrics=[Metric("acc", acc, t, 0), Metric("loss", loss, t, 0)],
            params=[Param("lr", lr)],
            tags=[RunTag("team", team)],
        )
        if status != "RUNNING":
            client.set_terminated(run_id, status)
        ids[name] = run_id
    return experiment_id, ids


def _names(runs):
    return {r.info.run_name for r in runs}


def test_search_runs_filters(client, search_runs_fixture):
    exp, ids = search_runs_fixture

    def names(flt):
        return _names(client.search_runs([exp], filter_string=flt))

    assert names("metrics.acc > 0.5 and params.lr = '0.1'") == {"alpha-one", "Beta-Three"}
    assert names("metrics.acc >= 0.7") == {"alpha-one", "alpha-two"}
    assert names("metrics.loss < 0.4") == {"alpha-one", "alpha-two"}
    assert names("metrics.loss <= 0.4") == {"alpha-one", "alpha-two", "Beta-Three"}
    assert names("metrics.acc = 0.2") == {"beta-four"}
    assert names("metrics.acc != 0.2") == {"alpha-one", "alpha-two", "Beta-Three", "gamma-five"}
    assert names("params.lr != '0.1'") == {"alpha-two", "gamma-five"}
    assert names("params.lr LIKE '0.0%'") == {"alpha-two", "gamma-five"}
    assert names("tags.team LIKE 'a%'") == {"alpha-one", "alpha-two", "beta-four"}
    assert names("tags.team = 'apollo'") == {"alpha-one", "beta-four"}
    assert names("tags.team ILIKE 'A%'") == {"alpha-one", "alpha-two", "beta-four"}
    assert names("attributes.status = 'FINISHED'") == {"alpha-one", "alpha-two"}
    assert names("attributes.status != 'FINISHED'") == {"Beta-Three", "beta-four", "gamma-five"}
    assert names("attributes.run_name ILIKE 'beta%'") == {"Beta-Three", "beta-four"}
    assert names("attributes.run_name LIKE 'beta%'") == {"beta-four"}
    assert names("attributes.run_name = 'gamma-five'") == {"gamma-five"}
    assert names("tags.mlflow.runName = 'alpha-two'") == {"alpha-two"}
    assert names("metrics.nonexistent > 0") == set()
    assert names("") == set(ids)

    wanted = [ids["alpha-one"], ids["gamma-five"]]
    in_list = ", ".join(f"'{r}'" for r in wanted)
    assert names(f"attributes.run_id IN ({in_list})") == {"alpha-one", "gamma-five"}
    assert names(f"run_id IN ({in_list})") == {"alpha-one", "gamma-five"}
    assert names(f"attributes.run_id NOT IN ({in_list})") == {"alpha-two", "Beta-Three", "beta-four"}
    assert names(f"attributes.run_id = '{ids['beta-four']}'") == {"beta-four"}

    # Compound filters with quoting styles the parser accepts.
    assert names('params.lr = "0.1" and tags.team = "apollo" and metrics.acc < 0.5') == {"beta-four"}
    assert names("params.`lr` = '0.01'") == {"alpha-two"}


def test_search_runs_order_by_metric(client, search_runs_fixture):
    exp, ids = search_runs_fixture
    desc = client.search_runs([exp], order_by=["metrics.acc DESC"])
    assert [r.info.run_name for r in desc] == [
        "alpha-one",
        "alpha-two",
        "Beta-Three",
        "gamma-five",
        "beta-four",
    ]
    asc = client.search_runs([exp], order_by=["metrics.acc ASC"])
    assert [r.info.run_name for r in asc] == [r.info.run_name for r in reversed(desc)]
    by_loss = client.search_runs([exp], order_by=["metrics.loss"])  # ASC by default
    assert [r.data.metrics["loss"] for r in by_loss] == sorted(r.data.metrics["loss"] for r in by_loss)

    by_name = client.search_runs([exp], order_by=["attributes.run_name ASC"])
    assert [r.info.run_name for r in by_name] == sorted(ids)

    by_param = client.search_runs(
        [exp], order_by=["params.lr DESC", "metrics.acc DESC"], filter_string="metrics.acc > 0"
    )
    assert [r.info.run_name for r in by_param] == [
        "alpha-one",
        "Beta-Three",
        "beta-four",
        "alpha-two",
        "gamma-five",
    ]


def test_search_runs_default_order_is_newest_first(client, experiment_id):
    ids = []
    for i in range(4):
        ids.append(client.create_run(experiment_id, start_time=now_ms() + i * 1000).info.run_id)
    runs = client.search_runs([experiment_id])
    assert [r.info.run_id for r in runs] == list(reversed(ids))


def test_search_runs_paging(client, experiment_id):
    n = 23
    created = set()
    t = now_ms()
    for i in range(n):
        run_id = client.create_run(experiment_id, start_time=t + i).info.run_id
        client.log_metric(run_id, "i", float(i), timestamp=t, step=0)
        created.add(run_id)

    seen: list[str] = []
    token = None
    pages = 0
    while True:
        page = client.search_runs(
            [experiment_id], max_results=5, order_by=["metrics.i ASC"], page_token=token
        )
        assert len(page) <= 5
        seen.extend(r.info.run_id for r in page)
        pages += 1
        token = page.token
        if not token:
            break
        assert pages < 20, "paging does not terminate"
    assert pages == 5
    assert len(seen) == n, "no run twice"
    assert set(seen) == created, "every run once"
    values = [client.get_run(r).data.metrics["i"] for r in seen[:3]]
    assert values == [0.0, 1.0, 2.0]


def test_search_runs_across_experiments(client, unique_name):
    e1 = client.create_experiment(unique_name("multi-a"))
    e2 = client.create_experiment(unique_name("multi-b"))
    r1 = client.create_run(e1).info.run_id
    r2 = client.create_run(e2).info.run_id
    found = client.search_runs([e1, e2])
    assert {r.info.run_id for r in found} == {r1, r2}
    assert {r.info.run_id for r in client.search_runs([e2])} == {r2}


def test_fluent_search_runs_dataframe(client, search_runs_fixture):
    exp, ids = search_runs_fixture
    df = mlflow.search_runs(
        experiment_ids=[exp], filter_string="metrics.acc > 0.5", order_by=["metrics.acc DESC"]
    )
    assert isinstance(df, pd.DataFrame)
    assert list(df["run_id"]) == [ids["alpha-one"], ids["alpha-two"], ids["Beta-Three"]]
    for col in ("experiment_id", "status", "start_time", "metrics.acc", "metrics.loss",
                "params.lr", "tags.team", "tags.mlflow.runName"):
        assert col in df.columns, f"missing column {col}; got {list(df.columns)}"
    assert list(df["metrics.acc"]) == [0.9, 0.7, 0.6]
    assert list(df["params.lr"]) == ["0.1", "0.01", "0.1"]
    assert list(df["tags.team"]) == ["apollo", "artemis", "borealis"]
    assert list(df["status"]) == ["FINISHED", "FINISHED", "FAILED"]
    assert set(df["experiment_id"]) == {exp}

    as_list = mlflow.search_runs(experiment_ids=[exp], output_format="list")
    assert {r.info.run_id for r in as_list} == set(ids.values())


def test_search_runs_deleted_only(client, search_runs_fixture):
    exp, ids = search_runs_fixture
    client.delete_run(ids["alpha-two"])
    client.delete_run(ids["gamma-five"])
    deleted = client.search_runs([exp], run_view_type=ViewType.DELETED_ONLY)
    assert _names(deleted) == {"alpha-two", "gamma-five"}
    deleted_filtered = client.search_runs(
        [exp], run_view_type=ViewType.DELETED_ONLY, filter_string="metrics.acc > 0.5"
    )
    assert _names(deleted_filtered) == {"alpha-two"}
    active = client.search_runs([exp], run_view_type=ViewType.ACTIVE_ONLY)
    assert _names(active) == {"alpha-one", "Beta-Three", "beta-four"}
    df = mlflow.search_runs(experiment_ids=[exp], run_view_type=ViewType.DELETED_ONLY)
    assert set(df["run_id"]) == {ids["alpha-two"], ids["gamma-five"]}


# --------------------------------------------------------------------------------------------------
# Dataset inputs


def test_log_input_dataset(client, experiment_id):
    df = pd.DataFrame(
        {"x1": np.arange(10, dtype=float), "x2": np.arange(10, dtype=float) ** 2, "y": [0, 1] * 5}
    )
    dataset = mlflow.data.from_pandas(df, name="tiny-train", targets="y")
    with mlflow.start_run() as run:
        mlflow.log_input(dataset, context="training", tags={"split": "train"})
    inputs = client.get_run(run.info.run_id).inputs
    assert inputs is not None
    assert len(inputs.dataset_inputs) == 1
    di = inputs.dataset_inputs[0]
    assert di.dataset.name == "tiny-train"
    assert di.dataset.digest == dataset.digest
    assert di.dataset.source_type == dataset.source.__class__._get_source_type()
    assert di.dataset.schema, "the schema must round-trip"
    assert di.dataset.profile, "the profile must round-trip"
    tags = {t.key: t.value for t in di.tags}
    assert tags["mlflow.data.context"] == "training"
    assert tags["split"] == "train"

    # The same dataset logged again in another context is not duplicated as a dataset.
    with mlflow.start_run(run_id=run.info.run_id):
        mlflow.log_input(dataset, context="eval")
    inputs = client.get_run(run.info.run_id).inputs.dataset_inputs
    digests = {(i.dataset.name, i.dataset.digest) for i in inputs}
    assert digests == {("tiny-train", dataset.digest)}
    contexts = {t.value for i in inputs for t in i.tags if t.key == "mlflow.data.context"}
    assert "training" in contexts

    # Searchable by dataset attributes.
    found = client.search_runs([experiment_id], filter_string="dataset.name = 'tiny-train'")
    assert [r.info.run_id for r in found] == [run.info.run_id]
