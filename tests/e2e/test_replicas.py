"""Two `wasmflow server` replicas on one PostgreSQL database and one artifact root behave as one
server: what is written through one is read through the other at once, and writes racing through
both lose nothing and never collide (issue 17, part 4)."""

from __future__ import annotations

import concurrent.futures
import time
import uuid

import pytest
from mlflow import MlflowClient

from conftest import POSTGRES, ServerProcess

pytestmark = pytest.mark.skipif(
    not POSTGRES,
    reason="replicas share a PostgreSQL database: scripts/test.sh runs this with WASMFLOW_E2E_BACKEND=postgres",
)


@pytest.fixture(scope="module")
def replicas(tmp_path_factory, wasmflow_bin):
    a = ServerProcess(wasmflow_bin, tmp_path_factory.mktemp("replica-a"), name="replica-a")
    b = ServerProcess(wasmflow_bin, tmp_path_factory.mktemp("replica-b"), name="replica-b", backend_uri=a.backend_uri)
    b.artifacts_dir = a.artifacts_dir
    # Started together: the second waits on the first's migration lock, then finds nothing to do.
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda s: s.start(), (a, b)))
    try:
        yield MlflowClient(tracking_uri=a.url), MlflowClient(tracking_uri=b.url)
    finally:
        a.stop()
        b.stop()


def test_a_run_written_through_one_replica_reads_the_same_through_the_other(replicas, tmp_path):
    a, b = replicas
    exp = a.create_experiment(f"replicas-{uuid.uuid4().hex[:8]}")
    run = a.create_run(exp, run_name="through-a")
    a.log_param(run.info.run_id, "alpha", "0.5")
    for step in range(5):
        a.log_metric(run.info.run_id, "loss", 1.0 / (step + 1), step=step)
    (tmp_path / "notes.txt").write_text("written through a")
    a.log_artifact(run.info.run_id, str(tmp_path / "notes.txt"))
    a.set_terminated(run.info.run_id)

    seen = b.get_run(run.info.run_id)
    assert seen.data.params == {"alpha": "0.5"}
    assert seen.data.metrics == {"loss": pytest.approx(0.2)}
    assert seen.info.status == "FINISHED"
    assert [m.value for m in b.get_metric_history(run.info.run_id, "loss")] == pytest.approx(
        [1.0, 0.5, 1 / 3, 0.25, 0.2]
    )
    out = b.download_artifacts(run.info.run_id, "notes.txt", str(tmp_path / "out"))
    assert open(out).read() == "written through a"
    assert [r.info.run_id for r in b.search_runs([exp], "params.alpha = '0.5'")] == [run.info.run_id]


def test_an_alias_moved_through_one_replica_holds_on_the_other_at_once(replicas):
    a, b = replicas
    name = f"replicated-{uuid.uuid4().hex[:8]}"
    a.create_registered_model(name)
    v1 = a.create_model_version(name, "s3://bucket/one")
    v2 = b.create_model_version(name, "s3://bucket/two")
    assert (v1.version, v2.version) == ("1", "2")
    a.set_registered_model_alias(name, "champion", "1")
    assert b.get_model_version_by_alias(name, "champion").version == "1"
    b.set_registered_model_alias(name, "champion", "2")
    deadline = time.monotonic() + 1.0
    while a.get_model_version_by_alias(name, "champion").version != "2":
        assert time.monotonic() < deadline, "the alias did not move on the other replica within 1 s"
        time.sleep(0.05)


def test_writes_racing_through_both_replicas_lose_nothing(replicas):
    a, b = replicas
    prefix = f"race-{uuid.uuid4().hex[:8]}"
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda i: (a, b)[i % 2].create_experiment(f"{prefix}-{i}"), range(40)))
    assert len(set(ids)) == 40
    for client in (a, b):
        found = client.search_experiments(filter_string=f"name LIKE '{prefix}-%'", max_results=100)
        assert sorted(e.experiment_id for e in found) == sorted(ids)

    name = f"{prefix}-model"
    a.create_registered_model(name)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        versions = list(
            pool.map(lambda i: (a, b)[i % 2].create_model_version(name, f"s3://bucket/{i}").version, range(16))
        )
    assert sorted(int(v) for v in versions) == list(range(1, 17))
