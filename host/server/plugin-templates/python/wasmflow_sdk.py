"""Helpers for wasmflow flavor plugins written in Python (the Rust SDK's helpers, in Python).

Everything here takes and returns the bindings' own values (``types.Data``, ``types.Column``,
...), so it works inside the component; the functions that only read values use their
attributes (``.name``, ``.values.value``), so unit tests can pass simple stand-ins.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable, Optional

MODEL_DIR = "/model"  # where the host mounts the model's directory, read-only


class PluginError(Exception):
    """An error for the host: ``kind`` is one of ``invalid-input``, ``invalid-model``,
    ``unsupported``, ``internal`` (which HTTP status the client sees depends on it)."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind
        self.message = message

    def to_err(self):
        """The ``Err`` componentize-py raises to return ``error`` from an export."""
        from componentize_py_types import Err
        from wit_world.imports import types

        kinds = {
            "invalid-input": types.ErrorKind.INVALID_INPUT,
            "invalid-model": types.ErrorKind.INVALID_MODEL,
            "unsupported": types.ErrorKind.UNSUPPORTED,
            "internal": types.ErrorKind.INTERNAL,
        }
        return Err(types.Error(kind=kinds[self.kind], message=self.message))


def invalid_input(message: str) -> PluginError:
    return PluginError("invalid-input", message)


def invalid_model(message: str) -> PluginError:
    return PluginError("invalid-model", message)


@dataclass
class LoadConfig:
    """``load``'s argument: the MLmodel flavor's name and its section (a dict)."""

    flavor: str
    section: dict

    @staticmethod
    def parse(config: str) -> "LoadConfig":
        try:
            doc = json.loads(config)
            return LoadConfig(flavor=doc["flavor"], section=dict(doc.get("section") or {}))
        except (ValueError, KeyError, TypeError) as e:
            raise invalid_model(f"bad load config: {e}")


def read_model_file(relative: str) -> bytes:
    """A file of the model directory; a path outside it is an invalid model."""
    if not isinstance(relative, str) or relative.startswith("/") or ".." in relative.split("/"):
        raise invalid_model(f"bad model file path {relative!r}")
    try:
        with open(f"{MODEL_DIR}/{relative}", "rb") as f:
            return f.read()
    except OSError as e:
        raise invalid_model(f"cannot read '{relative}': {e.strerror or e}")


def parse_params(params: Optional[str], defaults: dict) -> dict:
    """The request's params over ``defaults``; an unknown name or a value of another type than
    its default's is an invalid input."""
    out = dict(defaults)
    if params is None:
        return out
    try:
        given = json.loads(params)
    except ValueError as e:
        raise invalid_input(f"bad params: {e}")
    if not isinstance(given, dict):
        raise invalid_input("bad params: expected a JSON object")
    for key, value in given.items():
        if key not in defaults:
            raise invalid_input(f"unknown param '{key}'; known: {', '.join(sorted(defaults))}")
        want = type(defaults[key])
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, want):
            raise invalid_input(f"param '{key}' must be {want.__name__}, got {value!r}")
        out[key] = value
    return out


def _kind(values) -> str:
    """``float64``, ``text``, ... from a ``types.Values_*`` instance's class name."""
    return type(values).__name__.rsplit("_", 1)[-1].lower()


def match_features(data, features: list[str]) -> list:
    """For each feature, the table column feeding it: by name, or by position when no column
    is named like a feature and there are as many columns as features."""
    columns = getattr(data, "value", None)
    if type(data).__name__ != "Data_Table":
        raise invalid_input("expected a table of columns, got tensors")
    by_name = {c.name: c for c in columns}
    found = [by_name.get(f) for f in features]
    if all(c is not None for c in found):
        return found
    if all(c is None for c in found) and len(columns) == len(features):
        return list(columns)
    missing = [f"'{f}'" for f, c in zip(features, found) if c is None][:10]
    s = "" if len(missing) == 1 else "s"
    known = ", ".join(f"'{f}'" for f in features[:20])
    raise invalid_input(f"missing column{s} {', '.join(missing)}; the model's features are {known}")


def to_matrix(data, features: list[str], encode: Optional[Callable[[int, str], float]] = None) -> list[list[float]]:
    """The data as rows of floats in the order of ``features``: a table's columns matched by
    :func:`match_features`, or one tensor ``[rows, len(features)]`` (``[rows]`` for one feature).
    Missing values arrive as NaN; a text column goes through ``encode(feature_index, value)``
    (an error without one)."""
    width = len(features)
    if type(data).__name__ == "Data_Table":
        cols = []
        for j, column in enumerate(match_features(data, features)):
            kind = _kind(column.values)
            if kind == "text":
                if encode is None:
                    raise invalid_input(f"column '{column.name}' has text values; expected numbers")
                cols.append([encode(j, s) for s in column.values.value])
            elif kind == "binary":
                raise invalid_input(f"column '{column.name}' has binary values; expected numbers")
            else:
                cols.append([float(v) for v in column.values.value])
        rows = len(cols[0]) if cols else 0
        return [[col[r] for col in cols] for r in range(rows)]
    tensors = data.value
    if len(tensors) != 1:
        raise invalid_input(f"expected one tensor, got {len(tensors)}")
    tensor = tensors[0]
    if _kind(tensor.values) in ("text", "binary"):
        raise invalid_input(f"tensor '{tensor.name}' has {_kind(tensor.values)} values; expected numbers")
    flat = [float(v) for v in tensor.values.value]
    shape = list(tensor.shape)
    if len(shape) == 2 and shape[1] == width and shape[0] * width == len(flat):
        return [flat[r * width:(r + 1) * width] for r in range(shape[0])]
    if len(shape) == 1 and width == 1 and shape[0] == len(flat):
        return [[v] for v in flat]
    raise invalid_input(f"tensor shape {shape} does not match [rows, {width}]")


def single_vector(values: list[float]):
    """One value per row, answered as ``{"predictions": [v0, v1, ...]}``."""
    from wit_world.imports import types

    return types.Data_Tensors([types.Tensor(name="", shape=[len(values)], values=types.Values_Float64(values))])


def single_column(name: str, values: list[float]):
    """A one-column table, answered as ``{"predictions": [{name: v0}, ...]}``."""
    from wit_world.imports import types

    return types.Data_Table([types.Column(name=name, values=types.Values_Float64(values))])


def log(message: str) -> None:
    """A line in the server's log, at info level."""
    from wit_world.imports import host

    host.log(host.Level.INFO, message)

