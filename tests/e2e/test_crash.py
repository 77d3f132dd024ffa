"""Durability: every metric the server acknowledged survives a SIGKILL of the server."""

from __future__ import annotations

import threading
import time

import mlflow
from mlflow.tracking import MlflowClient

KILL_AFTER_S = 1.5


def test_acknowledged_metrics_survive_sigkill(isolated_server, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    store = tmp_path / "crash-store"
    srv = isolated_server(store, name="before-kill")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", srv.url)
    mlflow.set_tracking_uri(srv.url)

    client = MlflowClient(tracking_uri=srv.url)
    exp_id = client.create_experiment("crash-durability")
    run_id = client.create_run(exp_id).info.run_id
    client.log_param(run_id, "before", "kill")

    acked: list[tuple[str, int, float, int]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def writer():
        step = 0
        while not stop.is_set() and step < 1_000_000:
            key = "a" if step % 2 == 0 else "b"
            value = step * 0.5
            ts = 1_700_000_000_000 + step
            try:
                client.log_metric(run_id, key, value, timestamp=ts, step=step)
            except BaseException as e:  # noqa: BLE001 — first failure ends the stream
                errors.append(e)
                return
            acked.append((key, step, value, ts))
            step += 1

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    time.sleep(KILL_AFTER_S)
    assert t.is_alive(), f"writer stopped before the kill: {errors[:1]} (server log: {srv.log_tail()})"
    srv.kill()
    t.join(timeout=60)
    stop.set()
    assert not t.is_alive(), "the writer thread hung after the kill"
    assert errors, "the writer must have seen the connection fail after the kill"
    print(f"{len(acked)} metrics acknowledged before SIGKILL; first error: {errors[0]!r:.200}")
    assert len(acked) >= 5, f"only {len(acked)} metrics acknowledged in {KILL_AFTER_S}s"

    # Restart on the same database and artifact directory.
    srv2 = isolated_server(store, name="after-kill")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", srv2.url)
    mlflow.set_tracking_uri(srv2.url)
    client2 = MlflowClient(tracking_uri=srv2.url)

    run = client2.get_run(run_id)
    assert run.info.experiment_id == exp_id
    assert run.data.params == {"before": "kill"}

    for key in ("a", "b"):
        want = [(s, v, ts) for k, s, v, ts in acked if k == key]
        got = [(m.step, m.value, m.timestamp) for m in client2.get_metric_history(run_id, key)]
        missing = sorted(set(want) - set(got))
        assert not missing, (
            f"{len(missing)} acknowledged '{key}' metrics lost after SIGKILL "
            f"(of {len(want)} acknowledged; first: {missing[:5]})"
        )
        # Anything beyond the acknowledged ones can only be the single in-flight request.
        extra = sorted(set(got) - set(want))
        assert len(extra) <= 1, f"unexpected extra metrics: {extra[:5]}"

    # The restarted server is fully usable.
    client2.log_metric(run_id, "after", 1.0)
    assert client2.get_run(run_id).data.metrics["after"] == 1.0
    client2.set_terminated(run_id)
