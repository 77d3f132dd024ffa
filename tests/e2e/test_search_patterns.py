"""LIKE and ILIKE in run, experiment, registered-model, model-version and logged-model searches,
compared with a real `mlflow server` (MLflow 3.17.2 over SQLite, the `mlflow_server` fixture).

MLflow's SQL store writes SQLAlchemy's `column.like(value)` / `.ilike(value)` with no ESCAPE, so
on SQLite `\\` is a plain character in a pattern (neither `\\%` nor `\\_` is literal, and `\\\\`
is two backslashes), LIKE is case-sensitive (`PRAGMA case_sensitive_like`) and ILIKE folds ASCII
case. The values below hold `\\`, `%`, `_` and mixed case; every filter is asked of both servers
and the sets of entities found must be the same."""

import re

import mlflow

# label -> the value each entity carries (in a name, tag, param), all different.
_VALUES = {
    "dir": "C:\\dir",
    "DIR": "c:\\DIR",
    "pct": "50%off",
    "x": "50Xoff",
    "us": "a_b",
    "ax": "aXb",
    "bs1": "back\\slash",
    "bs2": "back\\\\slash",
    "Mixed": "Mixed",
    "mixed": "mixed",
}
# Patterns never end in `\`: MLflow's filter parser takes `\'` as a quote inside the string.
_PATTERNS = [
    "%\\%", "%\\%%", "50\\%off", "50%off", "a\\_b", "a_b", "C:\\dir", "C:\\\\dir", "c:\\DIR",
    "back\\slash", "back\\\\slash", "back\\_slash", "%\\\\%", "%\\_%", "Mix%", "MIXED", "mi_ed",
]


def _name(label, value, allowed):
    """`value` as a name, or the label where MLflow refuses a character of it in names: a
    registered model's name takes neither `/` nor `:`, a logged model's only letters, digits,
    `_`, `-` and spaces (of the characters here)."""
    return value if re.fullmatch(allowed, value) else label


def _filters(field):
    return [f"{field} {op} '{p}'" for op in ("LIKE", "ILIKE") for p in _PATTERNS]


def _name_filters(prefix):
    """Name filters, and tag filters among the names of this test, for names `prefix + value`."""
    names = [f"name {op} '{prefix}{p}'" for op in ("LIKE", "ILIKE") for p in _PATTERNS]
    return names + [f"name LIKE '{prefix}%' AND {f}" for f in _filters("tags.t")]


def _answers(labels, filters, search):
    """Filter -> the sorted labels (`labels`: id -> label) of what `search(filter)` finds."""
    return {f: sorted(labels[i] for i in search(f) if i in labels) for f in filters}


def _same(found_by_server):
    """The answers of each server (filter -> sorted labels) must be the same; returns wasmflow's."""
    mlflow_found, wasmflow_found = found_by_server["mlflow"], found_by_server["wasmflow"]
    assert {f: (mlflow_found[f], wasmflow_found[f]) for f in mlflow_found if mlflow_found[f] != wasmflow_found[f]} == {}
    return wasmflow_found


def _servers(server, mlflow_server):
    return {"mlflow": mlflow.MlflowClient(mlflow_server.url), "wasmflow": mlflow.MlflowClient(server.url)}


def test_run_searches_take_backslash_as_mlflow_does(server, mlflow_server, unique_name):
    found = {}
    for name, client in _servers(server, mlflow_server).items():
        exp = client.create_experiment(unique_name("runs"))
        labels = {}
        for label, value in _VALUES.items():
            run = client.create_run(exp, run_name=value, tags={"t": value})
            client.log_param(run.info.run_id, "p", value)
            labels[run.info.run_id] = label
        found[name] = _answers(
            labels, _filters("attributes.run_name") + _filters("params.p") + _filters("tags.t"),
            lambda f: [r.info.run_id for r in client.search_runs([exp], filter_string=f, max_results=100)],
        )
    got = _same(found)
    # What the comparison covers, spelled out.
    assert got["params.p LIKE '%\\%'"] == ["DIR", "bs1", "bs2", "dir"]
    assert got["params.p LIKE '50\\%off'"] == []
    assert got["params.p LIKE 'C:\\dir'"] == ["dir"]
    assert got["params.p ILIKE 'C:\\dir'"] == ["DIR", "dir"]
    assert got["tags.t LIKE 'back\\\\slash'"] == ["bs2"]
    assert got["attributes.run_name LIKE 'Mix%'"] == ["Mixed"]
    assert got["attributes.run_name ILIKE 'MIXED'"] == ["Mixed", "mixed"]


def test_experiment_searches_take_backslash_as_mlflow_does(server, mlflow_server, unique_name):
    found = {}
    prefix = unique_name("exps")
    for name, client in _servers(server, mlflow_server).items():
        labels = {}
        for label, value in _VALUES.items():
            labels[client.create_experiment(prefix + value, tags={"t": value})] = label
        answers = _answers(
            labels, _name_filters(prefix),
            lambda f: [e.experiment_id for e in client.search_experiments(filter_string=f, max_results=1000)],
        )
        found[name] = {f.replace(prefix, "<prefix>"): v for f, v in answers.items()}
    got = _same(found)
    assert got["name LIKE '<prefix>%\\%'"] == ["DIR", "bs1", "bs2", "dir"]
    assert got["name LIKE '<prefix>%' AND tags.t LIKE 'a\\_b'"] == []


def test_registry_searches_take_backslash_as_mlflow_does(server, mlflow_server, unique_name):
    found = {}
    prefix = unique_name("models")
    for name, client in _servers(server, mlflow_server).items():
        labels = {}
        for label, value in _VALUES.items():
            model = client.create_registered_model(prefix + _name(label, value, r"[^/:]*"), tags={"t": value})
            labels[model.name] = label
        versions = {}
        holder = prefix + "versions"
        client.create_registered_model(holder)
        for label, value in _VALUES.items():
            v = client.create_model_version(holder, "s3://bucket/model", tags={"t": value})
            versions[v.version] = label
        answers = _answers(
            labels, _name_filters(prefix),
            lambda f: [m.name for m in client.search_registered_models(filter_string=f, max_results=1000)],
        )
        answers |= _answers(
            versions, [f"name = '{holder}' AND {f}" for f in _filters("tags.t")],
            lambda f: [v.version for v in client.search_model_versions(f, max_results=1000)],
        )
        found[name] = {f.replace(prefix, "<prefix>"): v for f, v in answers.items()}
    got = _same(found)
    assert got["name LIKE '<prefix>back\\slash'"] == ["bs1"]
    assert got["name = '<prefix>versions' AND tags.t LIKE '%\\\\%'"] == ["bs2"]


def test_logged_model_searches_take_backslash_as_mlflow_does(server, mlflow_server, unique_name):
    found = {}
    for name, client in _servers(server, mlflow_server).items():
        exp = client.create_experiment(unique_name("logged"))
        labels = {}
        for label, value in _VALUES.items():
            model_name = _name(label, value, r"[\w -]*")
            model = client.create_logged_model(exp, name=model_name, tags={"t": value}, params={"p": value})
            labels[model.model_id] = label
        found[name] = _answers(
            labels, _filters("name") + _filters("params.p") + _filters("tags.t"),
            lambda f: [m.model_id for m in client.search_logged_models([exp], filter_string=f, max_results=100)],
        )
    got = _same(found)
    assert got["name LIKE 'a\\_b'"] == []
    assert got["name ILIKE 'mi_ed'"] == ["Mixed", "mixed"]
    assert got["name LIKE 'mi_ed'"] == ["mixed"]
