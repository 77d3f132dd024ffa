"""GenAI evaluation datasets (`mlflow.genai.datasets`) against wasmflow with the official client.

The expected values are what MLflow 3.17.2's server answers for the same calls: records are
deduplicated by their inputs (a repeated input merges expectations and tags and replaces
outputs), the dataset's schema, profile and digest follow its records, and tags, experiment
links and deletes behave as MLflow's do.
"""

from __future__ import annotations

import hashlib
import json

import mlflow
import pytest
import requests
from mlflow.exceptions import MlflowException
from mlflow.genai.datasets import (
    create_dataset,
    delete_dataset,
    delete_dataset_tag,
    get_dataset,
    search_datasets,
    set_dataset_tags,
)


@pytest.fixture
def datasets_api(server):
    return lambda path="": f"{server.url}/api/3.0/mlflow/datasets{path}"


def test_create_merge_and_read_back(experiment_id, unique_name):
    name = unique_name("ds")
    ds = create_dataset(name=name, experiment_id=[experiment_id], tags={"team": "qa"})
    assert ds.name == name and ds.dataset_id.startswith("d-")
    assert ds.tags["team"] == "qa"
    assert ds.schema is None and ds.profile is None
    assert ds.digest == hashlib.sha256(f"{name}:{ds.created_time}".encode()).hexdigest()[:8]

    ds.merge_records([
        {"inputs": {"q": "What is 2+2?"}, "expectations": {"answer": "4"}},
        {"inputs": {"q": "Capital of France?"}, "expectations": {"answer": "Paris"}, "tags": {"k": "v"}},
        {"inputs": {"q": "no expectations"}, "outputs": "plain out"},
    ])
    # The same inputs again: expectations merge key by key, outputs are replaced.
    ds.merge_records([
        {"inputs": {"q": "What is 2+2?"}, "expectations": {"explanation": "math"}, "outputs": {"r": 4}}
    ])

    df = ds.to_df()
    assert len(df) == 3
    rows = {r["inputs"]["q"]: r for r in df.to_dict("records")}
    first = rows["What is 2+2?"]
    assert first["expectations"] == {"answer": "4", "explanation": "math"}
    assert first["outputs"] == {"r": 4}
    assert first["source_type"] == "HUMAN"
    assert first["dataset_record_id"].startswith("dr-")
    assert rows["Capital of France?"]["outputs"] == {}
    assert rows["Capital of France?"]["tags"]["k"] == "v"
    assert rows["no expectations"]["outputs"] == "plain out"
    assert rows["no expectations"]["expectations"] is None
    assert rows["no expectations"]["source_type"] == "CODE"

    got = get_dataset(dataset_id=ds.dataset_id)
    assert got.name == name and got.tags["team"] == "qa"
    assert json.loads(got.schema) == {
        "inputs": {"q": "string"},
        "outputs": "string",
        "expectations": {"answer": "string", "explanation": "string"},
        "version": "1.0",
    }
    assert json.loads(got.profile) == {"num_records": 3}
    assert got.experiment_ids == [experiment_id]
    assert got.last_update_time >= got.created_time
    assert got.digest == hashlib.sha256(f"{name}:{got.last_update_time}".encode()).hexdigest()[:8]

    # Records are deleted by id; the profile counts them down.
    assert got.delete_records([first["dataset_record_id"]]) == 1
    again = get_dataset(dataset_id=ds.dataset_id)
    assert len(again.to_df()) == 2
    assert json.loads(again.profile) == {"num_records": 2}


def test_search_tags_experiments_and_delete(experiment_id, unique_name, client):
    name = unique_name("ds")
    ds = create_dataset(name=name, experiment_id=experiment_id, tags={"team": "x", "n": "1"})
    other = create_dataset(name=name + "-other", experiment_id=experiment_id)

    assert {d.name for d in search_datasets(experiment_ids=[experiment_id])} == {name, name + "-other"}
    assert [d.dataset_id for d in search_datasets(filter_string=f"name = '{name}'")] == [ds.dataset_id]
    by_tag = search_datasets(experiment_ids=[experiment_id], filter_string="tags.team = 'x'")
    assert [d.dataset_id for d in by_tag] == [ds.dataset_id]
    ordered = search_datasets(experiment_ids=[experiment_id], order_by=["name DESC"])
    assert [d.name for d in ordered] == [name + "-other", name]
    # The client finds a dataset by name through search.
    assert get_dataset(name=name).dataset_id == ds.dataset_id

    set_dataset_tags(dataset_id=ds.dataset_id, tags={"team": "y", "new": "z"})
    delete_dataset_tag(dataset_id=ds.dataset_id, key="n")
    delete_dataset_tag(dataset_id=ds.dataset_id, key="never-set")
    tags = get_dataset(dataset_id=ds.dataset_id).tags
    assert tags["team"] == "y" and tags["new"] == "z" and "n" not in tags

    second = client.create_experiment(unique_name("exp2"))
    mlflow.genai.datasets.add_dataset_to_experiments(ds.dataset_id, [second])
    assert get_dataset(dataset_id=ds.dataset_id).experiment_ids == [experiment_id, second]
    mlflow.genai.datasets.remove_dataset_from_experiments(ds.dataset_id, [experiment_id])
    assert get_dataset(dataset_id=ds.dataset_id).experiment_ids == [second]
    assert [d.dataset_id for d in search_datasets(experiment_ids=[second])] == [ds.dataset_id]
    with pytest.raises(MlflowException, match="No Experiment with id=987654321"):
        mlflow.genai.datasets.add_dataset_to_experiments(ds.dataset_id, ["987654321"])

    delete_dataset(dataset_id=ds.dataset_id)
    with pytest.raises(MlflowException, match=f"Evaluation dataset with id '{ds.dataset_id}' not found"):
        get_dataset(dataset_id=ds.dataset_id)
    delete_dataset(dataset_id=other.dataset_id)
    assert search_datasets(experiment_ids=[experiment_id]) == []


def test_rest_answers(datasets_api, experiment_id):
    """The wire shapes and refusals the client does not show directly."""
    # JSON inside the messages is written as Python's json.dumps writes it, as MLflow does.
    r = requests.post(datasets_api("/create"), json={"name": "tagged", "tags": '{"a":1,"b":"x"}'})
    assert r.json()["dataset"]["tags"] == '{"a": "1", "b": "x"}'
    r = requests.post(datasets_api("/create"), json={"name": "shape", "experiment_ids": [experiment_id]})
    assert r.status_code == 200
    dataset = r.json()["dataset"]
    assert list(dataset) == [
        "dataset_id", "name", "tags", "digest", "created_time", "last_update_time", "experiment_ids"
    ]
    assert dataset["tags"] == "{}" and dataset["experiment_ids"] == [experiment_id]
    did = dataset["dataset_id"]

    records = [
        {"inputs": {"b": [1, 2], "a": None}, "outputs": None,
         "source": {"source_type": "trace", "source_data": {"trace_id": "tr-1"}}},
        # The same inputs in another key order: one record, updated.
        {"inputs": {"a": None, "b": [1, 2]}, "expectations": {"x": 1.5}},
        {"outputs": 1},
    ]
    r = requests.post(datasets_api(f"/{did}/records"), json={"records": json.dumps(records)})
    assert r.json() == {"inserted_count": 2, "updated_count": 1}

    page = requests.get(datasets_api(f"/{did}/records"), params={"max_results": 1}).json()
    assert page["records"].startswith('[{"dataset_record_id": "dr-')
    assert "next_page_token" in page
    first = json.loads(page["records"])
    rest = requests.get(
        datasets_api(f"/{did}/records"), params={"max_results": 5, "page_token": page["next_page_token"]}
    ).json()
    assert "next_page_token" not in rest
    both = first + json.loads(rest["records"])
    assert len(both) == 2
    traced = next(rec for rec in both if rec["inputs"])
    assert list(traced) == [
        "dataset_record_id", "dataset_id", "inputs", "expectations", "tags", "source", "source_id",
        "source_type", "created_time", "last_update_time",
    ]
    assert traced["source"] == {"source_type": "TRACE", "source_data": {"trace_id": "tr-1"}}
    assert (traced["source_id"], traced["expectations"], traced["tags"]) == ("tr-1", {"x": 1.5}, {})
    assert json.loads(requests.get(datasets_api(f"/{did}")).json()["dataset"]["schema"]) == {
        "inputs": {"b": "array", "a": "null"},
        "outputs": "integer",
        "expectations": {"x": "float"},
        "version": "1.0",
    }

    missing = {
        (requests.get, "/d-nope"): (404, "Evaluation dataset with id 'd-nope' not found"),
        (requests.patch, "/d-nope/tags"): (404, "Could not find evaluation dataset with ID d-nope"),
        (requests.post, "/d-nope/remove-experiments"): (404, "Dataset 'd-nope' not found"),
    }
    for (call, path), (status, message) in missing.items():
        r = call(datasets_api(path), json={"tags": "{}", "experiment_ids": ["0"]})
        assert (r.status_code, r.json()["message"]) == (status, message), path
    assert requests.get(datasets_api("/d-nope/records")).json() == {"records": "[]"}
    assert requests.get(datasets_api("/d-nope/experiment-ids")).json() == {}
    assert requests.delete(datasets_api("/d-nope")).json() == {}

    r = requests.post(datasets_api("/create"), json={})
    assert r.status_code == 400 and r.json()["message"].startswith("Missing value for required parameter 'name'.")
    r = requests.post(datasets_api("/search"), json={"filter_string": "tags.a > '1'", "max_results": 5})
    assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    r = requests.post(datasets_api("/search"), json={"max_results": 100000})
    assert r.json()["message"] == "Invalid value 100000 for parameter 'max_results' supplied. It must be at most 50000"
    r = requests.post(datasets_api(f"/{did}/records"), json={"records": "not json"})
    assert r.status_code == 400
    assert requests.get(datasets_api(f"/{did}")).status_code == 200
