"""MLflow 3 tracing against wasmflow with the official client: traced functions and spans, errors,
reading back, searching with each filter form, tags, deletion, links to runs, assessments; and
OpenTelemetry's OTLP/HTTP ingestion (the Python SDK's exporter, protobuf, and OTLP JSON), with
bad payloads refused and nothing stored.

Every test makes its own experiment on the shared server, so tests can run in any order and in
parallel (pytest-xdist)."""

from __future__ import annotations

import base64
import json
import subprocess
import time

import mlflow
import pytest
import requests
from google.protobuf.json_format import MessageToDict
from mlflow.entities import AssessmentSource, SpanType
from opentelemetry import trace as otel_trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


def _flush():
    mlflow.flush_trace_async_logging()


@mlflow.trace(span_type=SpanType.TOOL)
def _double(x):
    with mlflow.start_span("llm-call", span_type=SpanType.LLM) as span:
        span.set_inputs({"x": x})
        span.set_attribute("model", "tiny")
        span.set_outputs({"y": x * 2})
    return x * 2


@mlflow.trace(name="agent")
def _agent(x, tag=None):
    if tag:
        mlflow.update_current_trace(tags={"kind": tag})
    return _double(x) + 1


@mlflow.trace
def _boom():
    raise ValueError("it broke")


def _make(x, tag=None):
    _agent(x, tag)
    return mlflow.get_last_active_trace_id()


def test_traced_functions_are_read_back(experiment_id):
    trace_id = _make(3)
    _flush()
    trace = mlflow.get_trace(trace_id)
    assert trace.info.trace_id == trace_id
    assert trace.info.experiment_id == experiment_id
    assert trace.info.state.value == "OK"
    assert trace.info.execution_duration is not None and trace.info.execution_duration >= 0
    # The spans came over /v1/traces and are kept in the store, as MLflow's SQL store keeps them.
    assert trace.info.tags["mlflow.trace.spansLocation"] == "TRACKING_STORE"
    assert trace.info.tags["mlflow.traceName"] == "agent"
    spans = {s.name: s for s in trace.data.spans}
    assert set(spans) == {"agent", "_double", "llm-call"}
    assert spans["agent"].parent_id is None
    assert spans["_double"].parent_id == spans["agent"].span_id
    assert spans["llm-call"].parent_id == spans["_double"].span_id
    assert spans["_double"].span_type == "TOOL"
    assert spans["llm-call"].span_type == "LLM"
    assert spans["llm-call"].inputs == {"x": 3}
    assert spans["llm-call"].outputs == {"y": 6}
    assert spans["llm-call"].attributes["model"] == "tiny"
    assert spans["agent"].inputs == {"x": 3, "tag": None}
    assert spans["agent"].outputs == 7
    assert trace.info.request_preview and "3" in trace.info.request_preview
    assert trace.info.response_preview == "7"


def test_exception_is_an_error_span(experiment_id):
    with pytest.raises(ValueError):
        _boom()
    trace_id = mlflow.get_last_active_trace_id()
    _flush()
    trace = mlflow.get_trace(trace_id)
    assert trace.info.state.value == "ERROR"
    (span,) = trace.data.spans
    assert span.status.status_code.value == "ERROR"
    assert [e.name for e in span.events] == ["exception"]
    assert span.events[0].attributes["exception.message"] == "it broke"
    assert span.events[0].attributes["exception.type"] == "ValueError"


def test_search_with_each_filter_form(experiment_id, client):
    with mlflow.start_run() as run:
        in_run = _make(1, tag="a")
    _flush()
    first_time = mlflow.get_trace(in_run).info.request_time
    time.sleep(0.01)
    other = _make(2, tag="b")
    with pytest.raises(ValueError):
        _boom()
    failed = mlflow.get_last_active_trace_id()
    _flush()
    everything = {in_run, other, failed}

    def ids(filter_string=None, **kw):
        found = mlflow.search_traces(
            locations=[experiment_id], filter_string=filter_string, return_type="list", **kw
        )
        return {t.info.trace_id for t in found}

    assert ids() == everything
    assert ids("trace.status = 'ERROR'") == {failed}
    assert ids("attributes.status != 'ERROR'") == {in_run, other}
    assert ids("trace.status IN ('OK', 'ERROR')") == everything
    assert ids(f"timestamp_ms > {first_time}") == {other, failed}
    assert ids(f"trace.timestamp_ms <= {first_time}") == {in_run}
    assert ids("execution_time_ms >= 0") == everything
    assert ids("execution_time_ms > 3600000") == set()
    assert ids("tags.kind = 'a'") == {in_run}
    assert ids("tag.kind LIKE '%b'") == {other}
    assert ids("tags.kind IS NULL") == {failed}
    assert ids("name = 'agent'") == {in_run, other}
    assert ids(f"metadata.`mlflow.sourceRun` = '{run.info.run_id}'") == {in_run}
    assert ids(run_id=run.info.run_id) == {in_run}
    assert ids("span.name = 'llm-call'") == {in_run, other}
    assert ids("span.type = 'TOOL'") == {in_run, other}
    assert ids("span.status = 'ERROR'") == {failed}
    # MLflow matches span attributes with LIKE patterns over the span's JSON text, and its `=`
    # compares that text with the pattern itself, which never matches (test_traces_server.py
    # compares every form with a real mlflow server).
    assert ids("span.attributes.model LIKE '%tiny%'") == {in_run, other}
    assert ids("span.attributes.model = 'tiny'") == set()
    assert ids("span.content ILIKE '%it broke%'") == {failed}
    assert ids("trace.status = 'OK' AND tags.kind = 'b'") == {other}

    # Order and paging.
    oldest_first = mlflow.search_traces(
        locations=[experiment_id], order_by=["timestamp_ms ASC"], return_type="list"
    )
    assert oldest_first[0].info.trace_id == in_run
    page = client.search_traces(locations=[experiment_id], max_results=2)
    assert len(page) == 2 and page.token
    rest = client.search_traces(locations=[experiment_id], max_results=2, page_token=page.token)
    assert {t.info.trace_id for t in page} | {t.info.trace_id for t in rest} == everything

    # The DataFrame has MLflow's columns, and the spans.
    df = mlflow.search_traces(locations=[experiment_id])
    assert len(df) == 3
    for column in ["trace_id", "trace", "client_request_id", "state", "request_time",
                   "execution_duration", "request", "response", "trace_metadata", "tags",
                   "spans", "assessments"]:
        assert column in df.columns, column
    row = df[df.trace_id == other].iloc[0]
    assert row.state == "OK"
    assert row.tags["kind"] == "b"
    assert len(row.spans) == 3

    with pytest.raises(mlflow.exceptions.MlflowException, match="Invalid"):
        mlflow.search_traces(locations=[experiment_id], filter_string="nope.x = 'a'")


def test_tags_delete_and_link_to_run(experiment_id, client):
    # Apart by more than a millisecond: the delete by age below takes the oldest, and traces
    # started in the same millisecond would tie.
    a = _make(1)
    time.sleep(0.005)
    b = _make(2)
    time.sleep(0.005)
    c = _make(3)
    _flush()
    mlflow.set_trace_tag(a, "reviewed", "yes")
    assert mlflow.get_trace(a).info.tags["reviewed"] == "yes"
    client.delete_trace_tag(a, "reviewed")
    assert "reviewed" not in mlflow.get_trace(a).info.tags

    run = client.create_run(experiment_id)
    client.link_traces_to_run([b], run.info.run_id)
    linked = mlflow.search_traces(
        locations=[experiment_id], run_id=run.info.run_id, return_type="list"
    )
    assert [t.info.trace_id for t in linked] == [b]

    assert client.delete_traces(experiment_id, trace_ids=[a]) == 1
    with pytest.raises(mlflow.exceptions.MlflowException, match="not found"):
        client.get_trace(a)
    # By age: the oldest one of those left.
    now = int(time.time() * 1000)
    assert client.delete_traces(experiment_id, max_timestamp_millis=now, max_traces=1) == 1
    left = mlflow.search_traces(locations=[experiment_id], return_type="list")
    assert [t.info.trace_id for t in left] == [c]


def test_assessments(experiment_id):
    trace_id = _make(5)
    _flush()
    human = AssessmentSource(source_type="HUMAN", source_id="reviewer")
    fb = mlflow.log_feedback(
        trace_id=trace_id, name="correct", value=True, rationale="looks right", source=human
    )
    ex = mlflow.log_expectation(
        trace_id=trace_id, name="answer", value={"y": 11}, source=human
    )
    assert fb.assessment_id.startswith("a-")
    got = mlflow.get_assessment(trace_id, fb.assessment_id)
    assert got.value is True and got.rationale == "looks right"
    assert got.source.source_id == "reviewer"

    updated = mlflow.update_assessment(
        trace_id=trace_id,
        assessment_id=ex.assessment_id,
        assessment=mlflow.entities.Expectation(name="answer", value={"y": 12}),
    )
    assert updated.value == {"y": 12}

    new = mlflow.override_feedback(
        trace_id=trace_id, assessment_id=fb.assessment_id, value=False, rationale="no"
    )
    assert new.overrides == fb.assessment_id
    assert mlflow.get_assessment(trace_id, fb.assessment_id).valid is False

    info = mlflow.get_trace(trace_id).info
    by_id = {a.assessment_id: a for a in info.assessments}
    assert set(by_id) == {fb.assessment_id, ex.assessment_id, new.assessment_id}
    found = mlflow.search_traces(
        locations=[experiment_id], filter_string="feedback.correct = 'false'", return_type="list"
    )
    assert [t.info.trace_id for t in found] == [trace_id]

    # Deleting the override makes the original valid again.
    mlflow.delete_assessment(trace_id, new.assessment_id)
    assert mlflow.get_assessment(trace_id, fb.assessment_id).valid is True
    with pytest.raises(mlflow.exceptions.MlflowException):
        mlflow.get_assessment(trace_id, new.assessment_id)


def _otel_provider(exporter):
    provider = TracerProvider(resource=Resource.create({"service.name": "otel-test"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def _make_otel_spans(provider):
    tracer = provider.get_tracer("wasmflow-e2e")
    with tracer.start_as_current_span("request") as root:
        root.set_attribute("http.method", "GET")
        with tracer.start_as_current_span("db") as db:
            db.set_attribute("rows", 3)
            db.set_attribute("ratio", 0.5)
            db.set_attribute("tags", ["x", "y"])
    provider.force_flush()
    return root.get_span_context().trace_id


def test_opentelemetry_sdk_exporter_protobuf(experiment_id, server):
    exporter = OTLPSpanExporter(
        endpoint=f"{server.url}/v1/traces",
        headers={"x-mlflow-experiment-id": experiment_id},
    )
    provider = _otel_provider(exporter)
    otel_id = _make_otel_spans(provider)
    provider.shutdown()
    trace_id = f"tr-{otel_id:032x}"
    trace = mlflow.get_trace(trace_id)
    assert trace.info.experiment_id == experiment_id
    assert trace.info.state.value in ("OK",)
    spans = {s.name: s for s in trace.data.spans}
    assert set(spans) == {"request", "db"}
    assert spans["db"].parent_id == spans["request"].span_id
    assert spans["db"].attributes["rows"] == 3
    assert spans["db"].attributes["ratio"] == 0.5
    assert spans["db"].attributes["tags"] == ["x", "y"]
    assert spans["request"].attributes["http.method"] == "GET"
    found = mlflow.search_traces(
        locations=[experiment_id], filter_string="span.name = 'db'", return_type="list"
    )
    assert [t.info.trace_id for t in found] == [trace_id]


def _otlp_json(spans) -> dict:
    """OTLP's JSON encoding: protobuf's JSON mapping with ids in hex, not base64."""
    body = MessageToDict(encode_spans(spans))
    for rs in body["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:
                for field in ("traceId", "spanId", "parentSpanId"):
                    if field in span:
                        span[field] = base64.b64decode(span[field]).hex()
    return body


def test_otlp_json(experiment_id, server):
    memory = InMemorySpanExporter()
    provider = _otel_provider(memory)
    otel_id = _make_otel_spans(provider)
    body = _otlp_json(memory.get_finished_spans())
    r = requests.post(
        f"{server.url}/v1/traces",
        data=json.dumps(body),
        headers={"Content-Type": "application/json", "x-mlflow-experiment-id": experiment_id},
    )
    assert r.status_code == 200, r.text
    trace = mlflow.get_trace(f"tr-{otel_id:032x}")
    spans = {s.name: s for s in trace.data.spans}
    assert set(spans) == {"request", "db"}
    assert spans["db"].attributes["rows"] == 3


def test_bad_otlp_payloads_store_nothing(experiment_id, server):
    url = f"{server.url}/v1/traces"
    proto = {"Content-Type": "application/x-protobuf", "x-mlflow-experiment-id": experiment_id}
    as_json = {"Content-Type": "application/json", "x-mlflow-experiment-id": experiment_id}
    good_span = {
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": "eee19b7ec3c1b174",
        "name": "s",
        "startTimeUnixNano": "1",
        "endTimeUnixNano": "2",
    }
    bad_id = dict(good_span, spanId="ee")
    cases = [
        (proto, b"\xff\xff\xff garbage"),
        (as_json, b"{not json"),
        (as_json, json.dumps({"resourceSpans": "nope"}).encode()),
        (as_json, json.dumps({}).encode()),
        # One bad span refuses the whole request: the good one is not stored either.
        (as_json, json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [good_span, bad_id]}]}]}).encode()),
        ({"Content-Type": "text/plain", "x-mlflow-experiment-id": experiment_id}, b"hello"),
        ({"Content-Type": "application/json"}, json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [good_span]}]}]}).encode()),
    ]
    for headers, data in cases:
        r = requests.post(url, data=data, headers=headers)
        assert r.status_code == 400, (data, r.status_code, r.text)
        assert r.json()["error_code"] == "INVALID_PARAMETER_VALUE", r.text
    assert mlflow.search_traces(locations=[experiment_id], return_type="list") == []
    # An experiment that does not exist.
    r = requests.post(
        url,
        data=json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [good_span]}]}]}),
        headers={"Content-Type": "application/json", "x-mlflow-experiment-id": "987654321"},
    )
    assert r.status_code == 404, r.text


def test_auth_rules_cover_traces(tmp_path_factory, wasmflow_bin):
    """With basic auth, a trace is read with READ on its experiment and written with EDIT; OTLP
    needs EDIT on the experiment of its header."""
    from test_auth import ADMIN, PASSWORD, AuthServer, admin_client, new_user, signed_in

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WASMFLOW_ADMIN_PASSWORD", ADMIN[1])
        srv = AuthServer(wasmflow_bin, tmp_path_factory.mktemp("traces-auth"), name="auth").start()
    try:
        admin = requests.Session()
        admin.auth = ADMIN
        exp = admin.post(f"{srv.url}/api/2.0/mlflow/experiments/create",
                         json={"name": "traced"}).json()["experiment_id"]
        span = {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
                "name": "s", "startTimeUnixNano": "1000000", "endTimeUnixNano": "2000000"}
        otlp = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]})
        headers = {"Content-Type": "application/json", "x-mlflow-experiment-id": exp}
        assert admin.post(f"{srv.url}/v1/traces", data=otlp, headers=headers).status_code == 200
        trace_id = "tr-5b8efff798038103d269b633813fc60c"

        user = new_user(srv, "reader")
        reader = requests.Session()
        reader.auth = (user, PASSWORD)
        search = {"locations": [{"type": "MLFLOW_EXPERIMENT",
                                 "mlflow_experiment": {"experiment_id": exp}}]}
        # The default permission is READ: reading works, writing does not.
        r = reader.get(f"{srv.url}/api/3.0/mlflow/traces/get", params={"trace_id": trace_id})
        assert r.status_code == 200 and len(r.json()["trace"]["spans"]) == 1
        assert reader.post(f"{srv.url}/api/3.0/mlflow/traces/search", json=search).status_code == 200
        assert reader.post(f"{srv.url}/v1/traces", data=otlp, headers=headers).status_code == 403
        r = reader.patch(f"{srv.url}/api/2.0/mlflow/traces/{trace_id}/tags",
                         json={"key": "k", "value": "v"})
        assert r.status_code == 403
        r = reader.post(f"{srv.url}/api/2.0/mlflow/traces/delete-traces",
                        json={"experiment_id": exp, "request_ids": [trace_id]})
        assert r.status_code == 403
        # DENY: not even reading.
        with signed_in(*ADMIN):
            admin_client(srv).grant_user_permission(user, "experiment", exp, "DENY")
        r = reader.get(f"{srv.url}/api/3.0/mlflow/traces/{trace_id}")
        assert r.status_code == 403
        assert reader.post(f"{srv.url}/api/3.0/mlflow/traces/search", json=search).status_code == 403
    finally:
        srv.stop()


def test_one_trace_cannot_vouch_for_another(tmp_path_factory, wasmflow_bin):
    """With basic auth, a user who may edit experiment B but not read experiment A cannot reach
    A's trace through B: not by a double-encoded body, by a second id beside the checked one, by
    reusing A's trace or assessment ids in B, nor a dataset search scoped by the query string."""
    from test_auth import ADMIN, PASSWORD, AuthServer, admin_client, new_user, signed_in

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WASMFLOW_ADMIN_PASSWORD", ADMIN[1])
        srv = AuthServer(wasmflow_bin, tmp_path_factory.mktemp("traces-vouch"), name="auth").start()
    try:
        admin = requests.Session()
        admin.auth = ADMIN
        create = f"{srv.url}/api/2.0/mlflow/experiments/create"
        exp_a = admin.post(create, json={"name": "victim"}).json()["experiment_id"]
        exp_b = admin.post(create, json={"name": "mine"}).json()["experiment_id"]
        user = new_user(srv, "mallory")
        with signed_in(*ADMIN):
            client = admin_client(srv)
            client.grant_user_permission(user, "experiment", exp_a, "DENY")
            client.grant_user_permission(user, "experiment", exp_b, "EDIT")
        me = requests.Session()
        me.auth = (user, PASSWORD)

        def otlp(session, exp, trace_hex, span_hex, name):
            span = {"traceId": trace_hex, "spanId": span_hex, "name": name,
                    "startTimeUnixNano": "1000000", "endTimeUnixNano": "2000000"}
            return session.post(
                f"{srv.url}/v1/traces",
                data=json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}),
                headers={"Content-Type": "application/json", "x-mlflow-experiment-id": exp})

        victim_hex, mine_hex = "a" * 32, "b" * 32
        victim, mine = f"tr-{victim_hex}", f"tr-{mine_hex}"
        assert otlp(admin, exp_a, victim_hex, "1" * 16, "secret").status_code == 200
        assert otlp(me, exp_b, mine_hex, "2" * 16, "mine").status_code == 200

        def victim_trace():
            r = admin.get(f"{srv.url}/api/3.0/mlflow/traces/get", params={"trace_id": victim})
            assert r.status_code == 200, r.text
            return r.json()["trace"]

        # A double-encoded body is judged as its handler reads it.
        body = json.dumps(json.dumps({"experiment_id": exp_a, "max_timestamp_millis": 9 * 10**15}))
        r = me.post(f"{srv.url}/api/2.0/mlflow/traces/delete-traces",
                    params={"experiment_id": exp_b}, data=body,
                    headers={"Content-Type": "application/json"})
        assert r.status_code == 403, r.text
        # Two ids: each must pass.
        r = me.get(f"{srv.url}/ajax-api/2.0/mlflow/get-trace-artifact",
                   params={"trace_id": mine, "request_id": victim})
        assert r.status_code == 403, r.text
        # Spans and a trace record under another experiment's trace id are refused.
        assert otlp(me, exp_b, victim_hex, "3" * 16, "injected").status_code == 400
        info = {"trace_id": victim, "request_time": "1970-01-01T00:00:00Z", "state": "OK",
                "trace_location": {"type": "MLFLOW_EXPERIMENT",
                                   "mlflow_experiment": {"experiment_id": exp_b}}}
        r = me.post(f"{srv.url}/api/3.0/mlflow/traces", json={"trace": {"trace_info": info}})
        assert r.status_code == 400, r.text
        trace = victim_trace()
        assert trace["trace_info"]["trace_location"]["mlflow_experiment"]["experiment_id"] == exp_a
        assert [s["name"] for s in trace["spans"]] == ["secret"]
        # An assessment id of the victim's trace cannot be written through mine.
        feedback = {"assessment_name": "quality", "feedback": {"value": 1},
                    "source": {"source_type": "HUMAN", "source_id": "admin"}}
        r = admin.post(f"{srv.url}/api/3.0/mlflow/traces/{victim}/assessments",
                       json={"assessment": feedback})
        assert r.status_code == 200, r.text
        stolen = r.json()["assessment"]["assessment_id"]
        forged = {**feedback, "assessment_id": stolen, "feedback": {"value": 0}}
        r = me.post(f"{srv.url}/api/3.0/mlflow/traces/{mine}/assessments",
                    json={"assessment": forged})
        assert r.status_code == 400, r.text
        r = admin.get(f"{srv.url}/api/3.0/mlflow/traces/{victim}/assessments/{stolen}")
        assert r.status_code == 200 and r.json()["assessment"]["feedback"]["value"] == 1, r.text
        # A POST is judged by its body: a query string naming my experiment does not scope it.
        r = me.post(f"{srv.url}/api/3.0/mlflow/datasets/search",
                    params={"experiment_ids": exp_b}, json={})
        assert r.status_code != 200, r.text
    finally:
        srv.stop()


def test_retention_and_gc_delete_old_traces(tmp_path, wasmflow_bin):
    """`wasmflow gc --traces-older-than` and `--trace-retention DAYS` delete traces that started
    before the window, and keep the others."""
    from conftest import ServerProcess

    class Retaining(ServerProcess):
        def command(self):
            return [*super().command(), "--trace-retention", "1"]

    now_ns = time.time_ns()
    day_ns = 86_400 * 10**9

    def send(url, exp, trace_hex, start_ns):
        span = {"traceId": trace_hex, "spanId": "eee19b7ec3c1b174", "name": "s",
                "startTimeUnixNano": str(start_ns), "endTimeUnixNano": str(start_ns + 1000)}
        r = requests.post(f"{url}/v1/traces",
                          data=json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}),
                          headers={"Content-Type": "application/json", "x-mlflow-experiment-id": exp})
        assert r.status_code == 200, r.text

    def stored(url, exp):
        r = requests.post(f"{url}/api/3.0/mlflow/traces/search", json={"locations": [
            {"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": exp}}]})
        return sorted(t["trace_id"] for t in r.json()["traces"])

    store = tmp_path / "store"
    srv = ServerProcess(wasmflow_bin, store, name="old").start()
    exp = requests.post(f"{srv.url}/api/2.0/mlflow/experiments/create",
                        json={"name": "ret"}).json()["experiment_id"]
    send(srv.url, exp, "1" * 32, now_ns - 3 * day_ns)
    send(srv.url, exp, "2" * 32, now_ns - 2 * day_ns)
    send(srv.url, exp, "3" * 32, now_ns)
    srv.stop()

    subprocess.run([wasmflow_bin, "gc", "--backend-store-uri", srv.backend_uri,
                    "--artifacts-destination", str(srv.artifacts_dir),
                    "--traces-older-than", "2d12h"], check=True, capture_output=True)
    backend = srv.backend_uri
    srv = ServerProcess(wasmflow_bin, store, name="after-gc", backend_uri=backend).start()
    try:
        assert stored(srv.url, exp) == ["tr-" + "2" * 32, "tr-" + "3" * 32]
    finally:
        srv.stop()
    srv = Retaining(wasmflow_bin, store, name="retaining", backend_uri=backend).start()
    try:
        # The retention pass runs at start, in the background.
        deadline = time.monotonic() + 10
        while stored(srv.url, exp) != ["tr-" + "3" * 32] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert stored(srv.url, exp) == ["tr-" + "3" * 32]
    finally:
        srv.stop()
