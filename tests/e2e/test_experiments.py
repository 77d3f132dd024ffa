"""Experiments through the official client: CRUD, tags, lifecycle and search with paging."""

from __future__ import annotations

import pytest
from mlflow.entities import ViewType
from mlflow.exceptions import MlflowException


def test_default_experiment_exists(client):
    exp = client.get_experiment("0")
    assert exp.experiment_id == "0"
    assert exp.name == "Default"
    assert exp.lifecycle_stage == "active"
    by_name = client.get_experiment_by_name("Default")
    assert by_name is not None and by_name.experiment_id == "0"


def test_create_get_and_get_by_name(client, unique_name):
    name = unique_name("create")
    exp_id = client.create_experiment(name, tags={"team": "alpha", "purpose": "e2e"})
    assert isinstance(exp_id, str) and exp_id not in ("", "0")

    exp = client.get_experiment(exp_id)
    assert exp.experiment_id == exp_id
    assert exp.name == name
    assert exp.lifecycle_stage == "active"
    assert exp.tags["team"] == "alpha"
    assert exp.tags["purpose"] == "e2e"
    assert exp.artifact_location, "an experiment must have an artifact location"
    assert exp.creation_time and exp.creation_time > 0
    assert exp.last_update_time and exp.last_update_time >= exp.creation_time

    by_name = client.get_experiment_by_name(name)
    assert by_name is not None
    assert by_name.experiment_id == exp_id
    assert by_name.tags == exp.tags

    assert client.get_experiment_by_name(unique_name("never-created")) is None


def test_create_with_explicit_artifact_location(client, unique_name, tmp_path):
    name = unique_name("artloc")
    loc = (tmp_path / "custom-artifacts").as_uri()
    exp_id = client.create_experiment(name, artifact_location=loc)
    assert client.get_experiment(exp_id).artifact_location == loc


def test_experiment_ids_are_distinct(client, unique_name):
    ids = {client.create_experiment(unique_name(f"distinct{i}")) for i in range(5)}
    assert len(ids) == 5


def test_rename_experiment(client, unique_name):
    old, new = unique_name("old"), unique_name("new")
    exp_id = client.create_experiment(old)
    before = client.get_experiment(exp_id)
    client.rename_experiment(exp_id, new)
    after = client.get_experiment(exp_id)
    assert after.name == new
    assert after.last_update_time >= before.last_update_time
    assert client.get_experiment_by_name(old) is None
    assert client.get_experiment_by_name(new).experiment_id == exp_id


def test_set_and_delete_experiment_tag(client, unique_name):
    exp_id = client.create_experiment(unique_name("tags"))
    client.set_experiment_tag(exp_id, "color", "red")
    client.set_experiment_tag(exp_id, "size", "3")
    assert client.get_experiment(exp_id).tags == {"color": "red", "size": "3"}

    # Setting again overwrites.
    client.set_experiment_tag(exp_id, "color", "blue")
    assert client.get_experiment(exp_id).tags["color"] == "blue"

    client.delete_experiment_tag(exp_id, "color")
    tags = client.get_experiment(exp_id).tags
    assert "color" not in tags
    assert tags == {"size": "3"}


def test_delete_and_restore_experiment(client, unique_name):
    name = unique_name("lifecycle")
    exp_id = client.create_experiment(name)

    client.delete_experiment(exp_id)
    exp = client.get_experiment(exp_id)
    assert exp.lifecycle_stage == "deleted"

    active = client.search_experiments(filter_string=f"name = '{name}'")
    assert [e.experiment_id for e in active] == []
    deleted = client.search_experiments(
        view_type=ViewType.DELETED_ONLY, filter_string=f"name = '{name}'"
    )
    assert [e.experiment_id for e in deleted] == [exp_id]
    everything = client.search_experiments(view_type=ViewType.ALL, filter_string=f"name = '{name}'")
    assert [e.experiment_id for e in everything] == [exp_id]

    # The name stays taken while the experiment is deleted.
    with pytest.raises(MlflowException) as exc:
        client.create_experiment(name)
    assert exc.value.error_code == "RESOURCE_ALREADY_EXISTS"

    client.restore_experiment(exp_id)
    assert client.get_experiment(exp_id).lifecycle_stage == "active"
    active = client.search_experiments(filter_string=f"name = '{name}'")
    assert [e.experiment_id for e in active] == [exp_id]


def test_search_experiments_by_name_like(client, unique_name):
    prefix = unique_name("like")
    ids = {client.create_experiment(f"{prefix}-{i}") for i in range(3)}
    other = client.create_experiment(unique_name("unrelated"))

    found = client.search_experiments(filter_string=f"name LIKE '{prefix}-%'")
    assert {e.experiment_id for e in found} == ids
    assert other not in {e.experiment_id for e in found}

    exact = client.search_experiments(filter_string=f"name = '{prefix}-1'")
    assert [e.name for e in exact] == [f"{prefix}-1"]

    # ILIKE is case-insensitive.
    found_ci = client.search_experiments(filter_string=f"name ILIKE '{prefix.upper()}-%'")
    assert {e.experiment_id for e in found_ci} == ids


def test_search_experiments_by_tag(client, unique_name):
    prefix = unique_name("tagsearch")
    a = client.create_experiment(f"{prefix}-a", tags={"stage": "prod"})
    b = client.create_experiment(f"{prefix}-b", tags={"stage": "dev"})
    c = client.create_experiment(f"{prefix}-c", tags={"stage": "prod", "owner": "zed"})

    prod = client.search_experiments(
        filter_string=f"name LIKE '{prefix}%' AND tags.stage = 'prod'"
    )
    assert {e.experiment_id for e in prod} == {a, c}
    owned = client.search_experiments(filter_string=f"name LIKE '{prefix}%' AND tags.owner = 'zed'")
    assert [e.experiment_id for e in owned] == [c]
    not_prod = client.search_experiments(
        filter_string=f"name LIKE '{prefix}%' AND tags.stage != 'prod'"
    )
    assert [e.experiment_id for e in not_prod] == [b]


def test_search_experiments_order_by(client, unique_name):
    prefix = unique_name("order")
    names = [f"{prefix}-{s}" for s in ("b", "c", "a")]
    ids = {n: client.create_experiment(n) for n in names}

    asc = client.search_experiments(filter_string=f"name LIKE '{prefix}%'", order_by=["name ASC"])
    assert [e.name for e in asc] == sorted(names)
    desc = client.search_experiments(filter_string=f"name LIKE '{prefix}%'", order_by=["name DESC"])
    assert [e.name for e in desc] == sorted(names, reverse=True)

    # Newest first by creation time (ids break ties the same way MLflow does: experiment_id).
    by_time = client.search_experiments(
        filter_string=f"name LIKE '{prefix}%'", order_by=["creation_time DESC", "experiment_id DESC"]
    )
    times = [e.creation_time for e in by_time]
    assert times == sorted(times, reverse=True)
    assert {e.experiment_id for e in by_time} == set(ids.values())


def test_search_experiments_paging(client, unique_name):
    prefix = unique_name("paging")
    created = [client.create_experiment(f"{prefix}-{i:02d}") for i in range(7)]

    seen: list[str] = []
    token = None
    pages = 0
    while True:
        page = client.search_experiments(
            filter_string=f"name LIKE '{prefix}-%'",
            order_by=["name ASC"],
            max_results=3,
            page_token=token,
        )
        pages += 1
        assert len(page) <= 3
        seen.extend(e.experiment_id for e in page)
        token = page.token
        if not token:
            break
        assert pages < 10, "paging does not terminate"
    assert pages == 3
    assert seen == created, "every experiment exactly once, in name order"


def test_experiment_by_unknown_name_and_id(client):
    assert client.get_experiment_by_name("definitely-no-such-experiment-xyz-123") is None
    with pytest.raises(MlflowException) as exc:
        client.get_experiment("987654321")
    assert exc.value.error_code == "RESOURCE_DOES_NOT_EXIST"
