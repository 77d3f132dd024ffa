"""Malformed searches answered as MLflow 3.17.2 answers them: the same HTTP status, `error_code` and
message for bad filters, `order_by` clauses, `max_results` and page tokens of every search endpoint
(runs, experiments, registered models and prompts, model versions, logged models, traces over REST
v3 / v2 and `mlflow.search_traces`, evaluation datasets), each sent to a real `mlflow server`
(SQLite, the `mlflow_server` fixture) and to wasmflow.

Where MLflow prints a Python set, the order of its members changes from one process to the next
(string hashing is salted), so such a message is compared with the set's members sorted. Where
MLflow answers 500 (an exception its handlers do not catch), wasmflow keeps a 400 with a clear
message: those inputs are listed in `CRASHES` with wasmflow's answer and in the README's
conformance notes.
"""

from __future__ import annotations

import re

import mlflow
import pytest
import requests
from mlflow.exceptions import MlflowException

RUNS = "/api/2.0/mlflow/runs/search"
EXPERIMENTS = "/api/2.0/mlflow/experiments/search"
MODELS = "/api/2.0/mlflow/registered-models/search"
VERSIONS = "/api/2.0/mlflow/model-versions/search"
LOGGED = "/api/2.0/mlflow/logged-models/search"
TRACES = "/api/3.0/mlflow/traces/search"
TRACES_V2 = "/api/2.0/mlflow/traces"
DATASETS = "/api/3.0/mlflow/datasets/search"

# Filters that every grammar refuses the same way (its own keys aside).
COMMON_FILTERS = [
    "name = ",
    "= 'a'",
    "name",
    "name = 'a",
    "name = a'",
    'name = "a',
    "name = 'a' AND",
    "AND name = 'a'",
    "name = 'a' OR name = 'b'",
    "name == 'a'",
    "name <> 'a'",
    "name = 'a' name = 'b'",
    "(name = 'a')",
    "name IN 'a'",
    "name IN ('a'",
    "name IN ()",
    "name IN (1, 2)",
    "name NOT LIKE 'a%'",
    "name = 'a' and",
    "name is 'a'",
    "name IS NOT NULL",
    "name IS NULL",
    "name = 'a' AND name",
    "`name = 'a'",
]

RUN_FILTERS = [
    "metrics.m = 'a'",
    "metrics.m = a",
    "metrics.m LIKE '1'",
    "metrics.m IN (1, 2)",
    "metrics.m > ",
    "metrics. > 1",
    "metric.m >> 1",
    "params.p > 'a'",
    "params.p = 1",
    "params.p = p",
    "params.p IN ('a', 1)",
    "params.p IN ('a'",
    "tags.t = 1",
    "tags.t < 'a'",
    "tags.t IN ('a')",
    "tags.t NOT IN ('a')",
    "attributes.status = 1",
    "attributes.status > 'a'",
    "attributes.unknown = 'a'",
    "attributes.start_time = 'a'",
    "attributes.start_time LIKE '1'",
    "attributes.run_id = 1",
    "attributes.run_id IN 'a'",
    "attributes.run_id IN ('a', 1)",
    "attributes.run_name IN ('a')",
    "attributes.created > 1",
    "attributes.end_time IN (1)",
    "run_name = 'a'",
    "datasets.unknown = 'a'",
    "datasets.name > 'a'",
    "datasets.name = 1",
    "datasets.digest IN ('a'",
    "unknown.x = 'a'",
    "status = RUNNING",
    "metrics.m = 1 AND",
    "metrics.`m = 1",
    "metrics.\"m\" = 1",
    "params.p IS NULL",
    "tags.t IS NULL",
]

EXPERIMENT_FILTERS = [
    "attribute.name = 1",
    "attribute.name > 'a'",
    "attribute.unknown = 'a'",
    "attribute.creation_time = 'a'",
    "attribute.creation_time LIKE '1'",
    "attribute.last_update_time IN (1)",
    "attribute.experiment_id = 'a'",
    "tags.t = 1",
    "tags.t > 'a'",
    "tags.t IN ('a')",
    "metrics.m > 1",
    "params.p = 'a'",
    "unknown.x = 'a'",
    "name IN ('a', 'b')",
    "tags.t IS NULL",
]

MODEL_FILTERS = [
    "name = 1",
    "name > 'a'",
    "name IN ('a')",
    "tags.t = 1",
    "tags.t > 'a'",
    "tags.t IS NULL",
    "tags.t IN ('a')",
    "unknown = 'a'",
    "attributes.name = 'a'",
    "metrics.m > 1",
    "version_number = 1",
    "run_id = 'a'",
    "creation_timestamp > 1",
]

VERSION_FILTERS = [
    "name = 1",
    "name > 'a'",
    "version_number = 'a'",
    "version_number LIKE '1'",
    "version_number IN ('a')",
    "version_number > a",
    "run_id = 1",
    "run_id > 'a'",
    "run_id IN (1)",
    "run_id IN ('a', 'b'",
    "source_path > 'a'",
    "tags.t = 1",
    "tags.t > 'a'",
    "tags.t IS NULL",
    "tags.t IN ('a')",
    "unknown = 'a'",
    "metrics.m > 1",
    "current_stage = 'None'",
    "attributes.name = 'a'",
]

LOGGED_FILTERS = [
    "name = 1",
    "name > 'a'",
    "unknown = 'a'",
    "attributes.unknown = 'a'",
    "metrics.m = 'a'",
    "metrics.m LIKE '1'",
    "params.p = 1",
    "params.p > 'a'",
    "tags.t = 1",
    "tags.t IS NULL",
    "creation_time = 'a'",
    "creation_timestamp > 1",
    "last_updated_timestamp LIKE '1'",
    "model_id IN ('a', 1)",
    "status = 1",
    "datasets.name = 'a'",
    "metrics.m = 1 OR metrics.m = 2",
]

TRACE_FILTERS = [
    "trace.status = 1",
    "trace.status > 'OK'",
    "trace.unknown = 'a'",
    "trace.timestamp_ms = 'a'",
    "trace.timestamp_ms LIKE '1'",
    "trace.execution_time_ms IN (1)",
    "trace.name > 'a'",
    "trace.name = a",
    "status = 'OK'",
    "unknown.x = 'a'",
    "tags.t > 'a'",
    "tags.t = 1",
    "metadata.m > 'a'",
    "metadata.m = 1",
    "span.name > 'a'",
    "span.unknown = 'a'",
    "span.type = 1",
    "span.attributes.k > 'a'",
    "feedback.f > 'a'",
    "feedback.f LIKE 1",
    "expectation.e > 'a'",
    "assessment.a = 'a'",
    "request_metadata.k = 1",
    "trace.status = 'OK' OR trace.status = 'ERROR'",
    "trace.request_id = 1",
    "trace.client_request_id > 'a'",
    "run_id = 1",
    "trace.status IN ('OK'",
    "trace.status IS NULL",
    "tags.t IS 'a'",
]

DATASET_FILTERS = [
    "name = 1",
    "name > 'a'",
    "unknown = 'a'",
    "created_time = 'a'",
    "tags.t = 1",
    "digest > 'a'",
]

BAD_ORDER_BYS = [
    "",
    " ",
    "name ASCC",
    "name DESC ASC",
    "unknown",
    "name,",
    "metrics.",
    "params.",
    "tags.",
    "attributes.unknown",
    "attribute.name",
    "name asc",
    "`name` DESC",
    "metrics.`m",
    "start_time DESC",
    "last_updated_timestamp",
    "creation_timestamp desc",
    "version_number",
    "timestamp_ms",
    "trace.timestamp_ms",
    "execution_time",
    "created_time DESC",
    "ASC",
    "name ASC DESC",
    "name ASC, name DESC",
]

BAD_MAX = [0, -1, 50001, 200001, 1000000]
BAD_TOKENS = ["x", "bm90IGpzb24=", "eyJvZmZzZXQiOiAtMX0=", "eyJvZmZzZXQiOiAiYSJ9", "eyJmb28iOiAxfQ=="]


def _cases():
    cases = []
    grammars = [
        ("runs", COMMON_FILTERS + RUN_FILTERS),
        ("experiments", COMMON_FILTERS + EXPERIMENT_FILTERS),
        ("models", COMMON_FILTERS + MODEL_FILTERS),
        ("versions", COMMON_FILTERS + VERSION_FILTERS),
        ("logged", COMMON_FILTERS + LOGGED_FILTERS),
        ("traces", COMMON_FILTERS + TRACE_FILTERS),
        ("traces_v2", TRACE_FILTERS[:6]),
        ("datasets", COMMON_FILTERS + DATASET_FILTERS),
        ("prompts", COMMON_FILTERS[:8] + MODEL_FILTERS),
        ("client_traces", TRACE_FILTERS[:8]),
    ]
    for endpoint, filters in grammars:
        cases += [(endpoint, {"filter": f}) for f in filters]
    for endpoint in ("runs", "experiments", "models", "versions", "traces", "datasets", "prompts"):
        cases += [(endpoint, {"order_by": [o]}) for o in BAD_ORDER_BYS]
        cases += [(endpoint, {"max_results": m}) for m in BAD_MAX]
        cases += [(endpoint, {"page_token": t}) for t in BAD_TOKENS]
    logged_orders = [
        {"field_name": ""},
        {"field_name": "unknown"},
        {"field_name": "metrics."},
        {"field_name": "params.p"},
        {"field_name": "tags.t"},
        {"field_name": "metrics.m", "dataset_digest": "d"},
        {"field_name": "name", "dataset_name": "d"},
    ]
    cases += [("logged", {"order_by": [o]}) for o in logged_orders]
    cases += [("logged", {"max_results": m}) for m in BAD_MAX]
    cases += [("logged", {"page_token": t}) for t in BAD_TOKENS]
    return cases


CASES = _cases()


def _case_id(case) -> str:
    endpoint, params = case
    return f"{endpoint}:{params!r}"


class Target:
    """One server and the ids the requests name (an experiment of each server's own)."""

    def __init__(self, url: str, experiment_id: str):
        self.url = url
        self.experiment_id = experiment_id


def _filter_key(endpoint: str) -> str:
    return {"datasets": "filter_string"}.get(endpoint, "filter")


def _rest(target: Target, endpoint: str, params: dict) -> tuple[int, str | None, str]:
    exp = target.experiment_id
    body = dict(params)
    if "filter" in body:
        body[_filter_key(endpoint)] = body.pop("filter")
    if endpoint == "runs":
        resp = requests.post(target.url + RUNS, json={"experiment_ids": [exp], **body}, timeout=60)
    elif endpoint == "experiments":
        # MLflow's REST handler takes a missing max_results as 0 and refuses it.
        resp = requests.post(target.url + EXPERIMENTS, json={"max_results": 10, **body}, timeout=60)
    elif endpoint in ("models", "versions"):
        resp = requests.get(target.url + (MODELS if endpoint == "models" else VERSIONS), params=body, timeout=60)
    elif endpoint == "logged":
        resp = requests.post(target.url + LOGGED, json={"experiment_ids": [exp], **body}, timeout=60)
    elif endpoint == "traces":
        location = {"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": exp}}
        resp = requests.post(target.url + TRACES, json={"locations": [location], **body}, timeout=60)
    elif endpoint == "traces_v2":
        resp = requests.get(target.url + TRACES_V2, params={"experiment_ids": [exp], **body}, timeout=60)
    elif endpoint == "datasets":
        resp = requests.post(target.url + DATASETS, json={"experiment_ids": [exp], **body}, timeout=60)
    else:
        raise AssertionError(endpoint)
    if resp.status_code == 200:
        return 200, None, ""
    try:
        err = resp.json()
    except ValueError:
        return resp.status_code, None, resp.text[:200]
    return resp.status_code, err.get("error_code"), err.get("message", "")


def _client(target: Target, endpoint: str, params: dict) -> tuple[int, str | None, str]:
    client = mlflow.MlflowClient(target.url)
    try:
        if endpoint == "prompts":
            client.search_prompts(
                filter_string=params.get("filter"),
                order_by=params.get("order_by"),
                max_results=params.get("max_results", 100),
                page_token=params.get("page_token"),
            )
        else:
            client.search_traces(locations=[target.experiment_id], filter_string=params.get("filter"))
    except MlflowException as e:
        return e.get_http_status_code(), e.error_code, e.message.removeprefix(f"{e.error_code}: ")
    return 200, None, ""


def answer(target: Target, case) -> tuple[int, str | None, str]:
    endpoint, params = case
    if endpoint in ("prompts", "client_traces"):
        return _client(target, endpoint, params)
    return _rest(target, endpoint, params)


# Why an input is still answered otherwise (see the README's conformance notes).
ACCEPTS = "MLflow takes this malformed input (200); wasmflow refuses it"
TAKES = "wasmflow takes this input (200) where MLflow refuses it"
TRACE_WORDS = "a trace filter's shape error: MLflow lists its SQL tokens, wasmflow names the problem"
LOGGED_WORDS = "the log-model search's SQL-token and token-count texts are not reproduced"
PARENTHESIS = "MLflow quotes a parenthesised clause as one SQL token"
KEYWORD = "MLflow's SQL lexer reads `unknown` as a keyword, no key; wasmflow names the key"
LEADING_AND = "MLflow skips a leading AND; wasmflow names it"
LEXER = "MLflow's SQL lexer splits these characters otherwise (`>>`, a backquote in a key)"
EMPTY_KEY = "MLflow reads `tags.` as an empty tag key before refusing it in order_by"

# MLflow 3.17.2 answers these with a 500 (an exception its handlers let through); wasmflow
# answers a 400 naming the problem.
CRASHES = {
    "models:{'filter': 'name IS NOT NULL'}",
    "models:{'filter': 'name IS NULL'}",
    "models:{'filter': 'tags.t IS NULL'}",
    "versions:{'filter': 'name IS NOT NULL'}",
    "versions:{'filter': 'name IS NULL'}",
    "versions:{'filter': 'tags.t IS NULL'}",
    'logged:{\'filter\': "attributes.unknown = \'a\'"}',
    'logged:{\'filter\': "metrics.m = \'a\'"}',
    'logged:{\'filter\': "creation_time = \'a\'"}',
    'datasets:{\'filter\': "name == \'a\'"}',
    'datasets:{\'filter\': "name <> \'a\'"}',
    'datasets:{\'filter\': "name NOT LIKE \'a%\'"}',
    "prompts:{'filter': 'tags.t IS NULL'}",
    "logged:{'page_token': 'x'}",
}

DIFFERENCES = {
    'runs:{\'filter\': "AND name = \'a\'"}': LEADING_AND,
    'runs:{\'filter\': "(name = \'a\')"}': PARENTHESIS,
    "runs:{'filter': 'metric.m >> 1'}": LEXER,
    "runs:{'filter': 'metrics.m = 1 AND'}": ACCEPTS,
    "runs:{'filter': 'metrics.`m = 1'}": LEXER,
    'experiments:{\'filter\': "name = \'a\' AND"}': ACCEPTS,
    'experiments:{\'filter\': "AND name = \'a\'"}': ACCEPTS,
    'experiments:{\'filter\': "name = \'a\' name = \'b\'"}': ACCEPTS,
    'experiments:{\'filter\': "(name = \'a\')"}': PARENTHESIS,
    'experiments:{\'filter\': "name = \'a\' and"}': ACCEPTS,
    'models:{\'filter\': "name = \'a\' AND"}': ACCEPTS,
    'models:{\'filter\': "AND name = \'a\'"}': ACCEPTS,
    'models:{\'filter\': "name = \'a\' name = \'b\'"}': ACCEPTS,
    'models:{\'filter\': "(name = \'a\')"}': PARENTHESIS,
    'models:{\'filter\': "name = \'a\' and"}': ACCEPTS,
    'models:{\'filter\': "unknown = \'a\'"}': KEYWORD,
    'versions:{\'filter\': "name = \'a\' AND"}': ACCEPTS,
    'versions:{\'filter\': "AND name = \'a\'"}': ACCEPTS,
    'versions:{\'filter\': "name = \'a\' name = \'b\'"}': ACCEPTS,
    'versions:{\'filter\': "(name = \'a\')"}': PARENTHESIS,
    'versions:{\'filter\': "name = \'a\' and"}': ACCEPTS,
    'versions:{\'filter\': "unknown = \'a\'"}': KEYWORD,
    'logged:{\'filter\': "name = \'a\' AND"}': ACCEPTS,
    'logged:{\'filter\': "AND name = \'a\'"}': ACCEPTS,
    'logged:{\'filter\': "name = \'a\' name = \'b\'"}': ACCEPTS,
    "logged:{'filter': 'name IN ()'}": ACCEPTS,
    "logged:{'filter': 'name IN (1, 2)'}": ACCEPTS,
    'logged:{\'filter\': "name = \'a\' and"}': ACCEPTS,
    "logged:{'filter': 'name IS NOT NULL'}": LOGGED_WORDS,
    "logged:{'filter': 'name IS NULL'}": LOGGED_WORDS,
    "logged:{'filter': 'name = 1'}": ACCEPTS,
    'logged:{\'filter\': "unknown = \'a\'"}': LOGGED_WORDS,
    "logged:{'filter': 'params.p = 1'}": ACCEPTS,
    "logged:{'filter': 'tags.t = 1'}": ACCEPTS,
    "logged:{'filter': 'tags.t IS NULL'}": LOGGED_WORDS,
    'logged:{\'filter\': "model_id IN (\'a\', 1)"}': ACCEPTS,
    "logged:{'filter': 'status = 1'}": ACCEPTS,
    "traces:{'filter': 'name = '}": TRACE_WORDS,
    'traces:{\'filter\': "= \'a\'"}': TRACE_WORDS,
    "traces:{'filter': 'name'}": TRACE_WORDS,
    'traces:{\'filter\': "name = \'a"}': TRACE_WORDS,
    'traces:{\'filter\': "name = a\'"}': TRACE_WORDS,
    'traces:{\'filter\': \'name = "a\'}': TRACE_WORDS,
    'traces:{\'filter\': "name = \'a\' AND"}': ACCEPTS,
    'traces:{\'filter\': "AND name = \'a\'"}': ACCEPTS,
    'traces:{\'filter\': "name = \'a\' OR name = \'b\'"}': TRACE_WORDS,
    'traces:{\'filter\': "name = \'a\' name = \'b\'"}': ACCEPTS,
    'traces:{\'filter\': "(name = \'a\')"}': TRACE_WORDS,
    'traces:{\'filter\': "name IN \'a\'"}': TRACE_WORDS,
    'traces:{\'filter\': "name IN (\'a\'"}': TRACE_WORDS,
    "traces:{'filter': 'name IN ()'}": TRACE_WORDS,
    "traces:{'filter': 'name IN (1, 2)'}": TRACE_WORDS,
    'traces:{\'filter\': "name = \'a\' and"}': ACCEPTS,
    'traces:{\'filter\': "name is \'a\'"}': TRACE_WORDS,
    'traces:{\'filter\': "name = \'a\' AND name"}': TRACE_WORDS,
    'traces:{\'filter\': "`name = \'a\'"}': TRACE_WORDS,
    'traces:{\'filter\': "trace.timestamp_ms = \'a\'"}': ACCEPTS,
    'traces:{\'filter\': "span.unknown = \'a\'"}': TRACE_WORDS,
    'traces:{\'filter\': "feedback.f > \'a\'"}': TRACE_WORDS,
    "traces:{'filter': 'feedback.f LIKE 1'}": TAKES,
    'traces:{\'filter\': "expectation.e > \'a\'"}': TRACE_WORDS,
    'traces:{\'filter\': "trace.status = \'OK\' OR trace.status = \'ERROR\'"}': TRACE_WORDS,
    'traces:{\'filter\': "trace.status IN (\'OK\'"}': TRACE_WORDS,
    'traces:{\'filter\': "tags.t IS \'a\'"}': TRACE_WORDS,
    'traces_v2:{\'filter\': "trace.timestamp_ms = \'a\'"}': ACCEPTS,
    'datasets:{\'filter\': "name = \'a\' AND"}': ACCEPTS,
    'datasets:{\'filter\': "AND name = \'a\'"}': ACCEPTS,
    'datasets:{\'filter\': "name = \'a\' name = \'b\'"}': ACCEPTS,
    'datasets:{\'filter\': "(name = \'a\')"}': PARENTHESIS,
    'datasets:{\'filter\': "name = \'a\' and"}': ACCEPTS,
    'datasets:{\'filter\': "name > \'a\'"}': ACCEPTS,
    'datasets:{\'filter\': "unknown = \'a\'"}': KEYWORD,
    'prompts:{\'filter\': "name = \'a\' AND"}': ACCEPTS,
    'prompts:{\'filter\': "AND name = \'a\'"}': ACCEPTS,
    'prompts:{\'filter\': "unknown = \'a\'"}': KEYWORD,
    'client_traces:{\'filter\': "trace.timestamp_ms = \'a\'"}': ACCEPTS,
    "runs:{'order_by': ['unknown']}": KEYWORD,
    "experiments:{'order_by': ['unknown']}": KEYWORD,
    "experiments:{'order_by': ['tags.']}": EMPTY_KEY,
    "models:{'order_by': ['unknown']}": KEYWORD,
    "models:{'max_results': 0}": ACCEPTS,
    "models:{'max_results': -1}": ACCEPTS,
    "versions:{'order_by': ['unknown']}": KEYWORD,
    "versions:{'order_by': ['tags.']}": EMPTY_KEY,
    "traces:{'order_by': ['unknown']}": TRACE_WORDS,
    "traces:{'order_by': ['name,']}": TRACE_WORDS,
    "traces:{'order_by': ['metrics.']}": TRACE_WORDS,
    "traces:{'order_by': ['params.']}": TRACE_WORDS,
    "traces:{'order_by': ['tags.']}": ACCEPTS,
    "traces:{'order_by': ['attributes.unknown']}": TRACE_WORDS,
    "traces:{'order_by': ['`name` DESC']}": ACCEPTS,
    "traces:{'order_by': ['metrics.`m']}": TRACE_WORDS,
    "traces:{'order_by': ['start_time DESC']}": TRACE_WORDS,
    "traces:{'order_by': ['last_updated_timestamp']}": TRACE_WORDS,
    "traces:{'order_by': ['creation_timestamp desc']}": TRACE_WORDS,
    "traces:{'order_by': ['version_number']}": TRACE_WORDS,
    "traces:{'order_by': ['created_time DESC']}": TRACE_WORDS,
    "traces:{'order_by': ['ASC']}": TRACE_WORDS,
    "traces:{'max_results': 0}": TRACE_WORDS,
    "traces:{'max_results': -1}": TRACE_WORDS,
    "traces:{'max_results': 50001}": TRACE_WORDS,
    "traces:{'max_results': 200001}": TRACE_WORDS,
    "traces:{'max_results': 1000000}": TRACE_WORDS,
    "datasets:{'order_by': ['unknown']}": KEYWORD,
    "datasets:{'order_by': ['tags.']}": EMPTY_KEY,
    "datasets:{'max_results': 0}": TAKES,
    "prompts:{'order_by': ['unknown']}": KEYWORD,
    "prompts:{'max_results': 0}": ACCEPTS,
    "prompts:{'max_results': -1}": ACCEPTS,
    "logged:{'order_by': [{'field_name': ''}]}": LOGGED_WORDS,
    "logged:{'order_by': [{'field_name': 'unknown'}]}": LOGGED_WORDS,
    "logged:{'order_by': [{'field_name': 'params.p'}]}": LOGGED_WORDS,
    "logged:{'order_by': [{'field_name': 'tags.t'}]}": LOGGED_WORDS,
    "logged:{'max_results': 0}": ACCEPTS,
    "logged:{'max_results': -1}": ACCEPTS,
    "logged:{'max_results': 50001}": ACCEPTS,
    "logged:{'max_results': 200001}": ACCEPTS,
    "logged:{'max_results': 1000000}": ACCEPTS,
    "logged:{'page_token': 'bm90IGpzb24='}": LOGGED_WORDS,
    "logged:{'page_token': 'eyJvZmZzZXQiOiAtMX0='}": TAKES,
    "logged:{'page_token': 'eyJvZmZzZXQiOiAiYSJ9'}": LOGGED_WORDS,
    "logged:{'page_token': 'eyJmb28iOiAxfQ=='}": LOGGED_WORDS,
}

# A Python set in MLflow's message: `{'a', 'b'}` (members quoted, `, `-separated).
_PY_SET = re.compile(r"\{'[^'{}]*'(?:, '[^'{}]*')*\}")


def normalised(answer: tuple[int, str | None, str]) -> tuple[int, str | None, str]:
    """The answer with each Python set's members sorted: Python orders a set of strings
    differently in every process (string hashing is salted), so only the members are MLflow's."""
    status, code, message = answer

    def sort_members(m: re.Match) -> str:
        return "{" + ", ".join(sorted(m.group(0)[1:-1].split(", "))) + "}"

    return status, code, _PY_SET.sub(sort_members, message)


@pytest.fixture(scope="module")
def targets(server, mlflow_server):
    """Both servers, each with an experiment of its own to search in."""
    pair = {}
    for name, srv in (("mlflow", mlflow_server), ("wasmflow", server)):
        resp = requests.post(
            srv.url + "/api/2.0/mlflow/experiments/create",
            json={"name": f"search-errors-{name}"},
            timeout=60,
        )
        assert resp.status_code == 200, resp.text
        pair[name] = Target(srv.url, resp.json()["experiment_id"])
    return pair


def test_set_normalisation_keeps_the_members():
    a = (400, "X", "Valid keys are '{'b', 'a'}' and {'z'}")
    b = (400, "X", "Valid keys are '{'a', 'b'}' and {'z'}")
    assert normalised(a) == normalised(b)
    assert normalised((400, "X", "keys '{'a', 'c'}'")) != normalised(b)


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_malformed_search_is_answered_as_mlflow_answers(targets, case):
    case_id = _case_id(case)
    theirs = answer(targets["mlflow"], case)
    ours = answer(targets["wasmflow"], case)
    if case_id in CRASHES:
        # MLflow's answer is an uncaught exception; wasmflow keeps a clear refusal.
        assert theirs[0] == 500, theirs
        assert ours[:2] == (400, "INVALID_PARAMETER_VALUE") and ours[2], ours
    elif case_id in DIFFERENCES:
        # Listed with the reason wasmflow answers otherwise. Once the answers agree the entry
        # must go, so the list stays the truth.
        if DIFFERENCES[case_id] == TAKES:
            assert ours[0] == 200 and theirs[0] == 400, (ours, theirs)
        else:
            assert ours[:2] == (400, "INVALID_PARAMETER_VALUE") and ours[2], ours
        assert normalised(ours) != normalised(theirs), f"{case_id} now agrees: drop it from DIFFERENCES"
    else:
        assert normalised(ours) == normalised(theirs)
