"""The model: a linear score over named features, read from a JSON file.

``{"features": ["x1", "x2"], "weights": [0.5, -1.0], "bias": 0.25}``: each row's prediction is
``bias + sum_i weights[i] * x_i``. Plain Python, so ``python3 -m unittest`` tests it natively.
"""

from __future__ import annotations

import json


class Linear:
    def __init__(self, features: list[str], weights: list[float], bias: float):
        if len(weights) != len(features):
            raise ValueError(f"{len(weights)} weights for {len(features)} features")
        self.features = features
        self.weights = weights
        self.bias = bias

    @staticmethod
    def from_json(data: bytes) -> "Linear":
        doc = json.loads(data)
        try:
            return Linear(list(doc["features"]), [float(w) for w in doc["weights"]], float(doc["bias"]))
        except (KeyError, TypeError) as e:
            raise ValueError(f"expected features, weights and bias: {e}")

    def score(self, rows: list[list[float]], offset: float = 0.0) -> list[float]:
        return [self.bias + offset + sum(w * x for w, x in zip(self.weights, row)) for row in rows]
