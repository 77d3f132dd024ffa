"""The server side of MLflow 3 tracing, beyond ingestion and search (test_traces.py): the trace's
artifact location is the server's alone; what MLflow's SQL store derives from OTLP spans (tags,
token usage, session, previews); `get-trace-artifact` for spans kept in the store; the v2
`StartTrace`/`EndTrace` and `LinkPromptsToTrace` endpoints; retention removing a deleted trace's
files; and `mlflow.search_traces()`'s DataFrame compared with a real `mlflow server`'s.

Where MLflow's answer is the reference, the same calls go to a real `mlflow server` (the
session's `mlflow_server` fixture) and to wasmflow, and what the client sees is compared."""

from __future__ import annotations

import json
import subprocess
import time
import uuid

import mlflow
import pytest
import requests
from mlflow.entities import SpanType
from mlflow.exceptions import MlflowException
from opentelemetry import trace as otel_trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from conftest import POSTGRES


def _flush():
    mlflow.flush_trace_async_logging()


def _new_experiment(url: str, name: str) -> str:
    mlflow.set_tracking_uri(url)
    return mlflow.set_experiment(name).experiment_id


def _start_v3(url, experiment_id, trace_id, tags=None):
    body = {
        "trace": {
            "trace_info": {
                "trace_id": trace_id,
                "trace_location": {"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": experiment_id}},
                "request_time": "2026-01-01T00:00:00Z",
                "execution_duration": "1s",
                "state": "OK",
                "tags": tags or {},
            }
        }
    }
    return requests.post(f"{url}/api/3.0/mlflow/traces", json=body, timeout=30)


# ---------------------------------------------------------------------------------------------
# 1. The artifact location is the server's.


def test_reserved_trace_tags_cannot_be_set_or_deleted(experiment_id, client, base_url):
    with mlflow.start_span("s"):
        pass
    trace_id = mlflow.get_last_active_trace_id()
    _flush()
    before = client.get_trace(trace_id).info.tags
    for version in ["2.0", "3.0"]:
        url = f"{base_url}/api/{version}/mlflow/traces/{trace_id}/tags"
        for key in ["mlflow.artifactLocation", "mlflow.trace.spansLocation", "mlflow.trace.archiveLocation"]:
            r = requests.patch(url, json={"key": key, "value": "file:///etc"}, timeout=30)
            assert r.status_code == 400, r.text
            assert r.json() == {"error_code": "INVALID_PARAMETER_VALUE",
                                "message": f"Tag '{key}' is immutable and cannot be set on a trace.",
                                "sqlstate": "KAM00", "error_class": "INVALID_PARAMETER_VALUE"}
            r = requests.delete(url, json={"key": key}, timeout=30)
            assert r.status_code == 400 and "cannot be deleted on a trace" in r.json()["message"], r.text
    # The client only warns (it retries tags of traces still being exported), and nothing changes.
    client.set_trace_tag(trace_id, "mlflow.artifactLocation", "file:///etc")
    assert client.get_trace(trace_id).info.tags == before
    assert before["mlflow.artifactLocation"] == f"mlflow-artifacts:/{experiment_id}/traces/{trace_id}/artifacts"


def test_a_client_artifact_location_is_replaced_and_never_read(experiment_id, base_url, server):
    # A client-given location is ignored: the server says where the trace's files are.
    trace_id = "tr-" + uuid.uuid4().hex
    r = _start_v3(base_url, experiment_id, trace_id, tags={"mlflow.artifactLocation": "file:///etc", "k": "v"})
    assert r.status_code == 200, r.text
    tags = r.json()["trace"]["trace_info"]["tags"]
    assert tags["mlflow.artifactLocation"] == f"mlflow-artifacts:/{experiment_id}/traces/{trace_id}/artifacts"
    assert tags["k"] == "v"

    # Its traces.json is read from the experiment's folder for the trace, uploaded as the client does.
    spans = {"spans": []}
    put = requests.put(
        f"{base_url}/api/2.0/mlflow-artifacts/artifacts/{experiment_id}/traces/{trace_id}/artifacts/traces.json",
        data=json.dumps(spans), timeout=30,
    )
    assert put.status_code == 200, put.text
    got = requests.get(f"{base_url}/ajax-api/2.0/mlflow/get-trace-artifact", params={"request_id": trace_id}, timeout=30)
    assert got.status_code == 200 and got.json() == spans
    assert got.headers["content-disposition"].startswith("attachment") and "traces.json" in got.headers["content-disposition"]

    # A trace id that would leave the trace folder is refused, and nothing is stored.
    for bad in ["../../0", "tr-a/../../b", "a\\b", "%2e%2e"]:
        r = _start_v3(base_url, experiment_id, bad)
        assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE", (bad, r.text)
    assert requests.get(f"{base_url}/api/3.0/mlflow/traces/..%2F..%2F0", timeout=30).status_code in (400, 404)

    # A trace with no file and no spans: not found, in MLflow's error shape.
    other = "tr-" + uuid.uuid4().hex
    assert _start_v3(base_url, experiment_id, other).status_code == 200
    missing = requests.get(f"{base_url}/ajax-api/2.0/mlflow/get-trace-artifact", params={"request_id": other}, timeout=30)
    assert missing.status_code == 404 and missing.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    no_id = requests.get(f"{base_url}/ajax-api/2.0/mlflow/get-trace-artifact", timeout=30)
    assert no_id.status_code == 400 and no_id.json()["error_code"] == "BAD_REQUEST"


# ---------------------------------------------------------------------------------------------
# 2. and 3. What MLflow derives from OTLP spans, and get-trace-artifact of stored spans.


def _otlp_payload():
    """One trace made by the OpenTelemetry SDK (no MLflow client): a root span with MLflow's
    trace tags, chat messages and a session, and two LLM spans with token usage, sent with
    a resource."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "svc-a", "deployment": "blue"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("agent") as root:
        root.set_attribute("mlflow.traceTag.team", "search")
        root.set_attribute("mlflow.traceTag.mlflow.traceName", "my-agent")
        root.set_attribute("mlflow.spanType", "AGENT")
        root.set_attribute("mlflow.spanInputs", json.dumps({"messages": [
            {"role": "system", "content": "be brief"}, {"role": "user", "content": "what is 2+2?"}]}))
        root.set_attribute("mlflow.spanOutputs", json.dumps({"choices": [
            {"message": {"role": "assistant", "content": "4"}}]}))
        root.set_attribute("session.id", "sess-1")
        root.set_attribute("user.id", "ann")
        for i in (1, 2):
            with tracer.start_as_current_span(f"llm-{i}") as llm:
                llm.set_attribute("mlflow.spanType", "LLM")
                llm.set_attribute("mlflow.chat.tokenUsage", json.dumps(
                    {"input_tokens": 10 * i, "output_tokens": i, "total_tokens": 11 * i}))
                llm.set_attribute("n", i)
    root_span = exporter.get_finished_spans()[-1]
    trace_id = "tr-" + format(root_span.context.trace_id, "032x")
    return encode_spans(exporter.get_finished_spans()).SerializeToString(), trace_id


def _send(url, experiment_id, payload):
    r = requests.post(f"{url}/v1/traces", data=payload, timeout=30, headers={
        "Content-Type": "application/x-protobuf", "x-mlflow-experiment-id": experiment_id})
    assert r.status_code == 200, r.text


def _stable_info(info):
    d = info.to_dict()
    for k in ["trace_id", "request_time", "execution_duration_ms", "trace_location"]:
        d.pop(k, None)
    d["tags"] = {k: v for k, v in d["tags"].items() if k != "mlflow.artifactLocation"}
    return d


def test_trace_info_derived_from_otlp_spans_as_mlflow_does(server, mlflow_server, unique_name):
    payload, trace_id = _otlp_payload()
    seen = {}
    for name, srv in [("mlflow", mlflow_server), ("wasmflow", server)]:
        exp = _new_experiment(srv.url, unique_name("otlp"))
        _send(srv.url, exp, payload)
        info = mlflow.MlflowClient(srv.url).get_trace(trace_id).info
        seen[name] = _stable_info(info)
    assert seen["wasmflow"] == seen["mlflow"]
    got = seen["wasmflow"]
    # What the comparison covers, spelled out.
    assert got["tags"]["team"] == "search" and got["tags"]["mlflow.traceName"] == "my-agent"
    assert got["tags"]["service.name"] == "svc-a" and got["tags"]["deployment"] == "blue"
    assert json.loads(got["trace_metadata"]["mlflow.trace.tokenUsage"]) == {
        "input_tokens": 30, "output_tokens": 3, "total_tokens": 33}
    assert got["trace_metadata"]["mlflow.trace.session"] == "sess-1"
    assert got["trace_metadata"]["mlflow.trace.user"] == "ann"
    assert got["request_preview"] == "what is 2+2?" and got["response_preview"] == "4"


# The forms a root span's inputs/outputs attribute takes, and the previews MLflow 3.17.2 makes of
# each (seen: JSON text is kept as it came, compact or not; other strings as their JSON).
_PREVIEW_INPUTS = {
    "compact": AnyValue(string_value='{"q":"hello"}'),
    "spaced": AnyValue(string_value='{"q": "hello"}'),
    "plain": AnyValue(string_value="just text"),
    "json-string": AnyValue(string_value='"quoted"'),
    "non-ascii": AnyValue(string_value='{"q":"h\u00e9llo"}'),
    "chat": AnyValue(string_value='{"messages":[{"role":"user","content":"hi there"}]}'),
    "number": AnyValue(int_value=5),
    "list": AnyValue(string_value="[1,2]"),
}


def _preview_payload():
    """One single-span trace a form of `_PREVIEW_INPUTS`, as inputs and outputs."""
    req = ExportTraceServiceRequest()
    scope = req.resource_spans.add().scope_spans.add()
    ids = {}
    for i, (name, value) in enumerate(_PREVIEW_INPUTS.items()):
        span = scope.spans.add()
        span.trace_id = uuid.uuid4().bytes
        span.span_id = (i + 1).to_bytes(8, "big")
        span.name = name
        span.start_time_unix_nano = 1_700_000_000_000_000_000 + i
        span.end_time_unix_nano = span.start_time_unix_nano + 1000
        for key in ("mlflow.spanInputs", "mlflow.spanOutputs"):
            span.attributes.append(KeyValue(key=key, value=value))
        ids[name] = "tr-" + span.trace_id.hex()
    return req.SerializeToString(), ids


def test_previews_keep_the_inputs_text_as_mlflow_does(server, mlflow_server, unique_name):
    payload, ids = _preview_payload()
    seen = {}
    for label, srv in [("mlflow", mlflow_server), ("wasmflow", server)]:
        _send(srv.url, _new_experiment(srv.url, unique_name("previews")), payload)
        client = mlflow.MlflowClient(srv.url)
        seen[label] = {name: (info.request_preview, info.response_preview)
                       for name, info in ((n, client.get_trace(t).info) for n, t in ids.items())}
    assert seen["wasmflow"] == seen["mlflow"]
    got = seen["wasmflow"]
    assert got["compact"] == ('{"q":"hello"}', '{"q":"hello"}')
    assert got["plain"][0] == '"just text"' and got["chat"][0] == "hi there"


def _artifact_spans(url, trace_id):
    r = requests.get(f"{url}/ajax-api/2.0/mlflow/get-trace-artifact", params={"request_id": trace_id}, timeout=30)
    assert r.status_code == 200, r.text
    assert "traces.json" in r.headers["content-disposition"]
    spans = []
    for s in json.loads(r.content)["spans"]:
        attrs = {k: json.loads(v) for k, v in s["attributes"].items() if k != "mlflow.traceRequestId"}
        spans.append({
            "name": s["name"],
            "ids": (s["trace_id"], s["span_id"], s["parent_span_id"]),
            "times": (s["start_time_unix_nano"], s["end_time_unix_nano"]),
            "status": s["status"],
            "attributes": attrs,
            "events": s["events"],
        })
    return sorted(spans, key=lambda s: s["name"])


def test_get_trace_artifact_answers_stored_spans_as_mlflow(server, mlflow_server, unique_name):
    payload, trace_id = _otlp_payload()
    seen = {}
    for name, srv in [("mlflow", mlflow_server), ("wasmflow", server)]:
        exp = _new_experiment(srv.url, unique_name("artifact"))
        _send(srv.url, exp, payload)
        seen[name] = _artifact_spans(srv.url, trace_id)
    # MLflow adds what its OpenTelemetry translation infers (span types, message formats)
    # to the spans it stores; what was sent must come back the same from both.
    assert [s["name"] for s in seen["wasmflow"]] == ["agent", "llm-1", "llm-2"]
    for ours, theirs in zip(seen["wasmflow"], seen["mlflow"]):
        for key in ["name", "ids", "times", "status", "events"]:
            assert ours[key] == theirs[key], key
        for k, v in ours["attributes"].items():
            assert theirs["attributes"].get(k) == v, (ours["name"], k)
    # The span types were sent: the spans of the traces.json read back typed.
    assert seen["wasmflow"][1]["attributes"]["mlflow.spanType"] == "LLM"


# ---------------------------------------------------------------------------------------------
# 4. The v2 StartTrace / EndTrace, and LinkPromptsToTrace.


def _v2_trace(url, experiment_id):
    start = requests.post(f"{url}/api/2.0/mlflow/traces", timeout=30, json={
        "experiment_id": experiment_id, "timestamp_ms": 1_700_000_000_000,
        "request_metadata": [{"key": "m", "value": "1"}], "tags": [{"key": "t", "value": "a"}]})
    assert start.status_code == 200, start.text
    info = start.json()["trace_info"]
    end = requests.patch(f"{url}/api/2.0/mlflow/traces/{info['request_id']}", timeout=30, json={
        "timestamp_ms": 1_700_000_000_250, "status": "OK",
        "request_metadata": [{"key": "m2", "value": "2"}], "tags": [{"key": "t2", "value": "b"}]})
    assert end.status_code == 200, end.text
    return start.json()["trace_info"], end.json()["trace_info"]


def _v2_stable(info):
    info = dict(info)
    rid = info.pop("request_id")
    info.pop("experiment_id")
    info["tags"] = sorted(
        (t["key"], t["value"].replace(rid, "<id>")) for t in info.get("tags", [])
        if t["key"] != "mlflow.artifactLocation")
    info["request_metadata"] = sorted((t["key"], t["value"]) for t in info.get("request_metadata", []))
    return rid, info


def test_v2_start_and_end_trace_as_mlflow(server, mlflow_server, unique_name):
    seen = {}
    for name, srv in [("mlflow", mlflow_server), ("wasmflow", server)]:
        exp = _new_experiment(srv.url, unique_name("v2"))
        started, ended = _v2_trace(srv.url, exp)
        rid, started = _v2_stable(started)
        _, ended = _v2_stable(ended)
        assert len(rid) == 32 and int(rid, 16) >= 0
        read = requests.get(f"{srv.url}/api/2.0/mlflow/traces/{rid}/info", timeout=30)
        assert read.status_code == 200, read.text
        seen[name] = (started, ended, _v2_stable(read.json()["trace_info"])[1])
        # Ending a trace that does not exist.
        r = requests.patch(f"{srv.url}/api/2.0/mlflow/traces/{uuid.uuid4().hex}", json={"timestamp_ms": 1, "status": "OK"}, timeout=30)
        assert r.status_code == 404 and r.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert seen["wasmflow"] == seen["mlflow"]
    assert seen["wasmflow"][1]["execution_time_ms"] in (250, "250")
    assert seen["wasmflow"][1]["status"] == "OK"


def test_prompts_linked_to_a_trace_are_searchable(experiment_id, client, unique_name):
    name = unique_name("prompt").replace("-", "_")
    mlflow.genai.register_prompt(name=name, template="Hi {{x}}")
    mlflow.genai.register_prompt(name=name, template="Hello {{x}}")
    with mlflow.start_span("uses-prompt"):
        pass
    linked = mlflow.get_last_active_trace_id()
    with mlflow.start_span("no-prompt"):
        pass
    _flush()
    v1 = mlflow.genai.load_prompt(f"prompts:/{name}/1")
    client.link_prompt_versions_to_trace(prompt_versions=[v1], trace_id=linked)
    client.link_prompt_versions_to_trace(prompt_versions=[v1], trace_id=linked)  # kept once

    def ids(f):
        return {t.info.trace_id for t in mlflow.search_traces(locations=[experiment_id], filter_string=f, return_type="list")}

    assert ids(f"prompt = '{name}/1'") == {linked}
    assert ids(f"prompt = '{name}/2'") == set()
    # The client also keeps the link as a tag, as it does against MLflow.
    assert json.loads(client.get_trace(linked).info.tags["mlflow.linkedPrompts"]) == [{"name": name, "version": "1"}]
    with pytest.raises(MlflowException, match="Only '=' is supported"):
        ids(f"prompt != '{name}/1'")
    with pytest.raises(MlflowException, match="Invalid prompts filter value"):
        ids(f"prompt = '{name}'")

    url = mlflow.get_tracking_uri()
    r = requests.post(f"{url}/api/2.0/mlflow/traces/link-prompts", timeout=30,
                      json={"trace_id": "tr-" + uuid.uuid4().hex, "prompt_versions": [{"name": name, "version": "1"}]})
    assert r.status_code == 404 and r.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    r = requests.post(f"{url}/api/2.0/mlflow/traces/link-prompts", json={"trace_id": linked}, timeout=30)
    assert r.status_code == 400 and "prompt_versions" in r.json()["message"]


# ---------------------------------------------------------------------------------------------
# 5. Retention deletes a trace's files with its rows.


def test_gc_deletes_old_traces_with_their_files(isolated_server, wasmflow_bin, tmp_path):
    srv = isolated_server(tmp_path / "store")
    mlflow.set_tracking_uri(srv.url)
    exp = mlflow.set_experiment("gc-traces").experiment_id
    with mlflow.start_span("old"):
        pass
    old = mlflow.get_last_active_trace_id()
    _flush()
    folder = srv.artifacts_dir / exp / "traces" / old
    # The client's export threads send the spans (/v1/traces) and the trace (start_trace) at
    # once, and upload traces.json only when start_trace's answer does not already say the
    # spans are in the tracking store: the upload depends on which request lands first, as it
    # does against MLflow's server. Where it did not upload, the file is put as its upload does.
    deadline = time.monotonic() + 5
    while not (folder / "artifacts" / "traces.json").is_file() and time.monotonic() < deadline:
        time.sleep(0.1)
    if not (folder / "artifacts" / "traces.json").is_file():
        put = requests.put(
            f"{srv.url}/api/2.0/mlflow-artifacts/artifacts/{exp}/traces/{old}/artifacts/traces.json",
            data=b'{"spans": []}', timeout=30)
        assert put.status_code == 200, put.text
    assert (folder / "artifacts" / "traces.json").is_file()
    srv.stop()
    time.sleep(1.1)
    out = subprocess.run(
        [wasmflow_bin, "gc", "--backend-store-uri", srv.backend_uri,
         "--artifacts-destination", str(srv.artifacts_dir), "--traces-older-than", "1s"],
        capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "1 traces older than 1s" in out.stdout
    assert not folder.exists()
    assert (srv.artifacts_dir / exp / "traces").is_dir()  # only the trace's own folder went


def test_trace_retention_deletes_old_traces_with_their_files(wasmflow_bin, tmp_path):
    from conftest import ServerProcess

    class Retaining(ServerProcess):
        def command(self):
            return super().command() + ["--trace-retention", "1"]

    srv = ServerProcess(wasmflow_bin, tmp_path / "store", name="first").start()
    try:
        exp = requests.post(f"{srv.url}/api/2.0/mlflow/experiments/create", json={"name": "retention"}, timeout=30).json()["experiment_id"]
        trace_id = "tr-" + uuid.uuid4().hex
        assert _start_v3(srv.url, exp, trace_id).status_code == 200  # started in 2026-01-01
        put = requests.put(
            f"{srv.url}/api/2.0/mlflow-artifacts/artifacts/{exp}/traces/{trace_id}/artifacts/traces.json",
            data=b'{"spans": []}', timeout=30)
        assert put.status_code == 200, put.text
    finally:
        srv.stop()
    folder = srv.artifacts_dir / exp / "traces" / trace_id
    assert folder.is_dir()
    again = Retaining(wasmflow_bin, tmp_path / "store", name="retaining", backend_uri=srv.backend_uri).start()
    try:
        deadline = time.monotonic() + 30
        while folder.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not folder.exists()
        r = requests.get(f"{again.url}/api/3.0/mlflow/traces/{trace_id}", timeout=30)
        assert r.status_code == 404
    finally:
        again.stop()


# ---------------------------------------------------------------------------------------------
# 6. mlflow.search_traces()'s DataFrame, against wasmflow and against MLflow.


@mlflow.trace(span_type=SpanType.CHAT_MODEL)
def _chat(question):
    mlflow.get_current_active_span().set_attribute(
        "mlflow.chat.tokenUsage", {"input_tokens": 5, "output_tokens": 2, "total_tokens": 7})
    return {"choices": [{"message": {"role": "assistant", "content": f"re: {question}"}}]}


@mlflow.trace(name="assistant")
def _assistant(question):
    mlflow.update_current_trace(tags={"team": "a"}, metadata={"mlflow.trace.session": "s-1"})
    return _chat(question)["choices"][0]["message"]["content"]


@mlflow.trace
def _failing():
    raise RuntimeError("no")


def _make_traces():
    # Each trace starts milliseconds after the one before: the frames are compared in the order
    # of their start times, and two traces started in the same millisecond (as a fast machine
    # makes them) would be ordered by content, differently on the two servers' runs.
    _assistant("hi")
    first = mlflow.get_last_active_trace_id()
    time.sleep(0.005)
    with mlflow.start_span("plain", span_type=SpanType.TOOL) as s:
        s.set_inputs({"messages": [{"role": "user", "content": "what?"}]})
        s.set_outputs("ok")
    time.sleep(0.005)
    with pytest.raises(RuntimeError):
        _failing()
    time.sleep(0.005)
    with mlflow.start_run():
        _assistant("in a run")
    _flush()
    mlflow.log_feedback(trace_id=first, name="good", value=True, rationale="fine")
    mlflow.log_expectation(trace_id=first, name="expected", value="re: hi")


_VOLATILE_METADATA = {"mlflow.trace.sizeBytes", "mlflow.trace.sizeStats", "mlflow.sourceRun"}
# Ids and times differ between the two servers' runs of the same code.
_VOLATILE_KEYS = {"trace_id", "span_id", "parent_span_id", "request_id", "assessment_id",
                  "start_time_unix_nano", "end_time_unix_nano", "time_unix_nano",
                  "create_time", "last_update_time", "create_time_ms", "last_update_time_ms"}


def _stable(value, tid):
    """`value` without ids and times, span attributes decoded, the trace id masked."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k in _VOLATILE_KEYS or k == "mlflow.traceRequestId":
                continue
            if isinstance(v, str) and k.startswith("mlflow.span"):
                try:
                    v = json.loads(v)
                except ValueError:
                    pass
            out[k] = _stable(v, tid)
        return out
    if isinstance(value, (list, tuple)):
        return [_stable(v, tid) for v in value]
    if isinstance(value, str):
        return value.replace(tid, "<id>")
    if isinstance(value, float) and value != value:
        return None  # pandas' NaN for a missing request or response
    return value


def _whole(trace, tid, n_spans):
    """Whether the `trace` column holds the whole trace (a Trace, or its JSON)."""
    if isinstance(trace, str):
        trace = json.loads(trace)
        return trace["info"]["trace_id"] == tid and len(trace["data"]["spans"]) == n_spans
    return trace.info.trace_id == tid and len(trace.data.spans) == n_spans


def _normalize_frame(df):
    rows = []
    for row in df.to_dict("records"):
        tid = row["trace_id"]
        spans = sorted((_stable(s, tid) for s in row["spans"]), key=lambda s: json.dumps(s, sort_keys=True, default=str))
        assessments = [a if isinstance(a, dict) else a.to_dictionary() for a in list(row["assessments"])]
        rows.append({
            "client_request_id": _stable(row["client_request_id"], tid),
            "state": row["state"],
            "request": _stable(row["request"], tid),
            "response": _stable(row["response"], tid),
            "trace_metadata": {k: v for k, v in row["trace_metadata"].items() if k not in _VOLATILE_METADATA},
            "has_source_run": "mlflow.sourceRun" in row["trace_metadata"],
            "tags": {k: v.replace(tid, "<id>") for k, v in row["tags"].items() if k != "mlflow.artifactLocation"},
            "spans": spans,
            "assessments": sorted((_stable(a, tid) for a in assessments), key=lambda a: json.dumps(a, sort_keys=True, default=str)),
            "trace_is_whole": _whole(row["trace"], tid, len(row["spans"])),
            "request_time": row["request_time"],
        })
    # In the order the traces were made (`_make_traces` starts them milliseconds apart).
    rows.sort(key=lambda r: (r["request_time"], json.dumps(r, sort_keys=True, default=str)))
    for r in rows:
        del r["request_time"]
    return rows


def test_search_traces_dataframe_matches_mlflow_server(server, mlflow_server, unique_name):
    frames, columns = {}, {}
    for name, srv in [("mlflow", mlflow_server), ("wasmflow", server)]:
        exp = _new_experiment(srv.url, unique_name("frame"))
        _make_traces()
        df = mlflow.search_traces(locations=[exp])
        columns[name] = list(df.columns)
        frames[name] = _normalize_frame(df)
    assert columns["wasmflow"] == columns["mlflow"]
    assert len(frames["wasmflow"]) == len(frames["mlflow"]) == 4
    for ours, theirs in zip(frames["wasmflow"], frames["mlflow"]):
        for key in theirs:
            assert ours[key] == theirs[key], (key, ours[key], theirs[key])
    # What the comparison covers, spelled out.
    first = frames["wasmflow"][0]
    assert first["tags"]["team"] == "a" and first["request"] == {"question": "hi"} and first["response"] == "re: hi"
    assert {a["assessment_name"] for a in first["assessments"]} == {"good", "expected"}
    assert [r["state"] for r in frames["wasmflow"]] == ["OK", "OK", "ERROR", "OK"]
    assert [r["has_source_run"] for r in frames["wasmflow"]] == [False, False, False, True]


# ---------------------------------------------------------------------------------------------
# 6. `span.attributes.<key>` filters as MLflow's SQL store answers them.

_ATTRIBUTE_VALUES = [
    # (label, value set with the client's `span.set_attribute`, or an OTLP AnyValue)
    ("client-str", "m3"), ("client-upper", "M3"), ("client-int", 5), ("client-float", 1.5),
    ("client-bool", True), ("client-dict", {"a": 1}),
]
_OTLP_VALUES = [
    ("otlp-str", {"string_value": "m3"}), ("otlp-quoted", {"string_value": '"m3"'}),
    ("otlp-int", {"int_value": 5}), ("otlp-double", {"double_value": 1.5}),
    ("otlp-bool", {"bool_value": True}), ("otlp-json", {"string_value": '{"a": 1}'}),
]
_ATTRIBUTE_FILTERS = [
    "span.attributes.tier = 'm3'", "span.attributes.tier = '\"m3\"'", "span.attributes.tier = '5'",
    "span.attributes.tier != 'm3'", "span.attributes.nope != 'x'",
    "span.attributes.tier LIKE '%m3%'", "span.attributes.tier LIKE 'm3'", "span.attributes.tier LIKE '%M3%'",
    "span.attributes.tier ILIKE '%M3%'", "span.attributes.tier LIKE '%5%'", "span.attributes.tier LIKE ': \"5\"%'",
    "span.attributes.tier LIKE '%\"m3\"%'", "span.attributes.tier LIKE '%true%'", "span.attributes.tier LIKE '%1.5%'",
    "span.attributes.tier LIKE '%a%'", "span.attributes.`tier` LIKE '%m3%'", "span.attributes.ti_r LIKE '%m3%'",
    "span.attributes.tier LIKE '%'", "span.content LIKE '%\"tier\": \"%'", "span.content LIKE '%\"tier\": \"5\"%'",
    # The quote keeps the pattern off the spans' base64 ids (random for the client's traces, so
    # `%M3%` alone matched one server's `...m3...` id now and then).
    "trace.text ILIKE '%\"M3%'",
]


def _attribute_otlp_payload():
    """One OTLP request with a span for each of `_OTLP_VALUES` (as an OpenTelemetry SDK sends
    them), made once so that both servers get the same ids (they are in the span's text that
    LIKE patterns scan): (body, trace id -> label)."""
    req = ExportTraceServiceRequest()
    spans = req.resource_spans.add().scope_spans.add().spans
    labels = {}
    for i, (label, value) in enumerate(_OTLP_VALUES):
        span = spans.add()
        span.trace_id = uuid.uuid4().bytes
        span.span_id = uuid.uuid4().bytes[:8]
        span.name = "s"
        span.start_time_unix_nano = time.time_ns() + i
        span.end_time_unix_nano = span.start_time_unix_nano + 1000
        span.status.code = 1
        span.attributes.append(KeyValue(key="tier", value=AnyValue(**value)))
        labels["tr-" + span.trace_id.hex()] = label
    return req.SerializeToString(), labels


def _attribute_traces(url, experiment_id, otlp):
    """The traces of `_ATTRIBUTE_VALUES` (made by the client, each a span with the attribute
    `tier`) and of the `otlp` payload: trace id -> label."""
    labels = {}
    for label, value in _ATTRIBUTE_VALUES:
        with mlflow.start_span("s") as span:
            span.set_attribute("tier", value)
        labels[mlflow.get_last_active_trace_id()] = label
    _flush()
    body, otlp_labels = otlp
    _send(url, experiment_id, body)
    return {**labels, **otlp_labels}


def _same_answers(servers, experiment_name, make_traces, filters, refused):
    """Makes traces with `make_traces(url, experiment_id)` (trace id -> label, or that and a
    dict `filters` are formatted with) in a new experiment on each of `servers` (name ->
    server), searches each of `filters` there, checks
    that each of `refused` is refused, requires the same labels from every server, and returns
    what each found: server name -> filter -> sorted labels."""
    seen = {}
    for name, srv in servers.items():
        exp = _new_experiment(srv.url, experiment_name)
        made = make_traces(srv.url, exp)
        # A filter naming something each server makes its own (a run id) is a template, filled
        # in with what `make_traces` answers beside the labels.
        labels, fill = made if isinstance(made, tuple) else (made, None)
        answers = {}
        for f in filters:
            text = f.format(**fill) if fill else f
            found = mlflow.MlflowClient(srv.url).search_traces(locations=[exp], filter_string=text, max_results=100)
            answers[f] = sorted(labels[t.info.trace_id] for t in found)
        for f in refused:
            with pytest.raises(MlflowException):
                mlflow.MlflowClient(srv.url).search_traces(locations=[exp], filter_string=f)
        seen[name] = answers
    first, *others = seen.values()
    for other in others:
        assert {f: (first[f], other[f]) for f in filters if first[f] != other[f]} == {}
    return seen


def test_span_attribute_filters_match_what_mlflow_matches(server, mlflow_server, unique_name):
    otlp = _attribute_otlp_payload()
    got = _same_answers(
        {"mlflow": mlflow_server, "wasmflow": server}, unique_name("attr"),
        lambda url, exp: _attribute_traces(url, exp, otlp), _ATTRIBUTE_FILTERS,
        ["span.attributes.tier IN ('m3')", "span.attributes.tier NOT IN ('m3')"],
    )["wasmflow"]
    # What the comparison covers, spelled out: `=` matches nothing (MLflow compares the span's
    # text with the pattern itself), `!=` everything, LIKE the value's JSON text after the key.
    everything = sorted(label for label, _ in _ATTRIBUTE_VALUES + _OTLP_VALUES)
    assert got["span.attributes.tier = 'm3'"] == []
    assert got["span.attributes.tier != 'm3'"] == everything
    assert got["span.attributes.tier LIKE '%m3%'"] == ["client-str", "otlp-quoted", "otlp-str"]
    assert got["span.attributes.tier ILIKE '%M3%'"] == ["client-str", "client-upper", "otlp-quoted", "otlp-str"]
    assert got["span.attributes.tier LIKE ': \"5\"%'"] == ["client-int", "otlp-int"]
    assert got["trace.text ILIKE '%\"M3%'"] == ["client-str", "client-upper", "otlp-quoted", "otlp-str"]


# ---------------------------------------------------------------------------------------------
# 7. `RLIKE` and `\` in LIKE patterns, as MLflow's SQL store (on SQLite, the `mlflow_server`
# fixture's store) answers them.

_PATTERN_TRACES = [
    # label, span name, span type, tags, the span attribute `tier`, an assessment's value
    ("a", "agent", "LLM", {"kind": "alpha-1", "path": "C:\\dir\\file"}, "m3", "yes"),
    ("b", "retriever", "RETRIEVER", {"kind": "Beta_2", "path": "a%b"}, "m30", "no"),
    ("c", "agent", "TOOL", {"kind": "gamma", "path": "x\\%y"}, "km3", "Yes"),
]
_PATTERN_FILTERS = [
    "tags.kind RLIKE '^alpha'", "tags.kind RLIKE '[0-9]$'", "tags.kind RLIKE 'A'", "tags.kind RLIKE 'a.*a'",
    "tags.kind RLIKE '('", "tags.path RLIKE '\\\\'", "tags.path RLIKE '^C:'", "tag.kind RLIKE 'mm'",
    "metadata.`mlflow.trace_schema.version` RLIKE '^[0-9]+$'", "name RLIKE '^ag.nt$'", "trace.status RLIKE '^OK'",
    "request_id RLIKE '^tr-[0-9a-f]+$'", "span.name RLIKE 'retr'", "span.type RLIKE '^(LLM|TOOL)$'",
    "span.status RLIKE 'OK'", "span.attributes.tier RLIKE 'm3'", "span.attributes.tier RLIKE '^m3$'",
    "span.attributes.tier RLIKE '^m3'", "span.attributes.tier RLIKE '3$'", "span.attributes.tier RLIKE 'm3.$'",
    "feedback.rating RLIKE 'es'", "feedback.rating RLIKE '^\"Y'",
    "tags.path LIKE '%\\%'", "tags.path LIKE '%\\%%'", "tags.path LIKE 'C:\\dir%'", "tags.path LIKE 'a\\%b'",
    "tags.path ILIKE 'c:\\DIR%'", "tags.path LIKE '%\\_%'", "tags.path = 'C:\\dir\\file'",
    "span.attributes.tier LIKE '%\\\"m3%'", "span.content LIKE '%\\\\\"m3\\\\\"%'", "trace.text ILIKE '%\\\"KM3%'",
]


def _pattern_traces(url, experiment_id):
    """The traces of `_PATTERN_TRACES`, made by the client: trace id -> label."""
    mlflow.set_tracking_uri(url)
    labels = {}
    for label, name, span_type, tags, tier, rating in _PATTERN_TRACES:
        with mlflow.start_span(name, span_type=span_type) as span:
            span.set_attribute("tier", tier)
            mlflow.update_current_trace(tags=tags)
        trace_id = mlflow.get_last_active_trace_id()
        labels[trace_id] = label
    _flush()
    for trace_id, (label, *_, rating) in zip(labels, _PATTERN_TRACES):
        mlflow.log_feedback(trace_id=trace_id, name="rating", value=rating)
    return labels


@pytest.mark.skipif(POSTGRES, reason="compared with MLflow on SQLite, where `\\` in LIKE is a plain "
                    "character and an uncompilable RLIKE matches nothing; on PostgreSQL MLflow's store "
                    "escapes with `\\` and refuses the pattern (the store tests check both backends)")
def test_rlike_and_backslash_filters_match_what_mlflow_matches(server, mlflow_server, unique_name):
    # Refused by both: RLIKE where MLflow takes none (numbers, span content).
    got = _same_answers(
        {"mlflow": mlflow_server, "wasmflow": server}, unique_name("pattern"), _pattern_traces,
        _PATTERN_FILTERS, ["timestamp_ms RLIKE '1'", "span.content RLIKE 'm3'", "text RLIKE 'm3'"],
    )["wasmflow"]
    # What the comparison covers, spelled out: RLIKE is a case-sensitive search anywhere in the
    # text, a pattern that does not compile matches nothing, and on SQLite `\` in a LIKE pattern
    # is a plain character.
    assert got["tags.kind RLIKE '^alpha'"] == ["a"]
    assert got["tags.kind RLIKE 'A'"] == []
    assert got["tags.kind RLIKE '('"] == []
    assert got["span.attributes.tier RLIKE '^m3$'"] == ["a"]
    assert got["span.attributes.tier RLIKE 'm3'"] == ["a", "b", "c"]
    assert got["tags.path LIKE '%\\%'"] == ["a", "c"]
    assert got["tags.path LIKE 'a\\%b'"] == []


# ---------------------------------------------------------------------------------------------
# 8. `feedback.<name>` / `expectation.<name>` filters over values of each kind, as MLflow's SQL
# store answers them: it keeps a value as its `json.dumps` text (a string in quotes), matches
# `=`/`!=` with the filter's text or its `json.dumps`, LIKE/ILIKE/RLIKE patterns with the text as
# it is, and `<`, `>`, ... with numbers only.

_ASSESSMENT_VALUES = [
    # (label, feedback `v`, expectation `e` or None)
    ("yes", "yes", "yes"), ("Yes", "Yes", None), ("no", "no", None), ("str5", "5", None),
    ("accent", "très", None), ("int", 5, 3), ("float", 0.5, None), ("float1", 1.0, None),
    ("true", True, None), ("false", False, None), ("dict", {"a": 1, "b": "x"}, {"k": [1, 2]}),
    ("list", [1, "two"], None),
]
_ASSESSMENT_FILTERS = [
    "feedback.v = 'yes'", "feedback.v = '\"yes\"'", "feedback.v != 'yes'", "feedback.v = '5'",
    "feedback.v = '5.0'", "feedback.v = '1.0'", "feedback.v = 'true'", "feedback.v = 'false'",
    "feedback.v = 'très'", "feedback.v = '{\"a\": 1, \"b\": \"x\"}'", "feedback.v = '{\"a\":1,\"b\":\"x\"}'",
    "feedback.v != '5.0'", "feedback.v LIKE 'yes'", "feedback.v LIKE 'ye%'", "feedback.v LIKE '\"ye%'",
    "feedback.v LIKE '%yes%'", "feedback.v LIKE '%es\"'", "feedback.v ILIKE '%YES%'", "feedback.v ILIKE 'yes'",
    "feedback.v ILIKE '\"YES\"'", "feedback.v LIKE '%\"a\": 1%'", "feedback.v LIKE '%\"a\":1%'",
    "feedback.v LIKE '%è%'", "feedback.v LIKE '%\\u00e8%'", "feedback.v LIKE '5%'", "feedback.v LIKE 'true'",
    "feedback.v LIKE '[%'", "feedback.v LIKE '%, \"two\"]'", "feedback.v LIKE '%.%'",
    "feedback.v RLIKE '^yes'", "feedback.v RLIKE '^\"yes\"$'", "feedback.v RLIKE '^[0-9]'",
    "feedback.v > 1", "feedback.v >= 0.5", "feedback.v < 1", "feedback.v <= 5",
    "feedback.v IS NULL", "feedback.v IS NOT NULL",
    "expectation.e = 'yes'", "expectation.e = '3'", "expectation.e LIKE '{%'",
    "expectation.e LIKE '%\"k\": [1, 2]%'", "expectation.e > 2", "expectation.e IS NOT NULL",
]


def _assessment_traces(url, experiment_id):
    """A trace for each of `_ASSESSMENT_VALUES` with its feedback and expectation, made by the
    client: trace id -> label."""
    mlflow.set_tracking_uri(url)
    labels = {}
    for label, *_ in _ASSESSMENT_VALUES:
        with mlflow.start_span("s"):
            pass
        labels[mlflow.get_last_active_trace_id()] = label
    _flush()
    for trace_id, (_, feedback, expectation) in zip(labels, _ASSESSMENT_VALUES):
        mlflow.log_feedback(trace_id=trace_id, name="v", value=feedback)
        if expectation is not None:
            mlflow.log_expectation(trace_id=trace_id, name="e", value=expectation)
    return labels


def test_assessment_value_filters_match_what_mlflow_matches(server, mlflow_server, unique_name):
    got = _same_answers(
        {"mlflow": mlflow_server, "wasmflow": server}, unique_name("assess"), _assessment_traces,
        _ASSESSMENT_FILTERS, [],
    )["wasmflow"]
    # What the comparison covers, spelled out: LIKE sees a string's quotes, `=` does not need
    # them, and only numbers compare as numbers.
    assert got["feedback.v LIKE 'ye%'"] == []
    assert got["feedback.v LIKE '\"ye%'"] == ["yes"]
    assert got["feedback.v = 'yes'"] == ["yes"]
    assert got["feedback.v ILIKE '\"YES\"'"] == ["Yes", "yes"]
    assert got["feedback.v < 1"] == ["float"]
    # The client's 5 reaches the server as a float: its text is 5.0.
    assert got["feedback.v = '5'"] == ["str5"]
    assert got["feedback.v = '5.0'"] == ["int"]


# ---------------------------------------------------------------------------------------------
# 9. `run_id` filters: `=` finds the traces made under the run and those linked to it
# (`link_traces_to_run`), as MLflow's `_apply_trace_filter_clauses`; other comparisons look at the
# `mlflow.sourceRun` metadata only.

_RUN_FILTERS = [
    "run_id = '{r1}'", "run_id = '{r2}'", "run_id != '{r1}'", "run_id LIKE '{r1}%'", "run_id IS NULL",
    "run_id IS NOT NULL", "run_id RLIKE '^{r2}$'",
    "metadata.`mlflow.sourceRun` = '{r1}'", "metadata.`mlflow.sourceRun` != '{r1}'",
    "run_id = '{r1}' AND trace.status = 'OK'",
]


def _run_traces(url, experiment_id):
    """Traces made under run r1 (`under`), linked to r1 (`linked`), made under r2 and linked
    to r1 too (`both`), made under r2 (`other`), and under none (`none`): (trace id -> label,
    the run ids)."""
    mlflow.set_tracking_uri(url)
    client = mlflow.MlflowClient(url)
    r1 = client.create_run(experiment_id).info.run_id
    r2 = client.create_run(experiment_id).info.run_id
    labels = {}

    def make(label, run_id=None):
        if run_id:
            with mlflow.start_run(run_id=run_id), mlflow.start_span("s"):
                pass
        else:
            with mlflow.start_span("s"):
                pass
        labels[mlflow.get_last_active_trace_id()] = label

    make("under", r1)
    make("linked")
    make("both", r2)
    make("other", r2)
    make("none")
    _flush()
    by_label = {label: tid for tid, label in labels.items()}
    client.link_traces_to_run([by_label["linked"], by_label["both"]], r1)
    return labels, {"r1": r1, "r2": r2}


def test_run_id_filters_match_what_mlflow_matches(server, mlflow_server, unique_name):
    got = _same_answers(
        {"mlflow": mlflow_server, "wasmflow": server}, unique_name("runs"), _run_traces, _RUN_FILTERS,
        ["run_id IN ('x')", "run_id NOT IN ('x')"],
    )["wasmflow"]
    assert got["run_id = '{r1}'"] == ["both", "linked", "under"]
    assert got["run_id LIKE '{r1}%'"] == ["under"]
