"""The `model` resource of wasmflow's `flavor` interface: load a k-NN model and predict with it."""

from __future__ import annotations

import json
from typing import Optional

from componentize_py_types import Err
from wit_world.exports import flavor
from wit_world.imports import host, types

from knn import InputError, Knn, ModelError

MODEL_DIR = "/model"  # where the host mounts the model's directory, read-only


def _error(kind: types.ErrorKind, message: str) -> Err:
    return Err(types.Error(kind=kind, message=message))


def _numbers(values: types.Values) -> Optional[list]:
    """The values of a column or tensor as numbers, or None when they are not numbers."""
    if isinstance(values, (types.Values_Float64, types.Values_Float32, types.Values_Int64, types.Values_Int32)):
        return values.value
    return None


class Model(flavor.Model):
    def __init__(self, knn: Knn):
        self.knn = knn

    @classmethod
    def load(cls, config: str) -> "Model":
        try:
            return cls._load(config)
        except Err:
            raise
        except Exception as e:  # a bug: report it instead of trapping
            raise _error(types.ErrorKind.INTERNAL, f"{type(e).__name__}: {e}")

    @classmethod
    def _load(cls, config: str) -> "Model":
        try:
            section = json.loads(config).get("section") or {}
            file_name = section.get("data", "knn.json")
        except (ValueError, AttributeError) as e:
            raise _error(types.ErrorKind.INVALID_MODEL, f"bad load config: {e}")
        if not isinstance(file_name, str) or file_name.startswith("/") or ".." in file_name.split("/"):
            raise _error(types.ErrorKind.INVALID_MODEL, f"bad model file path {file_name!r}")
        try:
            with open(f"{MODEL_DIR}/{file_name}", "rb") as f:
                doc = json.loads(f.read())
        except OSError as e:
            raise _error(types.ErrorKind.INVALID_MODEL, f"cannot read '{file_name}': {e.strerror or e}")
        except ValueError as e:
            raise _error(types.ErrorKind.INVALID_MODEL, f"bad '{file_name}': {e}")
        try:
            knn = Knn.from_json(doc)
        except ModelError as e:
            raise _error(types.ErrorKind.INVALID_MODEL, f"bad '{file_name}': {e}")
        host.log(
            host.Level.INFO,
            f"loaded a k-NN {knn.task} model: {len(knn.x)} training rows, {len(knn.features)} features, k={knn.k}",
        )
        return cls(knn)

    def signature(self) -> Optional[str]:
        knn = self.knn
        out_type = "double" if knn.numeric_labels else "string"
        return json.dumps(
            {
                "inputs": [{"name": f, "type": "double", "required": True} for f in knn.features],
                "outputs": [{"name": knn.output, "type": out_type, "required": True}],
            }
        )

    def predict(self, input: types.Data, params: Optional[str]) -> types.Data:
        try:
            k, proba = self._params(params)
            rows = self._rows(input)
            result = self.knn.predict_rows(rows, k=k, proba=proba)
        except InputError as e:
            raise _error(types.ErrorKind.INVALID_INPUT, str(e))
        except Err:
            raise
        except Exception as e:  # a bug: report it instead of trapping
            raise _error(types.ErrorKind.INTERNAL, f"{type(e).__name__}: {e}")
        knn = self.knn
        if proba:
            columns = [
                types.Column(name=str(c), values=types.Values_Float64([p[j] for p in result]))
                for j, c in enumerate(knn.classes)
            ]
        elif knn.numeric_labels:
            columns = [types.Column(name=knn.output, values=types.Values_Float64([float(v) for v in result]))]
        else:
            columns = [types.Column(name=knn.output, values=types.Values_Text([str(v) for v in result]))]
        return types.Data_Table(columns)

    def _params(self, params: Optional[str]) -> tuple[Optional[int], bool]:
        """The request's `k` (overriding the model's) and whether it asks for probabilities."""
        if params is None:
            return None, False
        try:
            p = json.loads(params)
        except ValueError as e:
            raise InputError(f"bad params: {e}") from None
        k = p.get("k")
        if k is not None and (not isinstance(k, int) or isinstance(k, bool) or k < 1):
            raise InputError(f"params.k must be a positive integer, not {k!r}")
        output = p.get("output", "label")
        if output not in ("label", "proba"):
            raise InputError(f"params.output must be 'label' or 'proba', not {output!r}")
        return k, output == "proba"

    def _rows(self, data: types.Data) -> list[list[float]]:
        """The input as rows of floats in the model's feature order."""
        features = self.knn.features
        if isinstance(data, types.Data_Table):
            by_name = {c.name: c for c in data.value}
            columns = []
            for name in features:
                column = by_name.get(name)
                if column is None:
                    raise InputError(f"missing column '{name}'")
                nums = _numbers(column.values)
                if nums is None:
                    kind = type(column.values).__name__.removeprefix("Values_").lower()
                    raise InputError(f"column '{name}' has {kind} values; expected numbers")
                columns.append(nums)
            return [[float(v) for v in row] for row in zip(*columns)]
        # A single 2-D tensor [rows, features], as `instances` and `inputs` payloads give.
        if len(data.value) != 1:
            raise InputError(f"expected one tensor, got {len(data.value)}")
        tensor = data.value[0]
        nums = _numbers(tensor.values)
        if nums is None:
            raise InputError("tensor values must be numbers")
        width = len(features)
        shape = list(tensor.shape)
        if len(shape) != 2 or shape[1] != width or len(nums) != shape[0] * width:
            raise InputError(f"tensor shape {shape} does not match [rows, {width}]")
        return [[float(v) for v in nums[r * width : (r + 1) * width]] for r in range(shape[0])]
