"""`mlflow.genai.evaluate` end to end against wasmflow: an evaluation dataset kept on the
server, a local predict function traced by the client, and a Python function scorer (no LLM).

Evaluate writes a run with the scorers' metrics, one trace per record with the scorers'
feedback as assessments, and links the dataset to the run; this needs trace ingestion and
assessments as well as the datasets API.
"""

from __future__ import annotations

import mlflow
from mlflow.genai.datasets import create_dataset
from mlflow.genai.scorers import scorer


@scorer
def exact_match(outputs, expectations) -> bool:
    return outputs == expectations["answer"]


@scorer
def answer_length(outputs) -> int:
    return len(outputs)


ANSWERS = {"What is 2+2?": "4", "Capital of France?": "Lyon", "Color of the sky?": "blue"}


def predict(question: str) -> str:
    return ANSWERS[question]


def test_evaluate_dataset_with_function_scorers(experiment_id, unique_name):
    dataset = create_dataset(name=unique_name("eval"), experiment_id=experiment_id)
    dataset.merge_records([
        {"inputs": {"question": "What is 2+2?"}, "expectations": {"answer": "4"}},
        {"inputs": {"question": "Capital of France?"}, "expectations": {"answer": "Paris"}},
        {"inputs": {"question": "Color of the sky?"}, "expectations": {"answer": "blue"}},
    ])

    result = mlflow.genai.evaluate(
        data=dataset, predict_fn=predict, scorers=[exact_match, answer_length]
    )

    assert result.metrics["exact_match/mean"] == 2 / 3
    assert result.metrics["answer_length/mean"] == (1 + 4 + 4) / 3
    run = mlflow.get_run(result.run_id)
    assert run.info.experiment_id == experiment_id
    assert run.data.metrics["exact_match/mean"] == 2 / 3

    traces = mlflow.search_traces(run_id=result.run_id, return_type="list")
    assert len(traces) == 3
    by_question = {t.data.spans[0].inputs["question"]: t for t in traces}
    assert set(by_question) == set(ANSWERS)
    wrong = by_question["Capital of France?"]
    assert wrong.data.spans[0].outputs == "Lyon"
    feedback = {a.name: a.value for a in wrong.info.assessments if a.name in ("exact_match", "answer_length")}
    assert feedback == {"exact_match": False, "answer_length": 4}

    table = result.result_df
    assert len(table) == 3


def test_evaluate_plain_records(experiment_id):
    data = [
        {"inputs": {"question": q}, "outputs": a, "expectations": {"answer": a}}
        for q, a in ANSWERS.items()
    ]
    result = mlflow.genai.evaluate(data=data, scorers=[exact_match])
    assert result.metrics["exact_match/mean"] == 1.0
    assert len(mlflow.search_traces(run_id=result.run_id, return_type="list")) == 3
