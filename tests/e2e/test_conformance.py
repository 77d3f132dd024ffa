"""MLflow REST conformance, second pass (issue 15): what a client or MLflow's UI sees from
MLflow 3.17.2's server, checked against MLflow's own code where it can run in-process
(`_guess_mime_type`, `invalid_value`, `resolve_uri_if_local`, `json.dumps`).

- model-version sources: `runs:/` of a run this store does not hold, local paths inside the
  run's artifact directory, and the `mlflow.modelVersions` tag's bytes;
- artifact downloads (the proxy, `/get-artifact`, `/model-versions/get-artifact`, a logged
  model's `artifacts/files`): MIME type, `Content-Disposition`, `nosniff`;
- `upload-artifact`, `artifacts/list` under an `http://.../mlflow-artifacts/artifacts` root;
- `search_logged_models(datasets=...)`, logged-model listings under `file://` roots;
- `/version`, error texts, relative experiment locations, the AI gateway's refusal.
"""

from __future__ import annotations

import json
import os
import pickle
import uuid
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import requests
from conftest import ServerProcess
from mlflow.exceptions import MlflowException
from mlflow.utils.mime_type_utils import _guess_mime_type
from mlflow.utils.uri import resolve_uri_if_local
from mlflow.utils.validation import invalid_value

SEE_DOCS = " See the API docs for more information about request parameters."
# What MLflow 3.17's server adds to an INVALID_PARAMETER_VALUE error.
INVALID = {"sqlstate": "KAM00", "error_class": "INVALID_PARAMETER_VALUE"}
# The first bytes of a PNG file: enough for a browser to take it for one.
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(64))


def _error(resp) -> dict:
    assert resp.headers["Content-Type"].startswith("application/json"), resp.text[:300]
    return resp.json()


def _mlflow_error(call) -> MlflowException:
    with pytest.raises(MlflowException) as info:
        call()
    return info.value


def _text(err: MlflowException) -> str:
    """The server's message (the client prefixes it with the error code)."""
    return err.message.removeprefix(f"{err.error_code}: ")


# ---- model-version sources ----


def test_runs_source_of_a_run_elsewhere_is_accepted(client, unique_name):
    """MLflow checks that `runs:/<id>/...` and `run_id` agree, not that the run is local."""
    name = unique_name("foreign")
    client.create_registered_model(name)
    foreign = uuid.uuid4().hex
    mv = client.create_model_version(name, f"runs:/{foreign}/model", run_id=foreign)
    assert (mv.version, mv.source, mv.run_id) == ("1", f"runs:/{foreign}/model", foreign)
    assert client.get_model_version(name, "1").run_id == foreign

    other = uuid.uuid4().hex
    for run_id in (other, None):
        err = _mlflow_error(lambda: client.create_model_version(name, f"runs:/{foreign}/model", run_id=run_id))
        assert err.error_code == "INVALID_PARAMETER_VALUE"
        assert _text(err) == (
            f"Invalid model version source: 'runs:/{foreign}/model'. The run_id request parameter "
            "must identify the resource that contains the source."
        )


def test_local_source_inside_the_run_artifact_directory(client, unique_name, tmp_path):
    exp_id = client.create_experiment(unique_name("local"), artifact_location=str(tmp_path / "art"))
    run = client.create_run(exp_id)
    root = run.info.artifact_uri
    assert root == str(tmp_path / "art" / run.info.run_id / "artifacts")
    name = unique_name("local")
    client.create_registered_model(name)
    for source in (root, f"{root}/model", f"file://{root}/model"):
        mv = client.create_model_version(name, source, run_id=run.info.run_id)
        assert mv.source == source
    outside = str(tmp_path / "elsewhere")
    for run_id in (run.info.run_id, None):
        err = _mlflow_error(lambda: client.create_model_version(name, outside, run_id=run_id))
        assert err.error_code == "INVALID_PARAMETER_VALUE"
        assert "To use a local path as a model version source" in _text(err)


def test_model_versions_tag_is_written_as_mlflow_writes_it(client, experiment_id, unique_name):
    lm = client.create_logged_model(experiment_id)
    name = unique_name("linked")
    client.create_registered_model(name)
    for _ in range(2):
        client.create_model_version(name, f"models:/{lm.model_id}", model_id=lm.model_id)
    tag = client.get_logged_model(lm.model_id).tags["mlflow.modelVersions"]
    # Byte for byte what MLflow's server writes (`json.dumps`, versions as integers).
    assert tag == json.dumps([{"name": name, "version": 1}, {"name": name, "version": 2}])


# ---- downloads ----


def _log_samples(tmp_path: Path) -> dict[str, bytes]:
    files = {
        "notes.txt": b"some notes\n",
        "MLmodel": b"flavors: {}\n",
        "plot.png": PNG,
        "model.pkl": pickle.dumps({"weights": [1.0, 2.0]}),
        "page.html": b"<html><script>alert(1)</script></html>",
        "my report.pdf": b"%PDF-1.4\n",
    }
    for rel, content in files.items():
        (tmp_path / rel).write_bytes(content)
        mlflow.log_artifact(str(tmp_path / rel), artifact_path="d")
    return files


def _check_download(resp, name: str, content: bytes) -> None:
    assert resp.status_code == 200, resp.text[:300]
    assert resp.content == content
    # MLflow types the file by its name alone, whatever the client asked for.
    assert resp.headers["Content-Type"] == _guess_mime_type(name), name
    quoted = name if " " not in name else f'"{name}"'
    assert resp.headers["Content-Disposition"] == f"attachment; filename={quoted}"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Content-Length"] == str(len(content))


def test_downloads_are_typed_attachments(base_url, client, experiment_id, unique_name, tmp_path):
    with mlflow.start_run() as run:
        files = _log_samples(tmp_path)
    run_id = run.info.run_id
    proxied = run.info.artifact_uri.removeprefix("mlflow-artifacts:/")
    name = unique_name("dl")
    client.create_registered_model(name)
    client.create_model_version(name, f"runs:/{run_id}/d", run_id=run_id)
    expected = {
        "notes.txt": "text/plain",
        "MLmodel": "text/plain",
        "plot.png": "image/png",
        "model.pkl": "application/octet-stream",
        "page.html": "text/html",
        "my report.pdf": "application/pdf",
    }
    for file_name, content in files.items():
        assert _guess_mime_type(file_name) == expected[file_name]
        headers = {"Accept": "text/html"} if file_name.endswith(".html") else {}
        urls = [
            f"{base_url}/api/2.0/mlflow-artifacts/artifacts/{proxied}/d/{file_name}",
            f"{base_url}/ajax-api/2.0/mlflow-artifacts/artifacts/{proxied}/d/{file_name}",
        ]
        for url in urls:
            _check_download(requests.get(url, headers=headers, timeout=30), file_name, content)
        via_run = requests.get(
            f"{base_url}/get-artifact", params={"run_id": run_id, "path": f"d/{file_name}"},
            headers=headers, timeout=30,
        )
        _check_download(via_run, file_name, content)
        via_version = requests.get(
            f"{base_url}/model-versions/get-artifact",
            params={"name": name, "version": "1", "path": file_name}, headers=headers, timeout=30,
        )
        _check_download(via_version, file_name, content)

    missing = requests.get(f"{base_url}/get-artifact", params={"run_id": run_id, "path": "d/nope"}, timeout=30)
    assert missing.status_code == 404 and _error(missing)["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    traversal = requests.get(f"{base_url}/get-artifact", params={"run_id": run_id, "path": "../x"}, timeout=30)
    assert traversal.status_code == 400 and _error(traversal)["error_code"] == "INVALID_PARAMETER_VALUE"


def test_ui_upload_artifact(base_url, client, experiment_id):
    run = client.create_run(experiment_id)
    url = f"{base_url}/ajax-api/2.0/mlflow/upload-artifact"
    params = {"run_uuid": run.info.run_id, "path": "uploads/hello.txt"}
    r = requests.post(url, params=params, data=b"hello from the UI", timeout=30)
    assert r.status_code == 200, r.text
    assert [f.path for f in client.list_artifacts(run.info.run_id, "uploads")] == ["uploads/hello.txt"]
    got = requests.get(f"{base_url}/get-artifact", params={"run_id": run.info.run_id, "path": "uploads/hello.txt"}, timeout=30)
    assert got.content == b"hello from the UI"
    for bad_params, data, message in [
        ({"path": "x.txt"}, b"x", "Request must specify run_uuid."),
        ({"run_uuid": run.info.run_id}, b"x", "Request must specify path."),
        (params, b"", "Request must specify data."),
    ]:
        r = requests.post(url, params=bad_params, data=data, timeout=30)
        assert r.status_code == 400
        assert _error(r) == {"error_code": "INVALID_PARAMETER_VALUE", "message": message, **INVALID}


class _RootedServer(ServerProcess):
    """A server whose `--default-artifact-root` is the proxy's own http:// URL."""

    def command(self) -> list[str]:
        root = f"http://127.0.0.1:{self.port}/api/2.0/mlflow-artifacts/artifacts/exps"
        return [*super().command(), "--default-artifact-root", root]


def test_http_artifact_root_lists_and_downloads(wasmflow_bin, tmp_path):
    srv = _RootedServer(wasmflow_bin, tmp_path / "store", name="http-root").start()
    try:
        client = mlflow.MlflowClient(tracking_uri=srv.url)
        exp_id = client.create_experiment("http-root")
        run = client.create_run(exp_id)
        assert run.info.artifact_uri == (
            f"http://127.0.0.1:{srv.port}/api/2.0/mlflow-artifacts/artifacts/exps/{exp_id}/"
            f"{run.info.run_id}/artifacts"
        )
        (tmp_path / "a.txt").write_text("via http root\n")
        client.log_artifact(run.info.run_id, str(tmp_path / "a.txt"), artifact_path="sub")
        listed = requests.get(f"{srv.url}/api/2.0/mlflow/artifacts/list", params={"run_id": run.info.run_id}, timeout=30)
        assert listed.status_code == 200, listed.text
        assert listed.json() == {"root_uri": run.info.artifact_uri, "files": [{"path": "sub", "is_dir": True}]}
        inner = requests.get(
            f"{srv.url}/api/2.0/mlflow/artifacts/list", params={"run_id": run.info.run_id, "path": "sub"}, timeout=30
        ).json()
        assert inner["files"] == [{"path": "sub/a.txt", "is_dir": False, "file_size": 14}]
        got = requests.get(f"{srv.url}/get-artifact", params={"run_id": run.info.run_id, "path": "sub/a.txt"}, timeout=30)
        _check_download(got, "a.txt", b"via http root\n")
    finally:
        srv.stop()


# ---- logged models ----


def test_logged_model_artifacts_under_a_file_root(base_url, client, unique_name, tmp_path):
    root = tmp_path / "lm-root"
    exp_id = client.create_experiment(unique_name("lm"), artifact_location=f"file://{root}")
    lm = client.create_logged_model(exp_id)
    assert lm.artifact_location.startswith(f"file://{root}/")
    src = tmp_path / "model-src"
    (src / "sub").mkdir(parents=True)
    (src / "MLmodel").write_text("flavors: {}\n")
    (src / "sub" / "model.pkl").write_bytes(pickle.dumps([1, 2, 3]))
    client.log_model_artifacts(lm.model_id, str(src))

    base = f"{base_url}/ajax-api/2.0/mlflow/logged-models/{lm.model_id}/artifacts"
    listed = requests.get(f"{base}/directories", timeout=30)
    assert listed.status_code == 200, listed.text
    assert listed.json() == {
        "root_uri": lm.artifact_location,
        "files": [{"path": "MLmodel", "is_dir": False, "file_size": 12}, {"path": "sub", "is_dir": True}],
    }
    sub = requests.get(f"{base}/directories", params={"artifact_directory_path": "sub"}, timeout=30).json()
    assert [f["path"] for f in sub["files"]] == ["sub/model.pkl"]
    _check_download(
        requests.get(f"{base}/files", params={"artifact_file_path": "MLmodel"}, timeout=30), "MLmodel", b"flavors: {}\n"
    )
    _check_download(
        requests.get(f"{base}/files", params={"artifact_file_path": "sub/model.pkl"}, timeout=30),
        "model.pkl",
        pickle.dumps([1, 2, 3]),
    )
    no_path = requests.get(f"{base}/files", timeout=30)
    assert no_path.status_code == 400
    assert _error(no_path) == {
        "error_code": "BAD_REQUEST",
        "message": 'Request must include the "artifact_file_path" query parameter.',
        **INVALID,
    }


def test_search_logged_models_by_dataset(api, client, experiment_id):
    train = mlflow.data.from_pandas(pd.DataFrame({"x": [1, 2, 3]}), name="train")
    evals = mlflow.data.from_pandas(pd.DataFrame({"x": [4, 5]}), name="eval")
    on_train = client.create_logged_model(experiment_id)
    on_eval = client.create_logged_model(experiment_id)
    client.create_logged_model(experiment_id)  # no metrics at all
    with mlflow.start_run():
        mlflow.log_metric("acc", 0.9, model_id=on_train.model_id, dataset=train)
        mlflow.log_metric("acc", 0.4, model_id=on_eval.model_id, dataset=evals)

    def ids(**kwargs):
        return {m.model_id for m in client.search_logged_models(experiment_ids=[experiment_id], **kwargs)}

    assert len(ids()) == 3
    assert ids(datasets=[{"dataset_name": "train", "dataset_digest": train.digest}]) == {on_train.model_id}
    assert ids(datasets=[{"dataset_name": "eval", "dataset_digest": evals.digest}]) == {on_eval.model_id}
    both = [{"dataset_name": d.name, "dataset_digest": d.digest} for d in (train, evals)]
    assert ids(datasets=both) == {on_train.model_id, on_eval.model_id}
    assert ids(datasets=both, filter_string="metrics.acc > 0.5") == {on_train.model_id}
    assert ids(datasets=[{"dataset_name": "train", "dataset_digest": "not-the-digest"}]) == set()
    # The client refuses this itself; the server does too.
    r = requests.post(
        api("logged-models/search"),
        json={"experiment_ids": [experiment_id], "datasets": [{"dataset_digest": "x"}]},
        timeout=30,
    )
    assert r.status_code == 400
    assert _error(r) == {
        "error_code": "INVALID_PARAMETER_VALUE",
        "message": "`dataset_name` in the `datasets` clause must be specified.",
        **INVALID,
    }


# ---- version, errors, experiments, gateway ----


def test_version_is_the_mlflow_api_version(base_url):
    from mlflow.store.tracking.rest_store import RestStore
    from mlflow.utils.rest_utils import MlflowHostCreds
    from mlflow.version import VERSION

    r = requests.get(f"{base_url}/version", timeout=30)
    assert r.status_code == 200 and r.text == VERSION == "3.17.2"
    # The client gates features (trace spans) on this answer.
    assert str(RestStore._get_server_version(MlflowHostCreds(base_url))) == "3.17.2"
    own = requests.get(f"{base_url}/api/2.0/wasmflow/version", timeout=30)
    assert own.status_code == 200
    assert own.json()["mlflow_api_version"] == "3.17.2"
    assert own.json()["wasmflow_version"] == r.headers["X-Wasmflow-Version"] != ""
    assert requests.get(f"{base_url}/health", timeout=30).headers["X-Wasmflow-Version"] == own.json()["wasmflow_version"]


@pytest.mark.parametrize(
    ("path", "body", "param", "value"),
    [
        ("runs/log-parameter", {"run_id": 31, "key": "k", "value": "v"}, "run_id", 31),
        ("experiments/create", {"name": 5}, "name", 5),
        ("experiments/create", {"name": ["a", "b"]}, "name", ["a", "b"]),
        ("runs/set-tag", {"run_id": "r", "key": {"b": 1, "a": "é"}, "value": "v"}, "key", {"b": 1, "a": "é"}),
        ("registered-models/create", {"name": True}, "name", True),
    ],
)
def test_wrongly_typed_fields_get_mlflow_texts(api, path, body, param, value):
    r = requests.post(api(path), json=body, timeout=30)
    assert r.status_code == 400
    want = invalid_value(param, value, f" Hint: Value was of type '{type(value).__name__}'.") + SEE_DOCS
    assert _error(r) == {"error_code": "INVALID_PARAMETER_VALUE", "message": want, **INVALID}


@pytest.mark.parametrize(
    ("method", "path", "body", "param"),
    [
        ("POST", "experiments/create", {}, "name"),
        ("POST", "runs/log-parameter", {"key": "k", "value": "v"}, "run_id"),
        ("GET", "runs/get", {}, "run_id"),
        ("POST", "registered-models/create", {}, "name"),
        ("POST", "logged-models/search", {}, "experiment_ids"),
    ],
)
def test_missing_params_get_mlflow_texts(api, method, path, body, param):
    if method == "GET":
        r = requests.get(api(path), params=body, timeout=30)
    else:
        r = requests.post(api(path), json=body, timeout=30)
    assert r.status_code == 400
    assert _error(r) == {
        "error_code": "INVALID_PARAMETER_VALUE",
        "message": f"Missing value for required parameter '{param}'.{SEE_DOCS}",
        **INVALID,
    }


def test_relative_artifact_location_is_resolved(client, unique_name):
    # The server runs in this process's directory, as `resolve_uri_if_local` does here.
    for location in ("my_location", "./rel/dir", "file:rel-file"):
        exp_id = client.create_experiment(unique_name("rel"), artifact_location=location)
        got = client.get_experiment(exp_id).artifact_location
        assert got == resolve_uri_if_local(location), location
        assert os.path.isabs(got.removeprefix("file://"))
    for kept in ("s3://bucket/x", "mlflow-artifacts:/somewhere"):
        exp_id = client.create_experiment(unique_name("kept"), artifact_location=kept)
        assert client.get_experiment(exp_id).artifact_location == kept


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/3.0/mlflow/gateway/endpoints/list"),
        ("POST", "/api/3.0/mlflow/gateway/secrets/create"),
        ("POST", "/ajax-api/3.0/mlflow/gateway/endpoints/create"),
        ("POST", "/gateway/my-endpoint/mlflow/invocations"),
        ("GET", "/api/2.0/mlflow/gateway-proxy"),
    ],
)
def test_ai_gateway_is_refused_by_name(base_url, method, path):
    r = requests.request(method, base_url + path, json={}, timeout=30)
    assert r.status_code == 501
    err = _error(r)
    assert err["error_code"] == "NOT_IMPLEMENTED"
    assert "AI gateway is not implemented by wasmflow" in err["message"] and path in err["message"]


def test_unknown_paths_stay_endpoint_not_found(base_url):
    r = requests.get(f"{base_url}/api/2.0/mlflow/no-such-endpoint", timeout=30)
    assert r.status_code == 404 and _error(r)["error_code"] == "ENDPOINT_NOT_FOUND"


# ---- experiments and errors, body for body with a real `mlflow server` ----

# Ids, times and locations differ between the two servers' answers to the same calls.
_EXPERIMENT_VOLATILE = {"experiment_id", "artifact_location", "creation_time", "last_update_time"}


def _experiment_shapes(url: str, name: str) -> list[dict]:
    """An experiment without tags and one with, as get, get-by-name and search answer them."""
    json_headers = {"Content-Type": "application/json"}
    api = f"{url}/api/2.0/mlflow"
    bare = requests.post(f"{api}/experiments/create", json={"name": f"{name}-bare"},
                         headers=json_headers, timeout=30).json()["experiment_id"]
    requests.post(f"{api}/experiments/create", json={"name": f"{name}-tagged",
                  "tags": [{"key": "team", "value": "a"}]}, headers=json_headers, timeout=30)
    answers = [
        requests.get(f"{api}/experiments/get", params={"experiment_id": bare}, timeout=30).json(),
        requests.get(f"{api}/experiments/get-by-name",
                     params={"experiment_name": f"{name}-tagged"}, timeout=30).json(),
        requests.post(f"{api}/experiments/search", json={"filter": f"name LIKE '{name}-%'", "max_results": 10},
                      headers=json_headers, timeout=30).json(),
    ]
    out = []
    for answer in answers:
        for exp in answer.get("experiments") or [answer["experiment"]]:
            out.append({k: v for k, v in exp.items() if k not in _EXPERIMENT_VOLATILE})
    return out


def test_experiment_answers_are_mlflows(server, mlflow_server, unique_name):
    """MLflow 3.17 names the workspace (`default`) and leaves an empty tag list out."""
    name = unique_name("shape")
    ours, theirs = _experiment_shapes(server.url, name), _experiment_shapes(mlflow_server.url, name)
    assert ours == theirs
    assert {"workspace": "default"}.items() <= theirs[0].items() and "tags" not in theirs[0]
    assert mlflow.MlflowClient(server.url).get_experiment_by_name(f"{name}-bare").workspace == "default"


def _error_answers(url: str, name: str) -> list[tuple[int, dict]]:
    json_headers = {"Content-Type": "application/json"}
    api = f"{url}/api/2.0/mlflow"
    requests.post(f"{api}/experiments/create", json={"name": name}, headers=json_headers, timeout=30)
    calls = [
        requests.get(f"{api}/runs/get", params={"run_id": "0" * 32}, timeout=30),
        requests.get(f"{api}/registered-models/get", params={"name": f"{name}-none"}, timeout=30),
        requests.post(f"{api}/experiments/create", json={"name": name}, headers=json_headers,
                      timeout=30),
        requests.post(f"{api}/runs/search", json={"filter": "metrics.a === 1"},
                      headers=json_headers, timeout=30),
        requests.get(f"{api}/experiments/get-by-name", params={"experiment_name": f"{name}-none"},
                     timeout=30),
    ]
    return [(r.status_code, r.json()) for r in calls]


def test_error_bodies_carry_mlflows_classification(server, mlflow_server, unique_name):
    """`sqlstate` and `error_class`: a client that gets none derives other ones (`KAMC2`,
    `CP_RESOURCE_NOT_FOUND`) than MLflow's server sends."""
    name = unique_name("errs")
    ours, theirs = _error_answers(server.url, name), _error_answers(mlflow_server.url, name)
    assert [(s, {k: v for k, v in e.items() if k != "message"}) for s, e in ours] == \
        [(s, {k: v for k, v in e.items() if k != "message"}) for s, e in theirs]
    assert theirs[0][1]["error_class"] == "RESOURCE_NOT_FOUND"
    with pytest.raises(MlflowException) as info:
        mlflow.MlflowClient(server.url).get_run("0" * 32)
    assert (info.value.sqlstate, info.value.error_class) == ("KAM00", "RESOURCE_NOT_FOUND")


def _trace_info_keys(url: str, name: str) -> set[str]:
    mlflow.set_tracking_uri(url)
    mlflow.set_experiment(name)
    with mlflow.start_span("s"):
        pass
    trace_id = mlflow.get_last_active_trace_id()
    mlflow.flush_trace_async_logging()
    r = requests.get(f"{url}/api/3.0/mlflow/traces/{trace_id}", timeout=30)
    assert r.status_code == 200, r.text
    return set(r.json()["trace"]["trace_info"])


def test_trace_info_without_assessments_is_mlflows(server, mlflow_server, unique_name):
    """A trace with no assessments: MLflow's proto JSON has no `assessments` key."""
    name = unique_name("tinfo")
    try:
        theirs = _trace_info_keys(mlflow_server.url, name)
    finally:
        mlflow.set_tracking_uri(server.url)
    assert _trace_info_keys(server.url, name) == theirs and "assessments" not in theirs


def _plain_answers(url: str, name: str) -> list:
    artifact = f"{url}/api/2.0/mlflow-artifacts/artifacts/{name}/a.txt"
    version = requests.get(f"{url}/version", timeout=30)
    put = requests.put(artifact, data=b"hello", timeout=30)
    delete = requests.delete(artifact, timeout=30)
    return [version.headers["Content-Type"], version.text, put.status_code, put.content,
            delete.status_code, delete.json()]


def test_version_and_artifact_writes_answer_as_mlflow(server, mlflow_server, unique_name):
    name = unique_name("plain")
    assert _plain_answers(server.url, name) == _plain_answers(mlflow_server.url, name)
