"""The ``model`` resource of wasmflow's ``flavor`` interface: load a linear model and predict."""

from __future__ import annotations

from typing import Optional

from wit_world.exports import flavor
from wit_world.imports import types

import wasmflow_sdk as sdk
from model import Linear


class Model(flavor.Model):
    def __init__(self, linear: Linear):
        self.linear = linear

    @classmethod
    def load(cls, config: str) -> "Model":
        try:
            section = sdk.LoadConfig.parse(config).section
            name = section.get("data", "coefficients.json")
            try:
                linear = Linear.from_json(sdk.read_model_file(name))
            except ValueError as e:
                raise sdk.invalid_model(f"bad '{name}': {e}")
            sdk.log(f"loaded a linear model over {len(linear.features)} features")
            return cls(linear)
        except sdk.PluginError as e:
            raise e.to_err()
        except Exception as e:  # a bug: report it instead of trapping
            raise sdk.PluginError("internal", f"{type(e).__name__}: {e}").to_err()

    def signature(self) -> Optional[str]:
        return None  # the host uses the MLmodel's own signature, when it has one

    def predict(self, input: types.Data, params: Optional[str]) -> types.Data:
        try:
            offset = sdk.parse_params(params, {"offset": 0.0})["offset"]
            rows = sdk.to_matrix(input, self.linear.features)
            return sdk.single_vector(self.linear.score(rows, offset))
        except sdk.PluginError as e:
            raise e.to_err()
        except Exception as e:
            raise sdk.PluginError("internal", f"{type(e).__name__}: {e}").to_err()
