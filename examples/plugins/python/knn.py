"""k-nearest-neighbours regression and classification over a small saved training set.

Plain Python with no WebAssembly bindings, so it runs (and can be tested) anywhere:
`python -c "import knn"`.  `flavor.py` wraps it for wasmflow.

The model file is JSON:

    {"features": ["x1", "x2"], "task": "regression", "k": 3, "weights": "uniform",
     "X": [[0.0, 1.0], [1.0, 0.5], ...], "y": [1.5, 2.0, ...], "output": "prediction"}

- `task`: "regression" (the mean of the neighbours' targets) or "classification" (the class
  with the most votes; on a tie the smallest class, as scikit-learn does).
- `weights`: "uniform", or "distance" (each neighbour counts 1/distance; a training point at
  distance zero takes all the weight, shared with any others at zero).
- Distances are Euclidean; neighbours at equal distance are taken in training-set order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


class ModelError(ValueError):
    """The model file is inconsistent."""


class InputError(ValueError):
    """A request does not fit the model."""


@dataclass
class Knn:
    features: list[str]
    task: str
    k: int
    weights: str
    x: list[list[float]]
    y: list
    output: str
    classes: list  # sorted distinct targets (classification only)

    @staticmethod
    def from_json(doc: dict) -> "Knn":
        if not isinstance(doc, dict):
            raise ModelError("the model file must hold a JSON object")
        features = doc.get("features")
        if not isinstance(features, list) or not all(isinstance(f, str) for f in features) or not features:
            raise ModelError("'features' must be a non-empty list of column names")
        task = doc.get("task", "regression")
        if task not in ("regression", "classification"):
            raise ModelError(f"'task' must be 'regression' or 'classification', not {task!r}")
        weights = doc.get("weights", "uniform")
        if weights not in ("uniform", "distance"):
            raise ModelError(f"'weights' must be 'uniform' or 'distance', not {weights!r}")
        x, y = doc.get("X"), doc.get("y")
        if not isinstance(x, list) or not isinstance(y, list) or not x or len(x) != len(y):
            raise ModelError("'X' and 'y' must be non-empty lists of the same length")
        rows = []
        for i, row in enumerate(x):
            if not isinstance(row, list) or len(row) != len(features):
                raise ModelError(f"row {i} of 'X' must hold {len(features)} numbers")
            try:
                rows.append([float(v) for v in row])
            except (TypeError, ValueError):
                raise ModelError(f"row {i} of 'X' holds a value that is not a number") from None
        if task == "regression":
            try:
                y = [float(v) for v in y]
            except (TypeError, ValueError):
                raise ModelError("a regression model's 'y' must hold numbers") from None
            classes = []
        else:
            kinds = {type(v) for v in y}
            if not (kinds <= {int, float} or kinds == {str}):
                raise ModelError("a classification model's 'y' must hold all numbers or all strings")
            classes = sorted(set(y))
        k = doc.get("k", 5)
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ModelError(f"'k' must be a positive integer, not {k!r}")
        output = doc.get("output", "prediction")
        if not isinstance(output, str):
            raise ModelError("'output' must be a column name")
        return Knn(features, task, k, weights, rows, y, output, classes)

    @property
    def numeric_labels(self) -> bool:
        return self.task == "regression" or all(not isinstance(c, str) for c in self.classes)

    def neighbours(self, query: list[float], k: int) -> list[tuple[float, int]]:
        """The k nearest training rows as (distance, index), nearest first."""
        dists = []
        for i, row in enumerate(self.x):
            s = 0.0
            for a, b in zip(query, row):
                d = a - b
                s += d * d
            dists.append((math.sqrt(s), i))
        dists.sort()
        return dists[: min(k, len(dists))]

    def _weights(self, neigh: list[tuple[float, int]]) -> list[float]:
        if self.weights == "uniform":
            return [1.0] * len(neigh)
        if any(d == 0.0 for d, _ in neigh):
            return [1.0 if d == 0.0 else 0.0 for d, _ in neigh]
        return [1.0 / d for d, _ in neigh]

    def predict_rows(self, rows: list[list[float]], k: int | None = None, proba: bool = False):
        """Predictions for each row: a target or label, or (proba) a list of class probabilities."""
        k = self.k if k is None else k
        if proba and self.task != "classification":
            raise InputError("probabilities need a classification model")
        out = []
        for r, query in enumerate(rows):
            if any(math.isnan(v) for v in query):
                raise InputError(f"row {r} holds NaN")
            neigh = self.neighbours(query, k)
            w = self._weights(neigh)
            if self.task == "regression":
                total = sum(w)
                out.append(sum(wi * self.y[i] for wi, (_, i) in zip(w, neigh)) / total)
                continue
            votes = {c: 0.0 for c in self.classes}
            for wi, (_, i) in zip(w, neigh):
                votes[self.y[i]] += wi
            if proba:
                total = sum(votes.values())
                out.append([votes[c] / total for c in self.classes])
            else:
                # max() keeps the first of equal maxima: the smallest class, as numpy's argmax.
                out.append(max(self.classes, key=lambda c: votes[c]))
        return out
