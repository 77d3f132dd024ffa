"""MLflow's error shapes: `{"error_code", "message"}` with the right HTTP status, and the client's
`MlflowException.error_code`.  Long values go over raw REST because the client truncates them."""

from __future__ import annotations

import json

import mlflow
import pytest
import requests
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException, RestException

NO_SUCH_RUN = "0123456789abcdef0123456789abcdef"


def _error(resp: requests.Response, status: int, code: str) -> dict:
    assert resp.status_code == status, (
        f"expected HTTP {status} {code}, got {resp.status_code}: {resp.text[:500]}"
    )
    ctype = resp.headers.get("Content-Type", "")
    assert "json" in ctype, f"error must be JSON, got Content-Type {ctype!r}: {resp.text[:300]}"
    body = resp.json()
    assert body.get("error_code") == code, body
    assert isinstance(body.get("message"), str) and body["message"].strip(), body
    return body


def _post(api, path, payload):
    return requests.post(api(path), json=payload, timeout=30)


# --------------------------------------------------------------------------------------------------
# Not found


def test_unknown_run_rest(api):
    r = requests.get(api("runs/get"), params={"run_id": NO_SUCH_RUN}, timeout=30)
    body = _error(r, 404, "RESOURCE_DOES_NOT_EXIST")
    assert NO_SUCH_RUN in body["message"]


def test_unknown_run_client(client):
    with pytest.raises(MlflowException) as exc:
        client.get_run(NO_SUCH_RUN)
    assert exc.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert exc.value.get_http_status_code() == 404
    with pytest.raises(MlflowException) as exc:
        client.log_metric(NO_SUCH_RUN, "m", 1.0)
    assert exc.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    # MLflow's SQL store answers get-history for an unknown run with an empty history.
    assert client.get_metric_history(NO_SUCH_RUN, "m") == []


def test_unknown_experiment(api, client):
    r = requests.get(api("experiments/get"), params={"experiment_id": "99999999"}, timeout=30)
    body = _error(r, 404, "RESOURCE_DOES_NOT_EXIST")
    assert "99999999" in body["message"]
    with pytest.raises(MlflowException) as exc:
        client.get_experiment("99999999")
    assert exc.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(MlflowException) as exc:
        client.create_run("99999999")
    assert exc.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    r = requests.get(
        api("experiments/get-by-name"), params={"experiment_name": "no-such-exp-zz-9"}, timeout=30
    )
    _error(r, 404, "RESOURCE_DOES_NOT_EXIST")


def test_duplicate_experiment_name(api, client, unique_name):
    name = unique_name("dup")
    client.create_experiment(name)
    with pytest.raises(MlflowException) as exc:
        client.create_experiment(name)
    assert exc.value.error_code == "RESOURCE_ALREADY_EXISTS"
    r = _post(api, "experiments/create", {"name": name})
    # MLflow answers RESOURCE_ALREADY_EXISTS with HTTP 400.
    _error(r, 400, "RESOURCE_ALREADY_EXISTS")

    other_name = unique_name("dup-other")
    other = client.create_experiment(other_name)
    with pytest.raises(MlflowException) as exc:
        client.rename_experiment(other, name)
    # MLflow's SQL store surfaces the unique-constraint failure of a rename as BAD_REQUEST.
    assert exc.value.error_code in {"RESOURCE_ALREADY_EXISTS", "BAD_REQUEST"}
    assert exc.value.get_http_status_code() == 400
    assert client.get_experiment(other).name == other_name


# --------------------------------------------------------------------------------------------------
# Validation


@pytest.fixture
def run_id(client, experiment_id):
    return client.create_run(experiment_id).info.run_id


def test_tag_key_too_long(api, run_id, client):
    r = _post(api, "runs/set-tag", {"run_id": run_id, "key": "k" * 251, "value": "v"})
    body = _error(r, 400, "INVALID_PARAMETER_VALUE")
    assert "250" in body["message"]
    assert "k" * 251 not in client.get_run(run_id).data.tags
    r = _post(api, "runs/set-tag", {"run_id": run_id, "key": "k" * 250, "value": "v"})
    assert r.status_code == 200, r.text
    assert client.get_run(run_id).data.tags["k" * 250] == "v"


def test_param_value_too_long(api, run_id, client):
    # wasmflow rejects (as MLflow does with MLFLOW_TRUNCATE_LONG_VALUES=false) instead of truncating.
    r = _post(api, "runs/log-parameter", {"run_id": run_id, "key": "p", "value": "v" * 6001})
    body = _error(r, 400, "INVALID_PARAMETER_VALUE")
    assert "6000" in body["message"]
    assert "p" not in client.get_run(run_id).data.params
    r = _post(api, "runs/log-parameter", {"run_id": run_id, "key": "p", "value": "v" * 6000})
    assert r.status_code == 200, r.text
    assert client.get_run(run_id).data.params["p"] == "v" * 6000


def test_invalid_key_names(api, run_id):
    for key in ("bad\nkey", "../escape", "a/../b", "semi;colon"):
        r = _post(api, "runs/log-metric", {"run_id": run_id, "key": key, "value": 1.0,
                                           "timestamp": 1, "step": 0})
        _error(r, 400, "INVALID_PARAMETER_VALUE")


def test_log_batch_too_many_metrics(api, run_id, client):
    metrics = [{"key": "m", "value": float(i), "timestamp": 1, "step": i} for i in range(1001)]
    r = _post(api, "runs/log-batch", {"run_id": run_id, "metrics": metrics})
    body = _error(r, 400, "INVALID_PARAMETER_VALUE")
    assert "1000" in body["message"]
    assert client.get_metric_history(run_id, "m") == [], "a rejected batch must write nothing"

    params = [{"key": f"p{i}", "value": "1"} for i in range(101)]
    r = _post(api, "runs/log-batch", {"run_id": run_id, "params": params})
    _error(r, 400, "INVALID_PARAMETER_VALUE")

    with pytest.raises(MlflowException) as exc:
        # The client splits batches itself, so go through the store directly.
        client._tracking_client.store.log_batch(
            run_id, metrics=[Metric("m", 1.0, 1, i) for i in range(1001)], params=[], tags=[]
        )
    assert exc.value.error_code == "INVALID_PARAMETER_VALUE"


def test_log_batch_is_atomic_on_invalid_entity(api, run_id, client):
    payload = {
        "run_id": run_id,
        "metrics": [{"key": "ok", "value": 1.0, "timestamp": 1, "step": 0}],
        "params": [{"key": "fine", "value": "1"}],
        "tags": [{"key": "t" * 251, "value": "x"}],
    }
    _error(_post(api, "runs/log-batch", payload), 400, "INVALID_PARAMETER_VALUE")
    data = client.get_run(run_id).data
    assert "ok" not in data.metrics
    assert "fine" not in data.params


@pytest.mark.parametrize(
    "flt",
    [
        "metrics.acc >",
        "foo.bar = 1",
        "params.x = 'unterminated",
        "metrics.acc > 'abc'",
        "params.lr > 0.1",
        "metrics.acc = 1 or metrics.acc = 2",
        "attributes.nonexistent = 'x'",
    ],
)
def test_malformed_search_filter(api, client, experiment_id, flt):
    r = _post(api, "runs/search", {"experiment_ids": [experiment_id], "filter": flt})
    _error(r, 400, "INVALID_PARAMETER_VALUE")
    with pytest.raises(MlflowException) as exc:
        client.search_runs([experiment_id], filter_string=flt)
    assert exc.value.error_code == "INVALID_PARAMETER_VALUE"
    assert exc.value.message


def test_malformed_order_by(api, experiment_id):
    r = _post(
        api, "runs/search", {"experiment_ids": [experiment_id], "order_by": ["metrics.acc SIDEWAYS"]}
    )
    _error(r, 400, "INVALID_PARAMETER_VALUE")


def test_invalid_page_token(api, experiment_id):
    r = _post(api, "runs/search", {"experiment_ids": [experiment_id], "page_token": "garbage!!"})
    _error(r, 400, "INVALID_PARAMETER_VALUE")


def test_malformed_json_body(api):
    r = requests.post(
        api("experiments/create"),
        data=b'{"name": ',
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert r.status_code == 400, r.text
    body = r.json()
    assert body.get("error_code") in {"INVALID_PARAMETER_VALUE", "MALFORMED_REQUEST", "BAD_REQUEST"}
    assert isinstance(body.get("message"), str) and body["message"]


def test_wrong_field_type(api):
    r = _post(api, "experiments/get", {"experiment_id": [1]})
    # GET-style endpoints are also reachable with GET + query string; the POST body must be
    # rejected with a JSON error if the endpoint accepts POST at all.
    if r.status_code == 405:
        r = _post(api, "experiments/delete", {"experiment_id": [1]})
    _error(r, 400, "INVALID_PARAMETER_VALUE")
    r = _post(api, "runs/log-metric", {"run_id": NO_SUCH_RUN, "key": "m", "value": "high",
                                       "timestamp": 1, "step": 0})
    _error(r, 400, "INVALID_PARAMETER_VALUE")
    r = _post(api, "experiments/create", {"name": {"nested": True}})
    _error(r, 400, "INVALID_PARAMETER_VALUE")


def test_missing_required_field(api, run_id):
    r = _post(api, "runs/log-metric", {"run_id": run_id, "key": "m", "timestamp": 1, "step": 0})
    body = _error(r, 400, "INVALID_PARAMETER_VALUE")
    assert "value" in body["message"]
    r = _post(api, "experiments/create", {})
    body = _error(r, 400, "INVALID_PARAMETER_VALUE")
    assert "name" in body["message"]


def test_changing_param_value(api, run_id, client):
    client.log_param(run_id, "lr", "0.1")
    with pytest.raises(MlflowException) as exc:
        client.log_param(run_id, "lr", "0.2")
    assert exc.value.error_code == "INVALID_PARAMETER_VALUE"
    r = _post(api, "runs/log-parameter", {"run_id": run_id, "key": "lr", "value": "0.3"})
    body = _error(r, 400, "INVALID_PARAMETER_VALUE")
    assert "lr" in body["message"]
    r = _post(api, "runs/log-batch", {"run_id": run_id, "params": [{"key": "lr", "value": "0.4"}]})
    _error(r, 400, "INVALID_PARAMETER_VALUE")
    assert client.get_run(run_id).data.params["lr"] == "0.1"


def test_logging_to_deleted_run(api, run_id, client):
    client.delete_run(run_id)
    for call in (
        lambda: client.log_metric(run_id, "m", 1.0),
        lambda: client.log_param(run_id, "p", "1"),
        lambda: client.set_tag(run_id, "t", "1"),
        lambda: client.log_batch(run_id, metrics=[Metric("m", 1.0, 1, 0)]),
        lambda: client.set_terminated(run_id, "FINISHED"),
    ):
        with pytest.raises(MlflowException) as exc:
            call()
        assert exc.value.error_code == "INVALID_PARAMETER_VALUE"
        assert "active" in exc.value.message
    r = _post(api, "runs/log-metric", {"run_id": run_id, "key": "m", "value": 1.0,
                                       "timestamp": 1, "step": 0})
    _error(r, 400, "INVALID_PARAMETER_VALUE")
    assert client.get_run(run_id).data.metrics == {}


def test_create_run_in_deleted_experiment(client, unique_name):
    exp = client.create_experiment(unique_name("deleted-exp"))
    client.delete_experiment(exp)
    with pytest.raises(MlflowException) as exc:
        client.create_run(exp)
    assert exc.value.error_code == "INVALID_PARAMETER_VALUE"


def test_unknown_endpoint(base_url, api):
    for url in (api("no/such/endpoint"), f"{base_url}/api/2.0/nothing-here", api("runs/nope")):
        r = requests.get(url, timeout=30)
        assert r.status_code == 404, f"{url}: {r.status_code} {r.text[:200]}"
        r = requests.post(url, json={}, timeout=30)
        assert r.status_code == 404, f"{url}: {r.status_code} {r.text[:200]}"


def test_client_exception_type_and_status(client):
    with pytest.raises(RestException) as exc:
        client.get_run(NO_SUCH_RUN)
    assert exc.value.get_http_status_code() == 404
    assert json.loads(exc.value.serialize_as_json())["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert mlflow.MlflowClient  # the official client, not a stand-in
