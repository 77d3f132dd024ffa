"""A tiny stand-in host for trying a flavor plugin component without the wasmflow server.

Uses the `wasmtime` Python package (build.sh installs it into its venv) to do what the server
does: link `wasmflow:plugin/host` and WASI, mount a model directory read-only at /model, call
`info`, `model.load` and `model.predict`.

    python smoke.py COMPONENT.wasm --imports
    python smoke.py COMPONENT.wasm --model-dir DIR --flavor NAME [--section JSON] \
        --columns '{"x1": [1.0, 2.0], "x2": [0.5, 0.25]}' [--params JSON]

Prints JSON lines: the plugin's info, its imports, its signature, and the predicted columns
(or the error the plugin returned).
"""

from __future__ import annotations

import argparse
import json
import sys

import wasmtime
from wasmtime import component as wc

FLAVOR_INTERFACE = "wasmflow:plugin/flavor@0.1.0"
HOST_INTERFACE = "wasmflow:plugin/host@0.1.0"


class Plugin:
    def __init__(self, path: str, model_dir: str | None = None):
        self.engine = wasmtime.Engine()
        self.component = wc.Component.from_file(self.engine, path)
        self.logs: list[tuple[str, str]] = []
        linker = wc.Linker(self.engine)
        linker.add_wasip2()
        with linker.root() as root:
            with root.add_instance(HOST_INTERFACE) as host:
                host.add_func("log", lambda _store, level, message: self.logs.append((level, message)))
        self.store = wasmtime.Store(self.engine)
        wasi = wasmtime.WasiConfig()
        wasi.inherit_stderr()
        wasi.inherit_stdout()
        if model_dir is not None:
            # Read-only, as the server mounts it.
            wasi.preopen_dir(model_dir, "/model", fs_mutable=False)
        self.store.set_wasi(wasi)
        self.instance = linker.instantiate(self.store, self.component)
        self.iface = self.instance.get_export_index(self.store, FLAVOR_INTERFACE)

    def imports(self) -> list[str]:
        return sorted(self.component.type.imports(self.engine))

    def _call(self, name: str, *args):
        idx = self.instance.get_export_index(self.store, name, self.iface)
        func = self.instance.get_func(self.store, idx)
        result = func(self.store, *args)
        func.post_return(self.store)
        return result

    def info(self) -> dict:
        return dict(vars(self._call("info")))

    def load(self, flavor: str, section: dict):
        """The model resource, or raises PluginError."""
        result = self._call("[static]model.load", json.dumps({"flavor": flavor, "section": section}))
        _raise_if_error(result)
        return result

    def signature(self, model) -> str | None:
        return self._call("[method]model.signature", model)

    def predict(self, model, columns: dict[str, list], params: dict | None = None) -> dict:
        table = []
        for name, values in columns.items():
            column = wc.Record()
            column.name = name
            column.values = _values(values)
            table.append(column)
        result = self._call(
            "[method]model.predict",
            model,
            wc.Variant("table", table),
            None if params is None else json.dumps(params),
        )
        _raise_if_error(result)
        if result.tag == "table":
            return {c.name: c.values.payload for c in result.payload}
        return {t.name: {"shape": t.shape, "values": t.values.payload} for t in result.payload}


class PluginError(Exception):
    def __init__(self, kind: str, message: str):
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message


def _raise_if_error(result) -> None:
    # wasmtime-py returns a result's payload untagged when ok and err types differ; the WIT
    # `error` record is the one with `kind` and `message`.
    if isinstance(result, wc.Record) and hasattr(result, "kind") and hasattr(result, "message"):
        raise PluginError(result.kind, result.message)


def _values(values: list) -> wc.Variant:
    if all(isinstance(v, bool) for v in values):
        return wc.Variant("boolean", values)
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return wc.Variant("int64", values)
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return wc.Variant("float64", [float(v) for v in values])
    return wc.Variant("text", [str(v) for v in values])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("component")
    ap.add_argument("--imports", action="store_true", help="print the component's imports")
    ap.add_argument("--model-dir")
    ap.add_argument("--flavor")
    ap.add_argument("--section", default="{}")
    ap.add_argument("--columns")
    ap.add_argument("--params")
    args = ap.parse_args()
    plugin = Plugin(args.component, args.model_dir)
    print(json.dumps({"info": plugin.info()}))
    if args.imports:
        print(json.dumps({"imports": plugin.imports()}))
    if args.flavor is None:
        return 0
    try:
        model = plugin.load(args.flavor, json.loads(args.section))
        print(json.dumps({"signature": json.loads(plugin.signature(model) or "null")}))
        if args.columns:
            params = json.loads(args.params) if args.params else None
            print(json.dumps({"predictions": plugin.predict(model, json.loads(args.columns), params)}))
    except PluginError as e:
        print(json.dumps({"error": {"kind": e.kind, "message": e.message}}))
        return 1
    finally:
        for level, message in plugin.logs:
            print(json.dumps({"log": level, "message": message}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
