"""MLflow 3.17's span prices at ingest: a span that carries token usage (`mlflow.chat.tokenUsage`,
sent or translated from another OpenTelemetry convention) and a model (`mlflow.llm.model`, and
optionally `mlflow.llm.provider`) but no `mlflow.llm.cost` is priced by MLflow's server from its
bundled model catalog when it stores it, and the trace's `mlflow.trace.cost` sums the span costs.

Each case is a trace sent, as the same OTLP bytes, to a real `mlflow server` (pricing from its
bundled catalog only: `MLFLOW_MODEL_CATALOG_URI` is empty, as in conftest) and to wasmflow; one more
is logged by the MLflow client itself (`mlflow.start_span`, which sends its spans over OTLP too).
What the client sees is compared: every span attribute of `get_trace`, the trace's record (its
`mlflow.trace.cost` text byte for byte), `search_traces`' DataFrame, the stored span text (a LIKE
filter on each cost as Python writes it), and the trace metrics of costs by model."""

from __future__ import annotations

import json
import uuid

import mlflow
import pytest
from mlflow.entities.trace_metrics import AggregationType, MetricAggregation, MetricViewType
from mlflow.tracing.client import TracingClient
from test_traces_otel_conventions import _payload as otlp_payload
from test_traces_server import _send, _stable_info


def _j(value):
    return json.dumps(value)


def _usage(i, o, **cache):
    return _j({"input_tokens": i, "output_tokens": o, "total_tokens": i + o, **cache})


# A priced span beside each case that prices nothing, so that its trace is still compared with
# a price in it (and main's wasmflow, which priced nothing, failed every case).
PRICED_SIBLING = ("sibling", {"mlflow.llm.model": _j("gpt-4o"), "mlflow.chat.tokenUsage": _usage(300, 40)})

# Each case: spans (name, attributes); the first is the root, the others its children.
CASES = {
    # The GenAI conventions, translated, with a provider: OpenAI's price list.
    "openai_genai": [
        ("chat gpt-4o", {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.provider.name": "openai",
            "gen_ai.usage.input_tokens": 1234,
            "gen_ai.usage.output_tokens": 567,
        }),
    ],
    # OpenInference with cache reads and writes: Anthropic's cache prices.
    "anthropic_cache": [
        ("llm", {
            "openinference.span.kind": "LLM",
            "llm.model_name": "claude-sonnet-4-5",
            "llm.provider": "anthropic",
            "llm.token_count.prompt": 90000,
            "llm.token_count.completion": 3210,
            "llm.token_count.prompt_details.cache_read": 50000,
            "llm.token_count.prompt_details.cache_write": 20000,
        }),
    ],
    # MLflow's own attributes with 1-hour cache writes (only MLflow's usage carries them).
    "anthropic_1h_cache": [
        ("llm", {
            "mlflow.spanType": _j("CHAT_MODEL"),
            "mlflow.llm.model": _j("claude-opus-4-5"),
            "mlflow.llm.provider": _j("anthropic"),
            "mlflow.chat.tokenUsage": _usage(40000, 900, cache_read_input_tokens=10000,
                                             cache_creation_input_tokens=12000,
                                             cache_creation_input_tokens_above_1hr=5000),
        }),
    ],
    # A provider-prefixed name, no provider: every list is scanned for what follows the `/`.
    "prefixed": [
        ("llm", {"mlflow.llm.model": "openai/gpt-4o-mini", "mlflow.chat.tokenUsage": _usage(7, 3)}),
    ],
    # A provider that does not list the model: every list is scanned.
    "other_provider": [
        ("llm", {"mlflow.llm.model": _j("gpt-4.1"), "mlflow.llm.provider": _j("Anthropic"),
                 "mlflow.chat.tokenUsage": _usage(100, 20)}),
    ],
    # Databricks' model names are looked up in Databricks' list first.
    "databricks": [
        ("llm", {"mlflow.llm.model": _j("databricks-claude-sonnet-4-5"),
                 "mlflow.chat.tokenUsage": _usage(1000, 100)}),
    ],
    # A model the catalog does not have: no cost.
    "unknown_model": [
        ("llm", {"mlflow.llm.model": _j("acme-chat-1"), "mlflow.llm.provider": _j("acme"),
                 "mlflow.chat.tokenUsage": _usage(10, 5)}),
        PRICED_SIBLING,
    ],
    # A gateway route is never priced.
    "gateway": [
        ("llm", {"mlflow.llm.model": _j("gateway:/chat-route"), "mlflow.chat.tokenUsage": _usage(10, 5)}),
        PRICED_SIBLING,
    ],
    # No tokens: no cost.
    "zero_tokens": [
        ("llm", {"mlflow.llm.model": _j("gpt-4o"), "mlflow.chat.tokenUsage": _usage(0, 0)}),
        PRICED_SIBLING,
    ],
    # A span that has its cost already keeps it.
    "has_cost": [
        ("llm", {"mlflow.llm.model": _j("gpt-4o"), "mlflow.chat.tokenUsage": _usage(1000, 10),
                 "mlflow.llm.cost": _j({"input_cost": 1.0, "output_cost": 2.0, "total_cost": 3.0})}),
        PRICED_SIBLING,
    ],
    # A trace of several priced spans under an unpriced root: the trace's cost is their sum (a
    # Vercel chat call, a Traceloop call and an MLflow span with tiny costs, Python's `1e-05`s).
    "several": [
        ("agent", {"mlflow.spanType": _j("AGENT")}),
        ("ai.generateText.doGenerate", {
            "ai.operationId": "ai.generateText.doGenerate",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.system": "openai.chat",
            "gen_ai.usage.input_tokens": 9,
            "gen_ai.usage.output_tokens": 3,
        }),
        ("openai.chat", {
            "gen_ai.system": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.prompt_tokens": 15,
            "gen_ai.usage.completion_tokens": 6,
        }),
        ("llm", {"mlflow.llm.model": _j("claude-haiku-4-5"), "mlflow.chat.tokenUsage": _usage(11, 2)}),
    ],
}

# Which spans each server must have priced (so that the comparison is known to cover pricing).
PRICED = {
    "openai_genai": {"chat gpt-4o"},
    "anthropic_cache": {"llm"},
    "anthropic_1h_cache": {"llm"},
    "prefixed": {"llm"},
    "other_provider": {"llm"},
    "databricks": {"llm"},
    "unknown_model": {"sibling"},
    "gateway": {"sibling"},
    "zero_tokens": {"sibling"},
    "has_cost": {"llm", "sibling"},
    "several": {"ai.generateText.doGenerate", "openai.chat", "llm"},
}


def _payload(case):
    return otlp_payload(case, [(name, attrs, []) for name, attrs in CASES[case]])


def _agg(kind):
    return MetricAggregation(AggregationType(kind))


METRICS = [
    (metric, [_agg("SUM"), _agg("MAX")], {"dimensions": ["span_model_name"]})
    for metric in ("input_cost", "output_cost", "total_cost")
] + [("span_count", [_agg("COUNT")], {"dimensions": ["span_model_name", "span_model_provider"]})]


def _metrics(url, exp):
    store = TracingClient(url).store
    out = []
    for metric, aggs, kw in METRICS:
        points = store.query_trace_metrics(experiment_ids=[exp], view_type=MetricViewType.SPANS,
                                           metric_name=metric, aggregations=aggs, **kw)
        # Sums over spans may add in another order in SQL: equal to 12 digits.
        out.append(sorted((p.metric_name, json.dumps(p.dimensions, sort_keys=True),
                           json.dumps({k: round(v, 12) for k, v in p.values.items()}, sort_keys=True))
                          for p in points))
    return out


def _seen(url, exp, trace_id):
    mlflow.set_tracking_uri(url)
    client = mlflow.MlflowClient(url)
    trace = client.get_trace(trace_id)
    spans = {s.name: s.attributes for s in trace.data.spans}
    for attrs in spans.values():
        attrs.pop("mlflow.traceRequestId", None)
    frame = mlflow.search_traces(locations=[exp], return_type="pandas")
    row = frame.iloc[0]
    # The stored text of each cost as Python writes it (`span.content` LIKE patterns see it).
    texts = {}
    for name, attrs in spans.items():
        cost = attrs.get("mlflow.llm.cost")
        if isinstance(cost, dict):
            for k, v in cost.items():
                pattern = f"span.content LIKE '%{k}__: {v!r}%'"
                texts[pattern] = len(client.search_traces(locations=[exp], filter_string=pattern))
    return {
        "spans": spans,
        "info": _stable_info(trace.info),
        "frame": {"trace_metadata": row["trace_metadata"],
                  "span_costs": {s["name"]: s["attributes"].get("mlflow.llm.cost") for s in row["spans"]}},
        "texts": texts,
        "metrics": _metrics(url, exp),
    }


@pytest.fixture(scope="module")
def answers(server, mlflow_server):
    """What each server answers for each case's trace (sent once to each)."""
    out = {}
    for case in CASES:
        payload, trace_id = _payload(case)
        out[case] = {}
        for name, srv in [("mlflow", mlflow_server), ("wasmflow", server)]:
            exp = mlflow.MlflowClient(srv.url).create_experiment(f"cost-{case}-{uuid.uuid4().hex[:8]}")
            _send(srv.url, exp, payload)
            out[case][name] = _seen(srv.url, exp, trace_id)
    mlflow.set_tracking_uri(server.url)
    return out


def _priced(seen):
    return {name for name, attrs in seen["spans"].items() if "mlflow.llm.cost" in attrs}


@pytest.mark.parametrize("case", list(CASES))
def test_span_costs_as_mlflow_prices_them(answers, case):
    ours, theirs = answers[case]["wasmflow"], answers[case]["mlflow"]
    assert ours["spans"] == theirs["spans"]
    assert _priced(theirs) == PRICED[case]


@pytest.mark.parametrize("case", list(CASES))
def test_trace_cost_as_mlflow_sums_it(answers, case):
    ours, theirs = answers[case]["wasmflow"], answers[case]["mlflow"]
    assert ours["info"] == theirs["info"]
    assert ours["frame"] == theirs["frame"]
    assert ("mlflow.trace.cost" in theirs["info"]["trace_metadata"]) == bool(PRICED[case])


@pytest.mark.parametrize("case", [c for c in CASES if PRICED[c]])
def test_stored_cost_text_and_metrics_as_mlflows(answers, case):
    ours, theirs = answers[case]["wasmflow"], answers[case]["mlflow"]
    assert theirs["texts"] and all(n == 1 for n in theirs["texts"].values())
    assert ours["texts"] == theirs["texts"]
    assert ours["metrics"] == theirs["metrics"]


def _client_logged(url):
    """A trace the MLflow client logs itself: an agent calling two LLMs (one with a provider)."""
    mlflow.set_tracking_uri(url)
    exp = mlflow.set_experiment(f"cost-client-{uuid.uuid4().hex[:8]}").experiment_id
    with mlflow.start_span("agent", span_type="AGENT") as root:
        root.set_inputs({"question": "what is 2+2?"})
        with mlflow.start_span("chat", span_type="CHAT_MODEL") as llm:
            llm.set_attribute("mlflow.llm.model", "gpt-4o")
            llm.set_attribute("mlflow.llm.provider", "openai")
            llm.set_attribute("mlflow.chat.tokenUsage",
                              {"input_tokens": 1500, "output_tokens": 45, "total_tokens": 1545})
        with mlflow.start_span("summarise", span_type="LLM") as llm:
            llm.set_attribute("mlflow.llm.model", "claude-haiku-4-5")
            llm.set_attribute("mlflow.chat.tokenUsage",
                              {"input_tokens": 12, "output_tokens": 3, "total_tokens": 15,
                               "cache_read_input_tokens": 4})
        root.set_outputs("4")
    trace_id = mlflow.get_last_active_trace_id()
    mlflow.flush_trace_async_logging()
    trace = mlflow.MlflowClient(url).get_trace(trace_id)
    spans = {s.name: {k: v for k, v in s.attributes.items() if k != "mlflow.traceRequestId"}
             for s in trace.data.spans}
    info = _stable_info(trace.info)
    return spans, info["trace_metadata"].get("mlflow.trace.cost"), _metrics(url, exp)


def test_client_logged_spans_priced_as_mlflow_prices_them(server, mlflow_server):
    theirs = _client_logged(mlflow_server.url)
    ours = _client_logged(server.url)
    mlflow.set_tracking_uri(server.url)
    assert {n for n, a in theirs[0].items() if "mlflow.llm.cost" in a} == {"chat", "summarise"}
    assert {n: a.get("mlflow.llm.cost") for n, a in ours[0].items()} == \
        {n: a.get("mlflow.llm.cost") for n, a in theirs[0].items()}
    assert theirs[1] is not None
    assert ours[1] == theirs[1]
    assert ours[2] == theirs[2]
