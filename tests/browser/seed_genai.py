"""Seeds what the GenAI checks (genai.mjs) need, with the official mlflow client: traces of
nested spans (`@mlflow.trace` and `mlflow.start_span`), one of them failing, with tags, token
usage and an event; feedback and an expectation on one trace; a prompt registered with
`mlflow.genai.register_prompt` (a text version, a chat version, an alias and tags). Called by
seed.py; returns what the pages must show."""

import time

import mlflow
from mlflow.entities import AssessmentSource, SpanEvent, SpanType

QUESTIONS = ["What is MLflow?", "What is a span?", "Who wrote wasmflow?"]


@mlflow.trace(span_type=SpanType.RETRIEVER)
def retrieve(question: str) -> list:
    return [{"doc": f"notes about {question.split()[-1].strip('?')}", "score": 0.9}]


@mlflow.trace(name="answer", span_type=SpanType.CHAIN)
def answer(question: str) -> str:
    docs = retrieve(question)
    with mlflow.start_span("generate", span_type=SpanType.LLM) as span:
        span.set_inputs({"question": question, "docs": docs})
        span.set_attribute("model", "tiny-llm")
        # The usage MLflow sums into the trace's `mlflow.trace.tokenUsage` metadata.
        span.set_attribute("mlflow.chat.tokenUsage", {"input_tokens": 12, "output_tokens": 8, "total_tokens": 20})
        span.add_event(SpanEvent("first_token", attributes={"delay_ms": 3}))
        reply = f"{question} — an answer from {len(docs)} document(s)."
        span.set_outputs({"reply": reply})
    mlflow.update_current_trace(tags={"topic": "docs" if "MLflow" in question else "misc"})
    return reply


@mlflow.trace(name="failing")
def failing(question: str) -> str:
    raise ValueError(f"no answer for {question!r}")


def seed(uri: str) -> dict:
    out: dict = {}
    exp_id = mlflow.create_experiment("ui-traces")
    mlflow.set_experiment(experiment_id=exp_id)
    out["experiment_id"] = exp_id
    for q in QUESTIONS:
        answer(q)
        # Each trace in a millisecond of its own: the checks read the newest first, and two
        # traces started in the same millisecond are ordered by their (random) ids.
        time.sleep(0.005)
    try:
        failing("Why?")
    except ValueError:
        pass
    mlflow.flush_trace_async_logging()
    traces = mlflow.search_traces(locations=[exp_id], return_type="list", order_by=["timestamp_ms ASC"])
    ok = [t for t in traces if t.info.state.value == "OK"]
    first = ok[0]
    out["traces"] = len(traces)
    out["ok_traces"] = len(ok)
    out["error_traces"] = len(traces) - len(ok)
    out["topic_docs"] = sum(1 for t in traces if t.info.tags.get("topic") == "docs")
    # answer → retrieve, generate: three spans per answered question.
    out["trace"] = {"trace_id": first.info.trace_id, "spans": len(first.data.spans), "question": QUESTIONS[0]}
    mlflow.log_feedback(
        trace_id=first.info.trace_id,
        name="relevance",
        value=0.75,
        rationale="The answer names the tool.",
        source=AssessmentSource(source_type="HUMAN", source_id="ana@example.com"),
    )
    mlflow.log_expectation(
        trace_id=first.info.trace_id,
        name="expected_answer",
        value="An open source MLOps platform.",
        source=AssessmentSource(source_type="HUMAN", source_id="ana@example.com"),
    )
    out["feedback"] = {"name": "relevance", "value": "0.75", "rationale": "The answer names the tool.", "source": "ana@example.com"}

    # A run with a trace of its own (the run page lists it), in an experiment whose traces the
    # editing checks may delete.
    edit_exp = mlflow.create_experiment("ui-traces-editing")
    mlflow.set_experiment(experiment_id=edit_exp)
    with mlflow.start_run(run_name="traced-run") as run:
        answer(QUESTIONS[1])
    for q in QUESTIONS:
        answer(q)
    mlflow.flush_trace_async_logging()
    editing = mlflow.search_traces(locations=[edit_exp], return_type="list", order_by=["timestamp_ms ASC"])
    out["editing"] = {
        "experiment_id": edit_exp,
        "run_id": run.info.run_id,
        "run_trace": editing[0].info.trace_id,
        "traces": len(editing),
    }
    mlflow.set_experiment(experiment_id=exp_id)

    mlflow.genai.register_prompt(
        name="ui-greeting",
        template="Hello {{name}}, welcome to {{place}}!",
        commit_message="First greeting",
        tags={"team": "support"},
    )
    mlflow.genai.register_prompt(
        name="ui-greeting",
        template=[
            {"role": "system", "content": "You greet visitors of {{place}}."},
            {"role": "user", "content": "Greet {{name}}."},
        ],
        commit_message="As chat messages",
    )
    mlflow.genai.set_prompt_alias("ui-greeting", alias="production", version=1)
    out["prompt"] = {
        "name": "ui-greeting",
        "versions": ["1", "2"],
        "alias": "production",
        "alias_version": "1",
        "template": "Hello {{name}}, welcome to {{place}}!",
        "commit_message": "First greeting",
        "chat_user": "Greet {{name}}.",
    }
    return out


if __name__ == "__main__":
    import json
    import sys

    mlflow.set_tracking_uri(sys.argv[1])
    print(json.dumps(seed(sys.argv[1]), indent=2))
