"""`{{name}}`: a wasmflow flavor plugin in Python for models with a `{{flavor}}` MLmodel section.

componentize-py builds the component from this module, whose ``Flavor`` is the ``flavor``
interface (``info``), and from ``flavor.py``, whose ``Model`` is the interface's ``model``
resource (componentize-py looks for it in a module named after the interface). The model itself
is in ``model.py``.
"""

from __future__ import annotations

from wit_world import exports
from wit_world.exports.flavor import PluginInfo


class Flavor(exports.Flavor):
    def info(self) -> PluginInfo:
        return PluginInfo(
            name="{{name}}",
            version="0.1.0",
            loads=["{{flavor}}"],
            description="linear scores from a JSON file of coefficients, written in Python",
        )
