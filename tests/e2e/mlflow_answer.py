"""What MLflow's own scoring server answers, for comparing wasmflow's response bytes with it.

`mlflow_answer` runs `mlflow.pyfunc.scoring_server.invocations` in this process: the function
behind `mlflow models serve`'s `/invocations`, given the request body as bytes as the server is.
It does the server's request parsing (`_parse_json_data` / `parse_csv_input` with the model's
input schema), the pyfunc's `predict`, and `predictions_to_json` (`json.dump(...,
cls=NumpyEncoder)`): the status and body `mlflow models serve` sends for the same model and
payload, without starting it. A refusal is answered as the server answers it: the exception's
HTTP status and `serialize_as_json()` body.

`assert_same_answer` compares wasmflow's body with it. With `exact=True` (labels, integers, the
same float computation) the bytes must be identical. Otherwise wasmflow's body must be exactly
what Python writes for the values it holds (`json.dumps(json.loads(body))`), so its formatting is
proven identical to MLflow's, and the JSON must have the same structure as MLflow's (dict keys in
the same order, lists of the same lengths, the same types, equal labels, integers, NaN and
infinities) with every finite float within `max(atol, rtol * |MLflow's value|)` of MLflow's.
"""

from __future__ import annotations

import json
import math
import warnings

from mlflow.exceptions import MlflowException
from mlflow.pyfunc import scoring_server


def mlflow_answer(pyfunc_model, body, content_type="application/json"):
    """(status, body text) as MLflow's scoring server answers `body` (bytes, text, or a value
    to send as JSON) for this loaded model."""
    if isinstance(body, str):
        data = body.encode("utf-8")
    elif isinstance(body, (bytes, bytearray)):
        data = bytes(body)
    else:
        data = json.dumps(body).encode("utf-8")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = scoring_server.invocations(
                data, content_type, pyfunc_model, pyfunc_model.metadata.get_input_schema()
            )
    except MlflowException as e:
        return e.get_http_status_code(), e.serialize_as_json()
    response = result.response
    return result.status, response.decode("utf-8") if isinstance(response, bytes) else response


def _walk(ours, theirs, rtol, atol, where, stats):
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
            assert diff <= max(atol, rtol * abs(theirs)), f"{where}: {ours!r} where MLflow has {theirs!r}"
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


def assert_same_answer(ours, theirs, rtol=1e-6, atol=0.0, exact=False, what="answer"):
    """Asserts wasmflow's body `ours` (bytes or text) answers as MLflow's `theirs` does: the same
    bytes when `exact`, else as the module says. Returns "bytes" when they are identical, else
    the largest relative difference of the floats."""
    if isinstance(ours, (bytes, bytearray)):
        ours = bytes(ours).decode("utf-8")
    if isinstance(theirs, (bytes, bytearray)):
        theirs = bytes(theirs).decode("utf-8")
    if exact:
        assert ours == theirs, (
            f"{what}: bytes differ from MLflow's:\n ours   {ours[:200]!r}\n mlflow {theirs[:200]!r}"
        )
        return "bytes"
    # Python writes exactly these bytes for the values wasmflow sent: the formatting is MLflow's.
    assert json.dumps(json.loads(ours)) == ours, f"{what}: not written as Python writes it: {ours[:300]!r}"
    if ours == theirs:
        return "bytes"
    stats = {"relative": 0.0}
    _walk(json.loads(ours), json.loads(theirs), rtol, atol, what, stats)
    return stats["relative"]
