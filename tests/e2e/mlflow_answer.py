"""What MLflow's own scoring server answers, for comparing wasmflow's response bytes with it.

`mlflow_answer` runs `mlflow.pyfunc.scoring_server.invocations` in this process: the server's
request parsing (`_parse_json_data` / `parse_csv_input` with the model's input schema), the
pyfunc's `predict`, and `predictions_to_json` (`json.dump(..., cls=NumpyEncoder)`) — the bytes
`mlflow models serve` sends for the same model and payload, without starting it.

`assert_same_answer` compares wasmflow's body with it: the bytes must be identical where the
values are (labels, integers, the same float computation); otherwise the JSON must have the same
structure (dict keys in the same order, lists of the same lengths, the same types, equal labels
and integers) with floats within the tolerance, and wasmflow's body must be exactly what Python
writes for the values it holds (`json.dumps(json.loads(body))`), so its formatting is proven
identical to MLflow's.
"""

from __future__ import annotations

import json
import math

from mlflow.exceptions import MlflowException
from mlflow.pyfunc import scoring_server


def mlflow_answer(pyfunc_model, body, content_type="application/json"):
    """(status, body text) as MLflow's scoring server answers `body` for this loaded model."""
    data = body if isinstance(body, str) else json.dumps(body)
    try:
        result = scoring_server.invocations(
            data, content_type, pyfunc_model, pyfunc_model.metadata.get_input_schema()
        )
    except MlflowException as e:
        return e.get_http_status_code(), e.serialize_as_json()
    return result.status, result.response


def _walk(ours, theirs, rtol, atol, path, stats):
    where = path or "predictions"
    if isinstance(theirs, bool) or theirs is None or isinstance(theirs, str):
        assert type(ours) is type(theirs) and ours == theirs, f"{where}: {ours!r} != {theirs!r}"
    elif isinstance(theirs, int):
        assert type(ours) is int and ours == theirs, f"{where}: {ours!r} != {theirs!r}"
    elif isinstance(theirs, float):
        assert type(ours) is float, f"{where}: {ours!r} is not a float like {theirs!r}"
        if math.isnan(theirs) or math.isinf(theirs):
            assert repr(ours) == repr(theirs), f"{where}: {ours!r} != {theirs!r}"
        else:
            diff = abs(ours - theirs)
            assert diff <= atol + rtol * abs(theirs), f"{where}: {ours!r} vs {theirs!r}"
            if diff:
                stats["relative"] = max(stats["relative"], diff / max(abs(theirs), 1e-300))
    elif isinstance(theirs, list):
        assert isinstance(ours, list) and len(ours) == len(theirs), (
            f"{where}: a list of {len(theirs)} expected, got "
            f"{type(ours).__name__} {str(ours)[:200]}"
        )
        for i, (a, b) in enumerate(zip(ours, theirs)):
            _walk(a, b, rtol, atol, f"{where}[{i}]", stats)
    elif isinstance(theirs, dict):
        assert isinstance(ours, dict) and list(ours) == list(theirs), (
            f"{where}: keys {list(theirs)} expected, got {str(ours)[:200]}"
        )
        for key in theirs:
            _walk(ours[key], theirs[key], rtol, atol, f"{where}[{key!r}]", stats)
    else:
        raise AssertionError(f"{where}: unexpected {theirs!r}")


def assert_same_answer(ours, theirs, rtol=1e-6, atol=0.0):
    """Asserts wasmflow's body `ours` answers as MLflow's `theirs` does; returns "bytes" when
    they are identical, else the largest relative difference of the floats."""
    if isinstance(ours, bytes):
        ours = ours.decode("utf-8")
    if ours == theirs:
        return "bytes"
    # Python writes exactly these bytes for the values wasmflow sent: the formatting is MLflow's.
    assert json.dumps(json.loads(ours)) == ours, f"not as Python writes it: {ours[:300]}"
    stats = {"relative": 0.0}
    _walk(json.loads(ours), json.loads(theirs), rtol, atol, "", stats)
    return stats["relative"]
