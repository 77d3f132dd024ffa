"""Native unit tests: ``python3 -m unittest`` (no component needed)."""

import math
import unittest
from dataclasses import dataclass

import wasmflow_sdk as sdk
from model import Linear


# Stand-ins with the bindings' class names and attributes.
@dataclass
class Values_Float64:
    value: list


@dataclass
class Values_Text:
    value: list


@dataclass
class Column:
    name: str
    values: object


@dataclass
class Data_Table:
    value: list


class LinearTest(unittest.TestCase):
    def test_scores_columns_by_name_with_nan(self):
        linear = Linear.from_json(b'{"features": ["x1", "x2"], "weights": [0.5, -1.0], "bias": 0.25}')
        data = Data_Table([Column("x2", Values_Float64([1.0, float("nan")])), Column("x1", Values_Float64([2.0, 4.0]))])
        scores = linear.score(sdk.to_matrix(data, linear.features), offset=1.0)
        self.assertEqual(scores[0], 1.25)
        self.assertTrue(math.isnan(scores[1]))

    def test_missing_column_and_text(self):
        data = Data_Table([Column("x1", Values_Float64([1.0])), Column("s", Values_Text(["a"]))])
        with self.assertRaises(sdk.PluginError) as e:
            sdk.to_matrix(data, ["x1", "x2"])
        self.assertEqual(e.exception.message, "missing column 'x2'; the model's features are 'x1', 'x2'")
        self.assertEqual(sdk.to_matrix(data, ["s", "x1"], encode=lambda j, s: 7.0), [[7.0, 1.0]])

    def test_params(self):
        self.assertEqual(sdk.parse_params('{"offset": 2}', {"offset": 0.0}), {"offset": 2.0})
        with self.assertRaises(sdk.PluginError):
            sdk.parse_params('{"offst": 2}', {"offset": 0.0})


if __name__ == "__main__":
    unittest.main()
