"""MLflow 3.17's trace analytics endpoints: `QueryTraceMetrics` (`POST /api/3.0/mlflow/traces/metrics`,
what MLflow's UI overview charts) and `CalculateTraceFilterCorrelation`
(`POST /api/3.0/mlflow/traces/calculate-filter-correlation`), through the client's `RestStore` and
`TracingClient`.

The same traces (OTLP spans with fixed times, so latencies and buckets are deterministic) and the
same assessments go to a real `mlflow server` (the session's `mlflow_server` fixture) and to
wasmflow; every query's answer is compared."""

from __future__ import annotations

import json
import math

import mlflow
import pytest
import requests
from mlflow.entities import AssessmentSource
from mlflow.entities.trace_metrics import AggregationType, MetricAggregation, MetricViewType
from mlflow.exceptions import MlflowException
from mlflow.tracing.client import TracingClient
from opentelemetry import trace as otel_trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

# 2026-01-01T00:00:00Z, in nanoseconds; the traces start a minute apart.
T0 = 1_767_225_600_000_000_000
MINUTE = 60_000_000_000
MS = 1_000_000

# (trace name, status code, session, root latency in ms, LLM spans' input tokens)
TRACES = [
    ("chat", 1, "s1", 120, [10, 20]),
    ("chat", 2, "s1", 300, [5]),
    ("rag", 1, "s2", 80, []),
    ("chat", 1, "s3", 40, [7, 7, 7]),
    ("rag", 2, None, 500, [100]),
    ("chat", 1, "s2", 260, [1]),
]
# LLM span j's model (as the MLflow client sets it, JSON-encoded, or plain as another SDK may)
# and provider (none for some); each has a cost, so MLflow computes none itself from a price list.
MODELS = ['"gpt-4o"', "mini", '"mini"']
PROVIDERS = ['"openai"', None, "local"]
# (trace index, feedback name, value)
FEEDBACK = [
    (0, "quality", True), (1, "quality", False), (2, "quality", True), (3, "quality", True),
    (0, "score", 0.5), (3, "score", 0.9), (5, "score", 0.25), (4, "label", "yes"),
]


def _payload():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("analytics")
    trace_ids = []
    for i, (name, code, session, latency, tokens) in enumerate(TRACES):
        start = T0 + i * MINUTE
        root = tracer.start_span(name, start_time=start)
        root.set_attribute("mlflow.traceTag.mlflow.traceName", name)
        root.set_attribute("mlflow.spanType", "AGENT")
        if session:
            root.set_attribute("session.id", session)
        ctx = otel_trace.set_span_in_context(root)
        for j, n in enumerate(tokens):
            llm = tracer.start_span(f"llm-{j}", context=ctx, start_time=start + (j + 1) * MS)
            llm.set_attribute("mlflow.spanType", "LLM")
            llm.set_attribute("mlflow.chat.tokenUsage", json.dumps(
                {"input_tokens": n, "output_tokens": 1, "total_tokens": n + 1}))
            llm.set_attribute("mlflow.llm.model", MODELS[j])
            if PROVIDERS[j]:
                llm.set_attribute("mlflow.llm.provider", PROVIDERS[j])
            llm.set_attribute("mlflow.llm.cost", json.dumps(
                {"input_cost": n / 1000, "output_cost": 0.002, "total_cost": n / 1000 + 0.002}))
            llm.end(end_time=start + (j + 1) * MS + 10 * (j + 1) * MS)
        tool = tracer.start_span("lookup", context=ctx, start_time=start + MS)
        tool.set_attribute("mlflow.spanType", "TOOL")
        tool.set_attribute("mlflow.llm.model", "mini")  # a model without a cost
        tool.end(end_time=start + 3 * MS)
        root.set_status(otel_trace.Status(otel_trace.StatusCode(code)))
        root.end(end_time=start + latency * MS)
        trace_ids.append("tr-" + format(root.get_span_context().trace_id, "032x"))
    return encode_spans(exporter.get_finished_spans()).SerializeToString(), trace_ids


@pytest.fixture(scope="module")
def seeded(server, mlflow_server):
    """The same traces and feedback in one new experiment of each server: {name: (url, exp id)}."""
    payload, trace_ids = _payload()
    seeded = {}
    for name, srv in [("mlflow", mlflow_server), ("wasmflow", server)]:
        client = mlflow.MlflowClient(srv.url)
        exp = client.create_experiment(f"analytics-{trace_ids[0]}")
        r = requests.post(f"{srv.url}/v1/traces", data=payload, timeout=30, headers={
            "Content-Type": "application/x-protobuf", "x-mlflow-experiment-id": exp})
        assert r.status_code == 200, r.text
        mlflow.set_tracking_uri(srv.url)
        for i, fname, value in FEEDBACK:
            mlflow.log_feedback(trace_id=trace_ids[i], name=fname, value=value,
                                source=AssessmentSource(source_type="HUMAN", source_id="ann"))
        # An overridden feedback is no longer counted: only its replacement is.
        old = mlflow.log_feedback(trace_id=trace_ids[5], name="quality", value=True,
                                  source=AssessmentSource(source_type="HUMAN", source_id="bob"))
        mlflow.override_feedback(trace_id=trace_ids[5], assessment_id=old.assessment_id, value=False)
        seeded[name] = (srv.url, exp)
    mlflow.set_tracking_uri(server.url)
    return seeded


def _metrics(url, exp, view, metric, aggs, **kw):
    points = TracingClient(url).store.query_trace_metrics(
        experiment_ids=[exp], view_type=view, metric_name=metric, aggregations=aggs, **kw)
    return [(p.metric_name, p.dimensions, {k: round(v, 9) for k, v in p.values.items()}) for p in points]


def _agg(kind, p=None):
    return MetricAggregation(AggregationType(kind), p)


END = T0 // MS + 10 * 60_000
QUERIES = [
    (MetricViewType.TRACES, "trace_count", [_agg("COUNT")], {}),
    (MetricViewType.TRACES, "trace_count", [_agg("COUNT")], {"dimensions": ["trace_name", "trace_status"]}),
    (MetricViewType.TRACES, "trace_count", [_agg("COUNT")], {"filters": ["trace.status = 'ERROR'"]}),
    (MetricViewType.TRACES, "trace_count", [_agg("COUNT")], {"filters": ["trace.tag.mlflow.traceName = 'rag'"]}),
    (MetricViewType.TRACES, "trace_count", [_agg("COUNT")],
     {"time_interval_seconds": 120, "start_time_ms": T0 // MS, "end_time_ms": END}),
    (MetricViewType.TRACES, "trace_count", [_agg("COUNT")],
     {"time_interval_seconds": 3600, "start_time_ms": T0 // MS + 60_000, "end_time_ms": T0 // MS + 180_000,
      "dimensions": ["trace_name"]}),
    (MetricViewType.TRACES, "session_count", [_agg("COUNT")], {}),
    (MetricViewType.TRACES, "latency", [_agg("AVG"), _agg("MIN"), _agg("MAX"), _agg("PERCENTILE", 50.0),
                                        _agg("PERCENTILE", 90.0)], {}),
    (MetricViewType.TRACES, "latency", [_agg("AVG"), _agg("PERCENTILE", 75.0)], {"dimensions": ["trace_name"]}),
    (MetricViewType.TRACES, "input_tokens", [_agg("SUM"), _agg("AVG"), _agg("MAX")], {"dimensions": ["trace_name"]}),
    (MetricViewType.TRACES, "total_tokens", [_agg("SUM")], {"filters": ["trace.metadata.mlflow.trace.session = 's1'"]}),
    (MetricViewType.SPANS, "span_count", [_agg("COUNT")], {"dimensions": ["span_type"]}),
    (MetricViewType.SPANS, "span_count", [_agg("COUNT")], {"dimensions": ["span_name", "span_status"]}),
    (MetricViewType.SPANS, "span_count", [_agg("COUNT")], {"filters": ["span.type = 'LLM'", "trace.status = 'OK'"]}),
    (MetricViewType.SPANS, "latency", [_agg("AVG"), _agg("MAX"), _agg("PERCENTILE", 50.0)], {"dimensions": ["span_name"]}),
    (MetricViewType.SPANS, "span_count", [_agg("COUNT")], {"dimensions": ["span_model_name", "span_type"]}),
    (MetricViewType.SPANS, "span_count", [_agg("COUNT")], {"dimensions": ["span_model_provider"]}),
    (MetricViewType.SPANS, "input_cost", [_agg("SUM"), _agg("AVG"), _agg("MAX")], {"dimensions": ["span_model_name"]}),
    (MetricViewType.SPANS, "total_cost", [_agg("SUM"), _agg("PERCENTILE", 50.0)],
     {"dimensions": ["span_model_provider"], "filters": ["trace.status = 'OK'"]}),
    (MetricViewType.SPANS, "output_cost", [_agg("SUM"), _agg("MIN")],
     {"time_interval_seconds": 120, "start_time_ms": T0 // MS + 60_000, "end_time_ms": END}),
    (MetricViewType.ASSESSMENTS, "assessment_count", [_agg("COUNT")], {"dimensions": ["assessment_name"]}),
    (MetricViewType.ASSESSMENTS, "assessment_count", [_agg("COUNT")],
     {"dimensions": ["assessment_name", "assessment_value"], "filters": ["assessment.name = 'quality'"]}),
    (MetricViewType.ASSESSMENTS, "assessment_value", [_agg("AVG"), _agg("MIN"), _agg("MAX")],
     {"dimensions": ["assessment_name"]}),
    (MetricViewType.ASSESSMENTS, "assessment_value", [_agg("AVG")], {"filters": ["trace.status = 'OK'"]}),
]


@pytest.mark.parametrize("view,metric,aggs,kw", QUERIES, ids=[f"{q[0].value}-{q[1]}-{i}" for i, q in enumerate(QUERIES)])
def test_trace_metrics_answer_as_mlflow(seeded, view, metric, aggs, kw):
    got = {name: _metrics(url, exp, view, metric, aggs, **kw) for name, (url, exp) in seeded.items()}
    assert got["wasmflow"] == got["mlflow"]
    assert got["wasmflow"], "the query should find data points"


def test_trace_metrics_figures(seeded):
    # What the comparison covers, spelled out for one query of each view.
    url, exp = seeded["wasmflow"]
    assert _metrics(url, exp, MetricViewType.TRACES, "trace_count", [_agg("COUNT")], dimensions=["trace_status"]) == [
        ("trace_count", {"trace_status": "ERROR"}, {"COUNT": 2.0}),
        ("trace_count", {"trace_status": "OK"}, {"COUNT": 4.0})]
    assert _metrics(url, exp, MetricViewType.TRACES, "latency", [_agg("MAX")]) == [("latency", {}, {"MAX": 500.0})]
    assert _metrics(url, exp, MetricViewType.ASSESSMENTS, "assessment_value", [_agg("AVG")],
                    filters=["assessment.name = 'quality'"]) == [("assessment_value", {}, {"AVG": 0.6})]


BAD_QUERIES = [
    (MetricViewType.TRACES, "nope", [_agg("COUNT")], {}),
    (MetricViewType.TRACES, "trace_count", [_agg("AVG")], {}),
    (MetricViewType.TRACES, "latency", [_agg("AVG")], {"dimensions": ["span_name"]}),
    (MetricViewType.SPANS, "input_cost", [_agg("COUNT")], {}),
    (MetricViewType.SPANS, "total_cost", [_agg("SUM")], {"dimensions": ["span_name"]}),
    (MetricViewType.TRACES, "trace_count", [_agg("COUNT")], {"filters": ["span.name = 'x'"]}),
    (MetricViewType.TRACES, "trace_count", [_agg("COUNT")], {"filters": ["trace.status != 'OK'"]}),
    (MetricViewType.TRACES, "trace_count", [_agg("COUNT")], {"filters": ["trace.tag = 'x'"]}),
    (MetricViewType.TRACES, "trace_count", [_agg("COUNT")], {"time_interval_seconds": 60}),
]


@pytest.mark.parametrize("view,metric,aggs,kw", BAD_QUERIES, ids=[str(i) for i in range(len(BAD_QUERIES))])
def test_bad_metric_queries_fail_as_in_mlflow(seeded, view, metric, aggs, kw):
    errors = {}
    for name, (url, exp) in seeded.items():
        with pytest.raises(MlflowException) as e:
            _metrics(url, exp, view, metric, aggs, **kw)
        errors[name] = (e.value.error_code, e.value.message)
    assert errors["wasmflow"] == errors["mlflow"]


CORRELATIONS = [
    ("span.type = 'LLM'", "trace.status = 'ERROR'", None),
    ("feedback.quality = 'true'", "tag.mlflow.traceName = 'chat'", None),
    ("execution_time_ms > 100", "trace.status = 'OK'", "tag.mlflow.traceName = 'chat'"),
    ("tag.mlflow.traceName = 'rag'", "tag.mlflow.traceName = 'chat'", None),
    ("tag.mlflow.traceName = 'nothing'", "trace.status = 'OK'", None),
]


@pytest.mark.parametrize("f1,f2,base", CORRELATIONS, ids=[str(i) for i in range(len(CORRELATIONS))])
def test_filter_correlation_answers_as_mlflow(seeded, f1, f2, base):
    got = {}
    for name, (url, exp) in seeded.items():
        r = TracingClient(url).calculate_trace_filter_correlation([exp], f1, f2, base_filter=base)
        got[name] = (r.filter1_count, r.filter2_count, r.joint_count, r.total_count,
                     "nan" if math.isnan(r.npmi) else round(r.npmi, 9),
                     None if r.npmi_smoothed is None else round(r.npmi_smoothed, 9))
    assert got["wasmflow"] == got["mlflow"]


def test_filter_correlation_counts(seeded):
    url, exp = seeded["wasmflow"]
    r = TracingClient(url).calculate_trace_filter_correlation(
        [exp], "tag.mlflow.traceName = 'rag'", "trace.status = 'ERROR'")
    assert (r.filter1_count, r.filter2_count, r.joint_count, r.total_count) == (2, 2, 1, 6)
    assert -1 < r.npmi < 1
    # A bad filter is refused in MLflow's shape.
    bad = requests.post(f"{url}/api/3.0/mlflow/traces/calculate-filter-correlation", timeout=30, json={
        "experiment_ids": [exp], "filter_string1": "nope ~ 1", "filter_string2": "status = 'OK'"})
    assert bad.status_code == 400 and bad.json()["error_code"] == "INVALID_PARAMETER_VALUE", bad.text
    missing = requests.post(f"{url}/api/3.0/mlflow/traces/calculate-filter-correlation", timeout=30,
                            json={"experiment_ids": [exp], "filter_string1": "status = 'OK'"})
    assert missing.status_code == 400 and "filter_string2" in missing.json()["message"], missing.text
