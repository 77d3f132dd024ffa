"""Spans from OpenTelemetry instrumentations other than MLflow's (the GenAI semantic conventions,
OpenInference, Traceloop/OpenLLMetry, Vercel AI, Langfuse, Laminar, VoltAgent, LiveKit, Google
ADK, Spring AI, Claude Code, Gemini CLI), sent over OTLP: MLflow 3.17's SQL store translates their
attributes into MLflow's when it stores them (span types, inputs and outputs, token usage, message
format, tools, model and provider), and the trace's token usage sums what it translated.

Each convention's trace goes, as the same OTLP bytes, to a real `mlflow server` (the session's
`mlflow_server` fixture) and to wasmflow, and what the client sees is compared: `get_trace`'s spans
(every attribute, the span type, inputs and outputs), the trace's record (token usage metadata,
previews), `search_traces` over span types and the translated attributes, and the trace metrics
by tokens and models. Model names are ones MLflow has no price for (pricing is compared in
test_traces_cost.py)."""

from __future__ import annotations

import json
import time
import uuid

import mlflow
import pytest
import requests
from mlflow.entities.trace_metrics import AggregationType, MetricAggregation, MetricViewType
from mlflow.tracing.client import TracingClient
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from test_traces_server import _send, _stable_info


def _any(value) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, str):
        return AnyValue(string_value=value)
    if isinstance(value, list):
        v = AnyValue()
        v.array_value.values.extend(_any(x) for x in value)
        return v
    v = AnyValue()
    v.kvlist_value.values.extend(KeyValue(key=k, value=_any(x)) for k, x in value.items())
    return v


def _kvs(attrs):
    return [KeyValue(key=k, value=_any(v)) for k, v in attrs.items()]


def _j(value):
    return json.dumps(value)


# Each convention: spans (name, attributes, events as (name, attributes)); the first is the root,
# the others its children. Events and attributes as the instrumentations send them (JSON text in
# strings where they cannot send maps).
CONVENTIONS = {
    "genai": [
        ("invoke_agent", {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.input.messages": _j([{"role": "user", "content": "what is 2+2?"}]),
            "gen_ai.output.messages": _j([{"role": "assistant", "content": "4"}]),
        }, []),
        ("chat", {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "acme-chat-1",
            "gen_ai.response.model": "acme-chat-1-0613",
            "gen_ai.provider.name": "acme",
            "gen_ai.usage.input_tokens": 12,
            "gen_ai.usage.output_tokens": 5,
            "gen_ai.usage.cache_read.input_tokens": 3,
            "gen_ai.tool.definitions": _j([{"type": "function", "name": "add"}]),
            "gen_ai.input.messages": _j([{"role": "user", "content": "what is 2+2?"}]),
        }, []),
        ("execute_tool", {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.call.arguments": _j({"a": 2, "b": 2}),
            "gen_ai.tool.call.result": "4",
        }, []),
        ("embeddings", {
            "gen_ai.operation.name": "embeddings",
            "gen_ai.request.model": "acme-embed-1",
            "gen_ai.usage.input_tokens": "7",
            "gen_ai.usage.cache_creation.input_tokens": 2,
        }, []),
        ("text_completion", {"gen_ai.operation.name": "text_completion"}, [
            ("gen_ai.system.message", {"content": "be brief"}),
            ("gen_ai.user.message", {"content": "hello"}),
            ("gen_ai.choice", {"content": "hi", "index": 0}),
        ]),
    ],
    "openinference": [
        ("chain", {
            "openinference.span.kind": "CHAIN",
            "input.value": "what is the answer?",
            "output.value": _j({"answer": "42"}),
        }, []),
        ("llm", {
            "openinference.span.kind": "LLM",
            "llm.token_count.prompt": 20,
            "llm.token_count.completion": 8,
            "llm.token_count.total": 28,
            "llm.token_count.prompt_details.cache_read": 4,
            "llm.model_name": "acme-oi-1",
            "llm.provider": "acme",
            "input.value": _j({"messages": [{"role": "user", "content": "q"}]}),
            "output.value": _j({"choices": [{"message": {"role": "assistant", "content": "a"}}]}),
        }, []),
        ("retriever", {"openinference.span.kind": "RETRIEVER", "input.value": "docs about x"}, []),
        ("unknown", {"openinference.span.kind": "UNKNOWN"}, []),
        ("typed", {"openinference.span.kind": "LLM", "mlflow.spanType": "TOOL"}, []),
        ("embedding", {
            "openinference.span.kind": "EMBEDDING",
            "embedding.model_name": "acme-oi-embed",
            "llm.token_count.prompt": 6,
        }, []),
    ],
    "traceloop": [
        ("workflow", {
            "traceloop.span.kind": "workflow",
            "traceloop.entity.input": _j({"inputs": {"q": "hi"}}),
            "traceloop.entity.output": _j({"outputs": "yo"}),
        }, []),
        ("openai.chat", {
            "gen_ai.system": "acme",
            "gen_ai.request.model": "acme-tl-1",
            "gen_ai.usage.prompt_tokens": 15,
            "gen_ai.usage.completion_tokens": 6,
            "llm.usage.total_tokens": 21,
            "gen_ai.prompt.0.role": "user",
            "gen_ai.prompt.0.content": "hello",
            "gen_ai.completion.0.role": "assistant",
            "gen_ai.completion.0.content": "hi back",
        }, []),
        ("task", {"traceloop.span.kind": "task", "traceloop.entity.input": "5"}, []),
        ("tool", {
            "traceloop.span.kind": "tool",
            "gen_ai.completion.0.tool_calls.0.arguments": _j({"city": "Paris"}),
        }, []),
    ],
    "vercel": [
        ("ai.generateText", {
            "ai.operationId": "ai.generateText",
            "ai.prompt": _j({"prompt": "say hi"}),
            "ai.response.text": "hi",
        }, []),
        ("ai.generateText.doGenerate", {
            "ai.operationId": "ai.generateText.doGenerate",
            "ai.prompt.format": "messages",
            "ai.prompt.messages": _j([{"role": "user", "content": [{"type": "text", "text": "say hi"}]}]),
            "ai.response.text": "hi",
            "ai.response.finishReason": "stop",
            "gen_ai.request.model": "acme-v-1",
            "gen_ai.system": "acme.chat",
            "gen_ai.usage.input_tokens": 9,
            "gen_ai.usage.output_tokens": 3,
        }, []),
        ("ai.toolCall", {
            "ai.operationId": "ai.toolCall",
            "ai.toolCall.args": _j({"x": 1}),
            "ai.toolCall.result": _j({"y": 2}),
        }, []),
        ("ai.embed", {
            "ai.operationId": "ai.embed",
            "ai.value": "some text",
            "ai.embedding": _j([0.1, 0.2]),
        }, []),
    ],
    "langfuse": [
        ("generation", {
            "langfuse.observation.type": "generation",
            "langfuse.observation.input": _j({"model": "acme-lf-1", "messages": [{"role": "user", "content": "hey"}]}),
            "langfuse.observation.output": _j({"role": "assistant", "content": "hello"}),
        }, []),
        ("tool", {"langfuse.observation.type": "tool", "langfuse.observation.input": _j({"q": 1})}, []),
        ("span", {"langfuse.observation.type": "span"}, []),
    ],
    "laminar": [
        ("pipeline", {
            "lmnr.span.type": "PIPELINE",
            "lmnr.span.input": _j({"question": "why?"}),
            "lmnr.span.output": _j("because"),
        }, []),
        ("llm", {
            "lmnr.span.type": "LLM",
            "gen_ai.request.model": "acme-lmnr-1",
            "gen_ai.system": "acme",
            "gen_ai.usage.input_tokens": 14,
            "gen_ai.usage.output_tokens": 4,
        }, []),
        ("executor", {"lmnr.span.type": "EXECUTOR"}, []),
    ],
    "voltagent": [
        ("my-voltagent-app", {
            "entity.type": "agent",
            "agent.messages": _j([{"role": "user", "content": "plan a trip"}]),
            "output": "done",
            "voltagent.operation_id": "op-1",
        }, []),
        ("llm:streamText", {
            "span.type": "llm",
            "entity.type": "agent",
            "llm.messages": _j([{"role": "user", "content": "plan a trip"}]),
            "usage.prompt_tokens": 11,
            "usage.completion_tokens": 2,
            "usage.total_tokens": 13,
        }, []),
        ("memory", {"span.type": "memory", "input": _j({"key": "k"})}, []),
    ],
    "livekit": [
        ("agent_session", {
            "lk.agent_name": "assistant",
            "lk.room_name": "room-1",
            "lk.user_input": "book a table",
            "lk.response.text": "booked",
        }, []),
        ("llm_node", {
            "gen_ai.request.model": "acme-lk-1",
            "gen_ai.usage.input_tokens": 30,
            "gen_ai.usage.output_tokens": 10,
            "lk.chat_ctx": _j({"items": [{"role": "user", "content": "book"}]}),
            "lk.response.text": "ok",
        }, []),
        ("function_tool", {"lk.function_tool.name": "lookup"}, []),
        ("tts", {"lk.tts.label": "tts-1", "lk.input_text": "booked"}, []),
    ],
    "google_adk": [
        ("invoke_agent", {
            "gen_ai.operation.name": "invoke_agent",
            "gcp.vertex.agent.llm_request": _j({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}),
            "gcp.vertex.agent.llm_response": _j({"content": {"role": "model", "parts": [{"text": "yo"}]}}),
        }, []),
        ("execute_tool", {
            "gen_ai.operation.name": "execute_tool",
            "gcp.vertex.agent.tool_call_args": _j({"city": "Rome"}),
            "gcp.vertex.agent.tool_response": _j({"temp": 20}),
        }, []),
    ],
    "spring_ai": [
        ("workflow", {"gen_ai.operation.name": "invoke_agent"}, []),
        ("chat acme", {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "acme-spring-1",
            "gen_ai.usage.input_tokens": 5,
            "gen_ai.usage.output_tokens": 2,
        }, [
            ("gen_ai.content.prompt", {"gen_ai.prompt": "Tell me a joke"}),
            ("gen_ai.content.completion", {"gen_ai.completion": "Why did the chicken cross the road?"}),
        ]),
    ],
    "claude_code": [
        ("claude_code.interaction", {"span.type": "claude_code.interaction", "user_prompt": "fix the bug"}, []),
        ("claude_code.llm_request", {
            "span.type": "llm_request",
            "input_tokens": 100,
            "output_tokens": 20,
            "cache_read_tokens": 50,
            "cache_creation_tokens": 10,
            "new_context": "the context",
            "response.model_output": "done",
        }, []),
        ("claude_code.tool", {
            "span.type": "claude_code.tool",
            "tool_input": "<REDACTED>",
            "full_command": "ls -la",
        }, [("tool.output", {"output": "file1"})]),
    ],
    "gemini_cli": [
        ("agent", {
            "gen_ai.agent.name": "gemini-cli",
            "gen_ai.operation.name": "agent_call",
            "gen_ai.input.messages": "fix it",
        }, []),
        ("llm", {
            "gen_ai.agent.name": "gemini-cli",
            "gen_ai.operation.name": "llm_call",
            "gen_ai.request.model": "acme-gemini-1",
            "gen_ai.usage.input_tokens": 40,
            "gen_ai.usage.output_tokens": 4,
            "gen_ai.input.messages": _j([{"role": "user", "parts": [{"text": "hi"}]}]),
            "gen_ai.output.messages": _j([{"role": "model", "parts": [{"text": "a"}]},
                                          {"role": "model", "parts": [{"text": "b"}]}]),
        }, []),
        ("user_prompt", {"gen_ai.agent.name": "gemini-cli", "gen_ai.operation.name": "user_prompt"}, []),
    ],
    # Not another convention: MLflow's own inputs naming a model give the span its model.
    "mlflow_inputs_model": [
        ("llm", {
            "mlflow.spanType": "LLM",
            "mlflow.spanInputs": _j({"model": "acme-in-1", "messages": [{"role": "user", "content": "q"}]}),
        }, []),
    ],
}

# What each convention's trace must show (beyond being the same on both servers), so that the
# comparison is known to cover a translation: span name -> MLflow span type.
TYPES = {
    "genai": {"invoke_agent": "AGENT", "chat": "CHAT_MODEL", "execute_tool": "TOOL",
              "embeddings": "EMBEDDING", "text_completion": "LLM"},
    "openinference": {"chain": "CHAIN", "llm": "LLM", "retriever": "RETRIEVER", "unknown": "UNKNOWN",
                      "typed": "TOOL", "embedding": "EMBEDDING"},
    "traceloop": {"workflow": "WORKFLOW", "openai.chat": "LLM", "task": "TASK", "tool": "TOOL"},
    "vercel": {"ai.generateText": "LLM", "ai.generateText.doGenerate": "LLM", "ai.toolCall": "TOOL",
               "ai.embed": "EMBEDDING"},
    "langfuse": {"generation": "LLM", "tool": "TOOL", "span": "UNKNOWN"},
    "laminar": {"pipeline": "CHAIN", "llm": "LLM", "executor": "AGENT"},
    "voltagent": {"my-voltagent-app": "AGENT", "llm:streamText": "LLM", "memory": "MEMORY"},
    "livekit": {"agent_session": "AGENT", "llm_node": "LLM", "function_tool": "TOOL", "tts": "UNKNOWN"},
    "google_adk": {"invoke_agent": "AGENT", "execute_tool": "TOOL"},
    "spring_ai": {"workflow": "AGENT", "chat acme": "CHAT_MODEL"},
    "claude_code": {"claude_code.interaction": "AGENT", "claude_code.llm_request": "LLM",
                    "claude_code.tool": "TOOL"},
    "gemini_cli": {"agent": "AGENT", "llm": "LLM", "user_prompt": None},
    "mlflow_inputs_model": {"llm": "LLM"},
}

# Trace token usage each convention's trace sums to (None: no token counts).
TOKENS = {
    "genai": {"input_tokens": 19, "output_tokens": 5, "total_tokens": 17, "cache_read_input_tokens": 3,
              "cache_creation_input_tokens": 2},
    "openinference": {"input_tokens": 26, "output_tokens": 8, "total_tokens": 28, "cache_read_input_tokens": 4},
    "traceloop": {"input_tokens": 15, "output_tokens": 6, "total_tokens": 21},
    "vercel": {"input_tokens": 9, "output_tokens": 3, "total_tokens": 12},
    "langfuse": None,
    "laminar": {"input_tokens": 14, "output_tokens": 4, "total_tokens": 18},
    "voltagent": {"input_tokens": 11, "output_tokens": 2, "total_tokens": 13},
    "livekit": {"input_tokens": 30, "output_tokens": 10, "total_tokens": 40},
    "google_adk": None,
    "spring_ai": {"input_tokens": 5, "output_tokens": 2, "total_tokens": 7},
    "claude_code": {"input_tokens": 160, "output_tokens": 20, "total_tokens": 180,
                    "cache_read_input_tokens": 50, "cache_creation_input_tokens": 10},
    "gemini_cli": {"input_tokens": 40, "output_tokens": 4, "total_tokens": 44},
    "mlflow_inputs_model": None,
}


def _payload(convention, defined=None):
    """The convention's trace (or the `defined` spans) as one OTLP request (made once: both servers get the
    same ids), and its MLflow trace id."""
    req = ExportTraceServiceRequest()
    spans = req.resource_spans.add().scope_spans.add().spans
    trace_id = uuid.uuid4().bytes
    root_id = uuid.uuid4().bytes[:8]
    t0 = time.time_ns()
    for i, (name, attrs, events) in enumerate(defined or CONVENTIONS[convention]):
        span = spans.add()
        span.trace_id = trace_id
        span.span_id = root_id if i == 0 else uuid.uuid4().bytes[:8]
        if i:
            span.parent_span_id = root_id
        span.name = name
        span.start_time_unix_nano = t0 + i * 1000
        span.end_time_unix_nano = t0 + 1_000_000 - i * 1000
        span.status.code = 1
        span.attributes.extend(_kvs(attrs))
        for n, (event, event_attrs) in enumerate(events):
            e = span.events.add()
            e.name = event
            e.time_unix_nano = t0 + n
            e.attributes.extend(_kvs(event_attrs))
    return req.SerializeToString(), "tr-" + trace_id.hex()


def _spans(trace):
    return {s.name: {"span_type": s.span_type, "inputs": s.inputs, "outputs": s.outputs,
                     "attributes": s.attributes} for s in trace.data.spans}


def _filters(convention):
    types = sorted({t for t in TYPES[convention].values() if t})
    out = [f"span.type = '{t}'" for t in types]
    out += [f"span.attributes.`mlflow.spanType` LIKE '%{t}%'" for t in types]
    out += [
        "span.attributes.`mlflow.spanInputs` LIKE '%'",
        "span.attributes.`mlflow.spanOutputs` LIKE '%'",
        "span.attributes.`mlflow.chat.tokenUsage` LIKE '%input_tokens%'",
        "span.attributes.`mlflow.llm.model` LIKE '%acme%'",
        "span.content LIKE '%mlflow.chat.tokenUsage%'",
    ]
    return out


def _agg(kind):
    return MetricAggregation(AggregationType(kind))


METRICS = [
    (MetricViewType.TRACES, "input_tokens", [_agg("SUM")], {}),
    (MetricViewType.TRACES, "output_tokens", [_agg("SUM")], {}),
    (MetricViewType.TRACES, "total_tokens", [_agg("SUM")], {}),
    (MetricViewType.TRACES, "cache_read_input_tokens", [_agg("SUM")], {}),
    (MetricViewType.SPANS, "span_count", [_agg("COUNT")], {"dimensions": ["span_type"]}),
    (MetricViewType.SPANS, "span_count", [_agg("COUNT")], {"dimensions": ["span_model_name"]}),
    (MetricViewType.SPANS, "span_count", [_agg("COUNT")], {"dimensions": ["span_model_provider"]}),
]


def _metrics(url, exp):
    client = TracingClient(url).store
    out = []
    for view, metric, aggs, kw in METRICS:
        points = client.query_trace_metrics(
            experiment_ids=[exp], view_type=view, metric_name=metric, aggregations=aggs, **kw)
        out.append(sorted((p.metric_name, json.dumps(p.dimensions, sort_keys=True),
                           json.dumps(p.values, sort_keys=True)) for p in points))
    return out


def _seen(srv, convention, payload, trace_id, unique_name):
    mlflow.set_tracking_uri(srv.url)
    exp = mlflow.set_experiment(unique_name(convention)).experiment_id
    _send(srv.url, exp, payload)
    client = mlflow.MlflowClient(srv.url)
    trace = client.get_trace(trace_id)
    return {
        "spans": _spans(trace),
        "info": _stable_info(trace.info),
        "search": {f: len(client.search_traces(locations=[exp], filter_string=f)) for f in _filters(convention)},
        "metrics": _metrics(srv.url, exp),
    }


@pytest.fixture(scope="module")
def answers(server, mlflow_server):
    """What each server answers for each convention's trace (sent once to each)."""
    names = iter(range(10**6))
    unique = lambda prefix: f"otelconv-{prefix}-{uuid.uuid4().hex[:8]}-{next(names)}"  # noqa: E731
    out = {}
    for convention in CONVENTIONS:
        payload, trace_id = _payload(convention)
        out[convention] = {name: _seen(srv, convention, payload, trace_id, unique)
                           for name, srv in [("mlflow", mlflow_server), ("wasmflow", server)]}
    return out


@pytest.mark.parametrize("convention", list(CONVENTIONS))
def test_spans_as_mlflow_translates_them(answers, convention):
    ours, theirs = answers[convention]["wasmflow"]["spans"], answers[convention]["mlflow"]["spans"]
    assert sorted(ours) == sorted(theirs)
    for name in theirs:
        assert ours[name] == theirs[name], name
    # What the comparison covers: the types MLflow infers.
    assert {name: s["span_type"] for name, s in ours.items()} == TYPES[convention]


@pytest.mark.parametrize("convention", list(CONVENTIONS))
def test_trace_record_as_mlflow_derives_it(answers, convention):
    ours, theirs = answers[convention]["wasmflow"]["info"], answers[convention]["mlflow"]["info"]
    assert ours == theirs
    usage = ours.get("trace_metadata", {}).get("mlflow.trace.tokenUsage")
    assert (json.loads(usage) if usage else None) == TOKENS[convention]
    # No model here has a price in MLflow's list, so neither server prices a span.
    assert "mlflow.trace.cost" not in ours.get("trace_metadata", {})


@pytest.mark.parametrize("convention", list(CONVENTIONS))
def test_searches_as_mlflow_answers_them(answers, convention):
    ours, theirs = answers[convention]["wasmflow"]["search"], answers[convention]["mlflow"]["search"]
    assert {f: (ours[f], theirs[f]) for f in theirs if ours[f] != theirs[f]} == {}
    # The type column keeps the type a span was sent with, in MLflow as here: a translated type
    # is found through the span's text, not `span.type`.
    some_type = next(t for t in TYPES[convention].values() if t)
    assert ours[f"span.attributes.`mlflow.spanType` LIKE '%{some_type}%'"] == 1


@pytest.mark.parametrize("convention", [c for c in CONVENTIONS if TOKENS[c] or c == "mlflow_inputs_model"])
def test_trace_metrics_as_mlflow_answers_them(answers, convention):
    ours, theirs = answers[convention]["wasmflow"]["metrics"], answers[convention]["mlflow"]["metrics"]
    assert ours == theirs
    assert ours[0] or ours[5], "input tokens summed, or spans by model"


# JSON text in stored spans as MLflow keeps it: a string attribute holding JSON as it came (compact
# JSON stays compact, as JavaScript SDKs send it), and the inputs and outputs MLflow's translation
# builds with `json.dumps` with their `\uXXXX` escapes. `span.content` LIKE patterns see the text
# (`_` stands for each of the escaped quote's two characters, `\"`, and an escape's backslashes).
TEXT_SPANS = [
    ("root", {"x": '{"a":1,"b":[1, 2]}', "mlflow.spanInputs": '{"q":"caf\u00e9"}'}, []),
    ("ai.generateText.doGenerate", {
        "ai.operationId": "ai.generateText.doGenerate",
        "ai.prompt.format": "messages",
        "ai.prompt.messages": _j([{"role": "user", "content": [{"type": "text", "text": "caf\u00e9?"}]}]),
        "ai.response.text": "oui, caf\u00e9",
    }, []),
    ("text_completion", {"gen_ai.operation.name": "text_completion"}, [
        ("gen_ai.user.message", {"content": "h\u00e9llo"}),
        ("gen_ai.choice", {"content": "s\u00e4lut", "index": 0}),
    ]),
]
TEXT_PATTERNS = {
    "%a__:1,__b__:[1, 2]%": 1,  # compact, as sent
    "%a__: 1, __b__: [1, 2]%": 0,  # not rewritten
    "%q__:__caf\u00e9%": 1,  # MLflow inputs as sent
    "%caf__u00e9?%": 1,  # Vercel's inputs: json.dumps escapes
    "%oui, caf__u00e9%": 1,  # Vercel's outputs
    "%h__u00e9llo%": 1,  # GenAI events' inputs
    "%s__u00e4lut%": 1,  # GenAI events' outputs
}


def test_stored_json_text_as_mlflow_keeps_it(server, mlflow_server, unique_name):
    payload, trace_id = _payload("text", TEXT_SPANS)
    seen = {}
    for name, srv in [("mlflow", mlflow_server), ("wasmflow", server)]:
        client = mlflow.MlflowClient(srv.url)
        exp = client.create_experiment(unique_name("otel-text"))
        _send(srv.url, exp, payload)
        seen[name] = {p: len(client.search_traces(locations=[exp], filter_string=f"span.content LIKE '{p}'"))
                      for p in TEXT_PATTERNS}
    mlflow.set_tracking_uri(server.url)
    assert seen["mlflow"] == TEXT_PATTERNS
    assert seen["wasmflow"] == seen["mlflow"]
