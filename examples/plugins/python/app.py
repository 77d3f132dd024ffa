"""A wasmflow flavor plugin in Python: k-nearest neighbours (flavor `py_knn`).

componentize-py builds the component from this module (the `flavor` interface's functions, here
`info`) and from `flavor.py` (the interface's `model` resource).  The algorithm is in `knn.py`.
"""

from wit_world import exports
from wit_world.exports.flavor import PluginInfo

PLUGIN_VERSION = "0.1.0"


class Flavor(exports.Flavor):
    def info(self) -> PluginInfo:
        return PluginInfo(
            name="knn-python",
            version=PLUGIN_VERSION,
            loads=["py_knn"],
            description="k-nearest-neighbours regression and classification, written in Python",
        )
