"""The endpoints MLflow's own UI calls besides the REST API: `/graphql` (the queries the UI
sends, with their selection sets, variables and `@component` directive),
`/ajax-api/2.0/mlflow/metrics/get-history-bulk`, `.../experiments/search-datasets` and
`.../runs/create-promptlab-run`, `.../gateway-proxy`, `ui-telemetry` and the assistant's config
and providers;
answers checked for the shapes the UI reads."""

from __future__ import annotations

import math

import mlflow
import pandas as pd
import pytest
import requests

# The selection sets of the UI's queries (MLflow 3.17's `GetRun`, `MlflowGetExperimentQuery`,
# `GetMetricHistoryBulkInterval`, `SearchRuns`), written out here.
GET_RUN = """
query GetRun($data: MlflowGetRunInput!) @component(name: "MLflow.ExperimentRunTracking") {
  mlflowGetRun(input: $data) {
    apiError { helpUrl code message }
    run {
      info { runName status runUuid experimentId artifactUri endTime lifecycleStage startTime userId }
      experiment { experimentId name tags { key value } artifactLocation lifecycleStage lastUpdateTime }
      modelVersions { status version name source }
      data { metrics { key value step timestamp } params { key value } tags { key value } }
      inputs {
        datasetInputs { dataset { digest name profile schema source sourceType } tags { key value } }
        modelInputs { modelId }
      }
      outputs { modelOutputs { modelId step } }
    }
  }
}
"""

GET_EXPERIMENT = """
query MlflowGetExperimentQuery($input: MlflowGetExperimentInput!) @component(name: "MLflow.ExperimentRunTracking") {
  mlflowGetExperiment(input: $input) {
    apiError { code message }
    experiment {
      artifactLocation creationTime effectiveTraceArchivalRetention experimentId lastUpdateTime
      lifecycleStage name tags { key value }
    }
  }
}
"""

BULK_INTERVAL = """
query GetMetricHistoryBulkInterval($data: MlflowGetMetricHistoryBulkIntervalInput!)
@component(name: "MLflow.ExperimentRunTracking") {
  mlflowGetMetricHistoryBulkInterval(input: $data) {
    __typename
    metrics { timestamp step runId key value }
    apiError { code message }
  }
}
"""


def gql(base_url, query, variables=None, operation=None):
    r = requests.post(
        f"{base_url}/graphql",
        json={"query": query, "variables": variables or {}, "operationName": operation},
    )
    return r.status_code, r.json()


@pytest.fixture
def run_with_data(experiment_id, client, unique_name):
    with mlflow.start_run(run_name="ui-run") as run:
        mlflow.log_param("alpha", "0.5")
        mlflow.set_tag("team", "ui")
        for step in range(5):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        mlflow.log_metric("nan_metric", math.nan)
        ds = mlflow.data.from_pandas(pd.DataFrame({"a": [1, 2]}), name="train-set")
        mlflow.log_input(ds, context="training")
        mlflow.log_text("hello", "notes/readme.txt")
    name = unique_name("ui-model")
    client.create_registered_model(name)
    client.create_model_version(name, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    return run.info.run_id, name


def test_get_run_query(base_url, experiment_id, run_with_data):
    run_id, model_name = run_with_data
    status, body = gql(base_url, GET_RUN, {"data": {"runId": run_id}}, "GetRun")
    assert status == 200 and body["errors"] is None, body
    result = body["data"]["mlflowGetRun"]
    assert result["apiError"] is None
    run = result["run"]
    info = run["info"]
    assert info["runUuid"] == run_id and info["runName"] == "ui-run" and info["status"] == "FINISHED"
    assert info["experimentId"] == experiment_id
    # int64s are strings (MLflow's LongString), so JavaScript keeps every digit.
    assert isinstance(info["startTime"], str) and int(info["endTime"]) >= int(info["startTime"])
    assert run["experiment"]["experimentId"] == experiment_id
    assert isinstance(run["experiment"]["lastUpdateTime"], str)
    assert run["modelVersions"] == [
        {"status": "READY", "version": "1", "name": model_name, "source": f"runs:/{run_id}/model"}
    ]
    metrics = {m["key"]: m for m in run["data"]["metrics"]}
    assert metrics["loss"]["value"] == pytest.approx(0.2) and metrics["loss"]["step"] == "4"
    assert metrics["nan_metric"]["value"] is None  # NaN is null, as in MLflow
    assert {"key": "alpha", "value": "0.5"} in run["data"]["params"]
    assert {"key": "team", "value": "ui"} in run["data"]["tags"]
    (dsi,) = run["inputs"]["datasetInputs"]
    assert dsi["dataset"]["name"] == "train-set" and dsi["dataset"]["sourceType"]
    assert {"key": "mlflow.data.context", "value": "training"} in dsi["tags"]
    assert run["inputs"]["modelInputs"] == [] and run["outputs"] == {"modelOutputs": []}

    # A missing run: the field is null and the error is MLflow's message.
    status, body = gql(base_url, GET_RUN, {"data": {"runId": "0" * 32}}, "GetRun")
    assert body["data"] == {"mlflowGetRun": None}
    assert body["errors"] == [f"Run with id={'0' * 32} not found"]


def test_get_experiment_and_search_runs_and_artifacts(base_url, experiment_id, run_with_data):
    run_id, _ = run_with_data
    _, body = gql(base_url, GET_EXPERIMENT, {"input": {"experimentId": experiment_id}})
    exp = body["data"]["mlflowGetExperiment"]["experiment"]
    assert exp["experimentId"] == experiment_id and exp["lifecycleStage"] == "active"
    assert isinstance(exp["creationTime"], str) and exp["artifactLocation"]

    # Aliases, a named fragment and an inline fragment; the mutation form the UI uses.
    query = """
    mutation SearchRuns($data: MlflowSearchRunsInput!) {
      found: mlflowSearchRuns(input: $data) {
        runs { info { ...Ids } data { params { key value } } ... on MlflowRunExtension { experiment { name } } }
        nextPageToken
      }
    }
    fragment Ids on MlflowRunInfo { runUuid id2: runId }
    """
    _, body = gql(base_url, query, {"data": {"experimentIds": [experiment_id], "maxResults": 10}})
    assert body["errors"] is None, body
    (run,) = body["data"]["found"]["runs"]
    assert run["info"] == {"runUuid": run_id, "id2": run_id}
    assert run["experiment"]["name"]

    query = """{ mlflowListArtifacts(input: {runId: "%s", path: "notes"}) {
                   rootUri files { path isDir fileSize } } }""" % run_id
    _, body = gql(base_url, query)
    files = body["data"]["mlflowListArtifacts"]["files"]
    assert files == [{"path": "notes/readme.txt", "isDir": False, "fileSize": "5"}]


def test_metric_history_queries(base_url, run_with_data):
    run_id, model_name = run_with_data
    _, body = gql(base_url, BULK_INTERVAL, {"data": {"runIds": [run_id], "metricKey": "loss", "maxResults": 320}})
    res = body["data"]["mlflowGetMetricHistoryBulkInterval"]
    assert res["__typename"] == "MlflowGetMetricHistoryBulkIntervalResponse"
    assert [m["step"] for m in res["metrics"]] == ["0", "1", "2", "3", "4"]
    assert all(m["runId"] == run_id and m["key"] == "loss" for m in res["metrics"])

    r = requests.get(
        f"{base_url}/ajax-api/2.0/mlflow/metrics/get-history-bulk",
        params=[("run_id", run_id), ("metric_key", "loss"), ("max_results", "3")],
    )
    assert r.status_code == 200
    metrics = r.json()["metrics"]
    assert len(metrics) == 3 and {m["run_id"] for m in metrics} == {run_id}
    assert set(metrics[0]) == {"key", "value", "timestamp", "step", "run_id"}
    r = requests.get(f"{base_url}/ajax-api/2.0/mlflow/metrics/get-history-bulk", params={"metric_key": "loss"})
    assert r.status_code == 400
    assert r.json()["message"] == "GetMetricHistoryBulk request must specify at least one run_id."

    query = """query V($f: String) { mlflowSearchModelVersions(input: {filter: $f}) {
                 modelVersions { name version creationTimestamp currentStage status tags { key } } } }"""
    _, body = gql(base_url, query, {"f": f"name='{model_name}'"})
    (mv,) = body["data"]["mlflowSearchModelVersions"]["modelVersions"]
    assert mv["name"] == model_name and mv["currentStage"] == "None" and mv["tags"] == []
    assert isinstance(mv["creationTimestamp"], str)


def test_search_datasets(base_url, experiment_id, run_with_data):
    url = f"{base_url}/ajax-api/2.0/mlflow/experiments/search-datasets"
    r = requests.post(url, json={"experiment_ids": [experiment_id]})
    assert r.status_code == 200
    (summary,) = r.json()["dataset_summaries"]
    assert summary["experiment_id"] == experiment_id and summary["name"] == "train-set"
    assert summary["context"] == "training" and summary["digest"]
    assert requests.post(url, json={"experiment_ids": []}).status_code == 400
    _, body = gql(
        base_url,
        "mutation { mlflowSearchDatasets(input: {experimentIds: [\"%s\"]}) { datasetSummaries { name context } } }"
        % experiment_id,
    )
    assert body["data"]["mlflowSearchDatasets"]["datasetSummaries"] == [{"name": "train-set", "context": "training"}]


def test_promptlab_run(base_url, experiment_id, client):
    r = requests.post(
        f"{base_url}/ajax-api/2.0/mlflow/runs/create-promptlab-run",
        json={
            "experiment_id": experiment_id,
            "run_name": "prompt-1",
            "prompt_template": "Say {{ word }}",
            "prompt_parameters": [{"key": "word", "value": "hi"}],
            "model_route": "chat",
            "model_parameters": [{"key": "temperature", "value": 0.5}],
            "model_input": "Say hi",
            "model_output": "hi",
            "mlflow_version": "3.17.2",
        },
    )
    assert r.status_code == 200, r.text
    run = r.json()["run"]
    assert run["info"]["status"] == "FINISHED" and run["info"]["run_name"] == "prompt-1"
    params = {p["key"]: p["value"] for p in run["data"]["params"]}
    assert params == {"temperature": "0.5", "model_route": "chat", "prompt_template": "Say {{ word }}"}
    tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
    assert tags["mlflow.runSourceType"] == "PROMPT_ENGINEERING"
    table = mlflow.artifacts.load_dict(f"runs:/{run['info']['run_id']}/eval_results_table.json")
    assert table == {"columns": ["word", "prompt", "output"], "data": [["hi", "Say hi", "hi"]]}
    r = requests.post(
        f"{base_url}/ajax-api/2.0/mlflow/runs/create-promptlab-run", json={"experiment_id": experiment_id}
    )
    assert r.status_code == 400
    assert r.json()["message"] == "CreatePromptlabRun request must specify prompt_template."


def test_graphql_validation(base_url):
    status, body = gql(base_url, "{ mlflowGetRun(input: {runId: \"x\"}) { nope } }")
    assert body == {"data": None, "errors": ["Cannot query field 'nope' on type 'MlflowGetRunResponse'."]}
    status, body = gql(base_url, "{ mlflowGetRun(input: {runId: ")
    assert status == 400 and body["errors"][0].startswith("Syntax Error")
    _, body = gql(base_url, '{ test(inputString: "echo") { output } }')
    assert body == {"data": {"test": {"output": "echo"}}, "errors": None}
    deep = "{ mlflowGetRun(input: {}) { run { info { runId } } } }"
    aliases = "{ " + " ".join(f"a{i}: test(inputString: \"x\") {{ output }}" for i in range(11)) + " }"
    _, body = gql(base_url, aliases)
    assert body["data"] is None and "at most 10 root fields" in body["errors"][0]
    assert gql(base_url, deep)[1]["errors"]  # no run id: MLflow's error, not a crash


def test_gateway_proxy_answers_as_mlflow_without_a_gateway(base_url):
    # MLflow without MLFLOW_DEPLOYMENTS_TARGET answers every gateway-proxy call with no endpoints
    # (its runs table asks on each load); only the UI's /ajax-api path exists in MLflow.
    url = base_url + "/ajax-api/2.0/mlflow/gateway-proxy"
    r = requests.get(url, params={"gateway_path": "api/2.0/endpoints/"}, timeout=30)
    assert r.status_code == 200 and r.json() == {"endpoints": []}
    r = requests.post(url, json={"gateway_path": "api/2.0/endpoints/x", "json_data": {}}, timeout=30)
    assert r.status_code == 200 and r.json() == {"endpoints": []}


def test_assistant_config_and_providers_say_none_configured(base_url):
    # What MLflow's assistant API answers with nothing configured and no provider to offer:
    # every page of its UI asks for both.
    api = base_url + "/ajax-api/3.0/mlflow/assistant"
    r = requests.get(api + "/config", timeout=30)
    assert r.status_code == 200
    assert r.json() == {"providers": {}, "projects": {}, "remote_access_allowed": False}
    r = requests.get(api + "/providers", timeout=30)
    assert r.status_code == 200
    assert r.json() == {"providers": [], "resolved": None, "gateway_vendor_options": {}}
    r = requests.post(api + "/message", json={"message": "hi"}, timeout=30)
    assert r.status_code == 404 and r.json()["error_code"] == "ENDPOINT_NOT_FOUND"


def test_ui_telemetry_is_disabled(base_url):
    # MLflow with telemetry disabled: the UI is told not to send, and records sent are dropped.
    url = base_url + "/ajax-api/3.0/mlflow/ui-telemetry"
    r = requests.get(url, timeout=30)
    assert r.status_code == 200
    assert r.json() == {"disable_ui_telemetry": True, "disable_ui_events": [], "ui_rollout_percentage": 0}
    r = requests.post(url, json={"records": [{"event_name": "x", "timestamp_ns": 1, "params": {}}]}, timeout=30)
    assert r.status_code == 200 and r.json() == {"status": "disabled"}
