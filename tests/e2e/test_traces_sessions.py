"""Session-level assessments and feedback without a value, as MLflow 3.17.2 answers them.

An assessment whose metadata names a session (`mlflow.trace.session`, as the session scorers of
`mlflow.genai.evaluate` log theirs, on the first trace of the session) is a session-level
assessment: MLflow's SQL store makes a `feedback.<name>` / `expectation.<name>` filter that such
a (valid) assessment matches match every trace of the session of the trace holding it, among the
searched experiments; `get_trace` still shows it on the holding trace alone. A feedback logged
without a value (`value=None`, or a scorer's error) is kept as the JSON text `null`, which the
filters and the trace metrics compare like any other value.

The same calls go to a real `mlflow server` (the session's `mlflow_server` fixture, SQLite) and to
wasmflow (SQLite, or PostgreSQL with WASMFLOW_E2E_BACKEND=postgres), and what the official client
sees is compared: the traces each filter finds, the assessments `get_trace` and
`mlflow.search_traces`' DataFrame hold, trace metrics by assessment value and filter
correlations; and the session scorers of `mlflow.genai.evaluate`, which log such assessments."""

from __future__ import annotations

import json
import math
import time

import mlflow
import requests
from mlflow.entities import AssessmentError, Feedback
from mlflow.genai.scorers import scorer
from mlflow.tracing.client import TracingClient

from conftest import POSTGRES, MlflowServer

SESSION = "mlflow.trace.session"

# label, the session of the trace (its `mlflow.trace.session` metadata), in the order made.
_TRACES = [("a1", "S1"), ("a2", "S1"), ("a3", "S1"), ("b1", "S2"), ("b2", "S2"), ("n", None)]

_FILTERS = [
    # A session-level feedback on a1 covers a1, a2, a3 (session S1).
    "feedback.coherent = 'good'", "feedback.coherent = 'bad'", "feedback.coherent != 'good'",
    "feedback.coherent != 'bad'", "feedback.coherent LIKE '%oo%'", "feedback.coherent ILIKE '%GOOD%'",
    "feedback.coherent RLIKE '^\"g'", "feedback.coherent IS NULL", "feedback.coherent IS NOT NULL",
    "feedback.coherent = 'good' AND trace.status = 'OK'", "feedback.coherent = 'good' AND feedback.coherent = 'bad'",
    # The metadata names S1, but the holding trace b1 is of S2: S2 is covered.
    "feedback.misnamed = 'x'", "feedback.misnamed IS NULL",
    # A number, compared as one; an expectation.
    "feedback.score > 3", "feedback.score <= 3", "feedback.score = '4.0'",
    "expectation.goal = 'finish'", "expectation.goal IS NOT NULL", "expectation.goal IS NULL",
    # Overridden, the session-level feedback covers nothing; its replacement is trace-level.
    "feedback.revised = 'first'", "feedback.revised = 'second'", "feedback.revised IS NOT NULL",
    # Made session-level by an update of its metadata.
    "feedback.updated = 'u'", "feedback.updated IS NULL",
    # Session-level in another experiment: covers this one's traces only when both are searched.
    "feedback.elsewhere = 'yes'", "feedback.elsewhere IS NULL",
    # Feedback without a value: the text `null`, trace-level and session-level.
    "feedback.judged = 'null'", "feedback.judged != 'x'", "feedback.judged LIKE 'nu%'",
    "feedback.judged ILIKE '%NULL%'", "feedback.judged RLIKE '^null$'", "feedback.judged = 'None'",
    "feedback.judged > 0", "feedback.judged IS NULL", "feedback.judged IS NOT NULL",
    "feedback.session_judged = 'null'", "feedback.session_judged IS NOT NULL",
    "feedback.session_judged IS NULL",
]

_METRICS = [
    ("assessment_count", "COUNT", ["assessment_name", "assessment_value"]),
    ("assessment_count", "COUNT", ["assessment_name"]),
    ("assessment_value", "AVG", ["assessment_name"]),
]

_CORRELATIONS = [
    ("feedback.coherent = 'good'", "feedback.judged IS NOT NULL"),
    ("feedback.judged = 'null'", "feedback.coherent IS NULL"),
]

# Ids and times differ between the two servers' runs of the same code.
_VOLATILE = {"assessment_id", "trace_id", "span_id", "create_time", "last_update_time"}
_RUN_METADATA = "mlflow.assessment.sourceRunId"


def _make(url, name):
    """The traces of `_TRACES` and their assessments in a new experiment, and a trace of session
    S1 in a second experiment holding a session-level feedback: (experiment id, the other
    experiment's id, trace id -> label)."""
    mlflow.set_tracking_uri(url)
    client = mlflow.MlflowClient(url)
    other = client.create_experiment(name + "-other")
    exp = mlflow.set_experiment(name).experiment_id
    ids = {}
    for label, session in _TRACES:
        with mlflow.start_span("s"):
            if session:
                mlflow.update_current_trace(metadata={SESSION: session})
        ids[label] = mlflow.get_last_active_trace_id()
        # Distinct start times: the traces are compared in the order made.
        time.sleep(0.003)
    mlflow.set_experiment(experiment_id=other)
    with mlflow.start_span("s"):
        mlflow.update_current_trace(metadata={SESSION: "S1"})
    ids["o1"] = mlflow.get_last_active_trace_id()
    mlflow.flush_trace_async_logging()

    def feedback(label, name, value=None, session=None, **kw):
        metadata = {SESSION: session} if session else None
        return mlflow.log_feedback(trace_id=ids[label], name=name, value=value, metadata=metadata, **kw)

    feedback("a1", "coherent", "good", session="S1")
    feedback("b1", "coherent", "bad")
    feedback("b1", "misnamed", "x", session="S1")
    feedback("b2", "score", 4, session="S2")
    feedback("a2", "score", 2)
    mlflow.log_expectation(trace_id=ids["a3"], name="goal", value="finish", metadata={SESSION: "S1"})
    first = feedback("a3", "revised", "first", session="S1")
    mlflow.override_feedback(trace_id=ids["a3"], assessment_id=first.assessment_id, value="second")
    updated = feedback("b2", "updated", "u")
    mlflow.update_assessment(trace_id=ids["b2"], assessment_id=updated.assessment_id,
                             assessment=Feedback(name="updated", value="u", metadata={SESSION: "S2"}))
    feedback("o1", "elsewhere", "yes", session="S1")
    feedback("n", "judged", None, rationale="no answer")
    feedback("b1", "judged", error=AssessmentError(error_code="SCORER_ERROR", error_message="boom"))
    feedback("a2", "session_judged", error=AssessmentError(error_code="SCORER_ERROR", error_message="boom"),
             session="S1")
    return exp, other, ids


def _labels(found, labels):
    return sorted(labels[t.info.trace_id] for t in found)


def _assessments(items):
    """Assessments (dicts or entities) without ids and times, in a stable order."""
    out = []
    for a in items:
        a = a if isinstance(a, dict) else a.to_dictionary()
        a = {k: v for k, v in a.items() if k not in _VOLATILE}
        if "overrides" in a:
            a["overrides"] = "<the overridden assessment's id>"
        if _RUN_METADATA in a.get("metadata", {}):
            a["metadata"] = {**a["metadata"], _RUN_METADATA: "<the evaluation's run>"}
        out.append(a)
    return sorted(out, key=lambda a: json.dumps(a, sort_keys=True))


def _answers(url, name):
    exp, other, ids = _make(url, name)
    labels = {tid: label for label, tid in ids.items()}
    client = mlflow.MlflowClient(url)
    got = {"filters": {}, "both experiments": {}, "get_trace": {}, "frame": {}}
    for f in _FILTERS:
        got["filters"][f] = _labels(client.search_traces(locations=[exp], filter_string=f, max_results=100), labels)
        got["both experiments"][f] = _labels(
            client.search_traces(locations=[exp, other], filter_string=f, max_results=100), labels)
    for label, tid in ids.items():
        r = requests.get(f"{url}/api/3.0/mlflow/traces/{tid}", timeout=30)
        assert r.status_code == 200, r.text
        got["get_trace"][label] = _assessments(r.json()["trace"]["trace_info"].get("assessments", []))
        got["get_trace"][label + " (client)"] = _assessments(client.get_trace(tid).info.assessments)
    for f in ["feedback.coherent = 'good'", "feedback.judged IS NOT NULL"]:
        df = mlflow.search_traces(locations=[exp], filter_string=f)
        got["frame"][f] = sorted((labels[row["trace_id"]], _assessments(row["assessments"]))
                                 for row in df.to_dict("records"))
    for metric, aggregation, dimensions in _METRICS:
        r = requests.post(f"{url}/api/3.0/mlflow/traces/metrics", timeout=30, json={
            "experiment_ids": [exp], "view_type": "ASSESSMENTS", "metric_name": metric,
            "aggregations": [{"aggregation_type": aggregation}], "dimensions": dimensions})
        assert r.status_code == 200, r.text
        points = r.json().get("data_points", [])
        got[f"metrics {metric} {aggregation} {dimensions}"] = sorted(
            json.dumps(p, sort_keys=True) for p in points)
    for f1, f2 in _CORRELATIONS:
        r = TracingClient(url).calculate_trace_filter_correlation([exp], f1, f2)
        got[f"correlation {f1} / {f2}"] = (r.filter1_count, r.filter2_count, r.joint_count, r.total_count,
                                           "nan" if math.isnan(r.npmi) else round(r.npmi, 9))
    return got


def test_session_assessments_and_null_feedback_answer_as_mlflow(server, mlflow_server, unique_name):
    theirs = _answers(mlflow_server.url, unique_name("sessions"))
    ours = _answers(server.url, unique_name("sessions"))
    for part in theirs:
        if isinstance(theirs[part], dict):
            diff = {k: (ours[part][k], v) for k, v in theirs[part].items() if ours[part][k] != v}
            assert diff == {}, part
        else:
            assert ours[part] == theirs[part], part

    # What the comparison covers, spelled out.
    got = ours["filters"]
    assert got["feedback.coherent = 'good'"] == ["a1", "a2", "a3"]
    assert got["feedback.coherent IS NULL"] == ["b2", "n"]
    assert got["feedback.misnamed = 'x'"] == ["b1", "b2"]
    assert got["feedback.score > 3"] == ["b1", "b2"]
    assert got["feedback.revised = 'first'"] == [] and got["feedback.revised = 'second'"] == ["a3"]
    assert got["feedback.updated = 'u'"] == ["b1", "b2"]
    assert got["feedback.elsewhere = 'yes'"] == []
    assert ours["both experiments"]["feedback.elsewhere = 'yes'"] == ["a1", "a2", "a3", "o1"]
    assert got["feedback.judged = 'null'"] == ["b1", "n"]
    assert got["feedback.judged != 'x'"] == ["b1", "n"]
    assert got["feedback.session_judged IS NOT NULL"] == ["a1", "a2", "a3"]
    # The session-level feedback is shown on the trace holding it alone.
    assert [a["assessment_name"] for a in ours["get_trace"]["a1"]] == ["coherent"]
    assert ours["get_trace"]["a2"] and all(a["assessment_name"] != "coherent" for a in ours["get_trace"]["a2"])
    nul = [a for a in ours["get_trace"]["n"] if a["assessment_name"] == "judged"][0]
    assert nul["feedback"] == {"value": None}
    assert any('"assessment_value": "null"' in p
               for p in ours["metrics assessment_count COUNT ['assessment_name', 'assessment_value']"])


# ---------------------------------------------------------------------------------------------
# The session scorers of `mlflow.genai.evaluate`: each logs its feedback once a session, on the
# session's first trace, with the session in its metadata (an error as a feedback without a value).

@scorer
def turns(session) -> int:
    return len(session)


@scorer
def broken(session) -> int:
    raise ValueError("no judge here")


@mlflow.trace
def _chat(question, session):
    mlflow.update_current_trace(metadata={SESSION: session})
    return question.upper()


_EVALUATE_FILTERS = ["feedback.turns > 2", "feedback.turns = '2.0'", "feedback.turns IS NULL",
                     "feedback.broken = 'null'", "feedback.broken IS NOT NULL", "feedback.broken > 0"]


def _evaluated(url, name):
    mlflow.set_tracking_uri(url)
    exp = mlflow.set_experiment(name).experiment_id
    labels = {}
    for session, questions in [("S1", ["a", "b", "c"]), ("S2", ["d", "e"])]:
        for q in questions:
            _chat(q, session)
            labels[mlflow.get_last_active_trace_id()] = q
            time.sleep(0.003)
    mlflow.flush_trace_async_logging()
    result = mlflow.genai.evaluate(data=mlflow.search_traces(locations=[exp]), scorers=[turns, broken])
    client = mlflow.MlflowClient(url)
    got = {"metrics": {k: float(v) for k, v in result.metrics.items()}}
    for f in _EVALUATE_FILTERS:
        got[f] = _labels(client.search_traces(locations=[exp], filter_string=f), labels)
    for tid, label in labels.items():
        got[label] = _assessments(client.get_trace(tid).info.assessments)
    return got


def test_session_scorers_of_evaluate_answer_as_mlflow(server, mlflow_server, unique_name):
    theirs = _evaluated(mlflow_server.url, unique_name("evaluate"))
    ours = _evaluated(server.url, unique_name("evaluate"))
    assert {k: (ours[k], v) for k, v in theirs.items() if ours[k] != v} == {}
    assert ours["feedback.turns > 2"] == ["a", "b", "c"]
    assert ours["feedback.broken = 'null'"] == ["a", "b", "c", "d", "e"]
    assert [a["assessment_name"] for a in ours["a"]] == ["broken", "turns"] and ours["b"] == []


# ---------------------------------------------------------------------------------------------
# The case of the metadata key that makes an assessment session-level. MLflow asks its store for
# the metadata's JSON text `LIKE '%"mlflow.trace.session":%'`: case-sensitive on PostgreSQL, and on
# SQLite too, where MLflow sets `PRAGMA case_sensitive_like` (SQLite's LIKE ignores ASCII case
# without it). Compared with a real `mlflow server` on the same backend as wasmflow's: the
# session's SQLite one, or one of its own on a new PostgreSQL database.

class _MlflowOnPostgres(MlflowServer):
    def command(self) -> list[str]:
        cmd = super().command()
        # The venv has psycopg2, SQLAlchemy's driver for this scheme.
        cmd[cmd.index("--backend-store-uri") + 1] = self.backend_uri.replace(
            "postgresql://", "postgresql+psycopg2://", 1)
        return cmd


# feedback name, the metadata key naming the session (on a1, of session S1).
_KEYS = [("exact", SESSION), ("upper", "MLFLOW.TRACE.SESSION"), ("mixed", "MLflow.Trace.Session"),
         ("longer", "mlflow.trace.sessions")]


def _cased(url, name):
    mlflow.set_tracking_uri(url)
    exp = mlflow.set_experiment(name).experiment_id
    ids = {}
    for label, session in [("a1", "S1"), ("a2", "S1"), ("b1", "S2")]:
        with mlflow.start_span("s"):
            mlflow.update_current_trace(metadata={SESSION: session})
        ids[label] = mlflow.get_last_active_trace_id()
        time.sleep(0.003)
    mlflow.flush_trace_async_logging()
    for feedback, key in _KEYS:
        mlflow.log_feedback(trace_id=ids["a1"], name=feedback, value="v", metadata={key: "S9"})
    labels = {tid: label for label, tid in ids.items()}
    client = mlflow.MlflowClient(url)
    return {f: _labels(client.search_traces(locations=[exp], filter_string=f, max_results=100), labels)
            for feedback, _ in _KEYS for f in [f"feedback.{feedback} = 'v'", f"feedback.{feedback} IS NULL"]}


def test_session_key_case_answers_as_mlflow_on_the_same_backend(server, mlflow_server, tmp_path, unique_name):
    theirs_server = _MlflowOnPostgres(tmp_path / "mlflow-pg").start(timeout=180) if POSTGRES else mlflow_server
    try:
        theirs = _cased(theirs_server.url, unique_name("cased"))
    finally:
        if theirs_server is not mlflow_server:
            theirs_server.stop()
    ours = _cased(server.url, unique_name("cased"))
    assert {k: (ours[k], v) for k, v in theirs.items() if ours[k] != v} == {}
    assert ours["feedback.exact = 'v'"] == ["a1", "a2"]
    assert ours["feedback.mixed = 'v'"] == ["a1"] and ours["feedback.upper = 'v'"] == ["a1"]
    assert ours["feedback.longer = 'v'"] == ["a1"]
