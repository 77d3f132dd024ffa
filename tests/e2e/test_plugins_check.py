"""`wasmflow plugins check FILE.wasm [--model DIR] [--input REQ.json] [--expect OUT.json]`: a good
plugin passes every check (each payload form, zero rows, nulls/NaN, a missing column, a wrong
type, the expected answer, latency and peak memory), each hostile behaviour is reported as its
own failure class with a non-zero exit, and a core module gets the hint to build a component for
wasm32-wasip2. No server is involved: the command runs the serving crate in-process."""

from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path

import pytest

from conftest import PLUGIN_CACHE
from test_plugins import COEFS, INTERCEPT, X, expected, plugin_file, write_linear_model

EXAMPLE_PLUGINS = os.environ.get("WASMFLOW_EXAMPLE_PLUGINS")
FORMS = ["dataframe_split", "dataframe_records", "instances", "inputs", "csv"]
EDGES = ["zero rows", "nulls", "nan", "missing column", "wrong type"]


def check(wasmflow_bin, tmp_path, *args, timeout_s: float = 30, memory_mib: int = 1024):
    env = {
        **os.environ,
        # A plugin directory of its own: `check` needs no installed plugin.
        "WASMFLOW_PLUGINS_DIR": str(tmp_path / "plugins"),
        "WASMFLOW_PLUGIN_CACHE_DIR": str(PLUGIN_CACHE),
        "WASMFLOW_PLUGIN_TIMEOUT": str(timeout_s),
        "WASMFLOW_PLUGIN_MEMORY_MIB": str(memory_mib),
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run(
        [wasmflow_bin, "plugins", "check", *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def lines(text: str, prefix: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(prefix)]


def assert_all_ok(proc, checks):
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert not lines(proc.stderr, "FAIL"), proc.stderr
    ok = lines(proc.stdout, "ok   ")
    for name in checks:
        assert any(line.startswith((f"ok   {name}:", f"ok   {name} ")) for line in ok), (name, proc.stdout)
    assert "checks passed" in proc.stdout.splitlines()[-1], proc.stdout


def write_json(path: Path, value) -> Path:
    path.write_text(json.dumps(value))
    return path


# ---- a good plugin -------------------------------------------------------------------------------


def test_linear_plugin_passes_every_check(wasmflow_bin, tmp_path):
    model = write_linear_model(tmp_path / "model")
    request = write_json(tmp_path / "req.json", {"dataframe_split": {"columns": ["x1", "x2"], "data": X}})
    want = write_json(
        tmp_path / "out.json", {"predictions": [{"y": y, "z": z} for y, z in expected()]}
    )
    wasm = plugin_file("wasmflow_flavor_linear.wasm")
    proc = check(wasmflow_bin, tmp_path, wasm, "--model", model, "--input", request, "--expect", want)
    assert_all_ok(proc, ["component", "info", "load", "input", *FORMS, *EDGES, "expect", "memory"])
    assert "linear@" in next(line for line in proc.stdout.splitlines() if line.startswith("ok   info"))
    # Each call's latency and the instance's peak memory.
    assert all(" ms" in line or " µs" in line for line in lines(proc.stdout, "ok   dataframe"))
    memory = next(line for line in proc.stdout.splitlines() if line.startswith("ok   memory"))
    peak = float(memory.split("peak ")[1].split(" MiB")[0])
    assert 0 < peak < 1024, memory
    # The linear model's signature makes the host refuse the missing column and the wrong type.
    assert "refused by the host" in next(l for l in proc.stdout.splitlines() if "missing column 'x2'" in l)


def test_rows_are_made_up_from_the_signature_without_input(wasmflow_bin, tmp_path):
    model = write_linear_model(tmp_path / "model")
    proc = check(wasmflow_bin, tmp_path, plugin_file("wasmflow_flavor_linear.wasm"), "--model", model)
    assert_all_ok(proc, ["load", *FORMS, *EDGES, "memory"])
    assert "ok   input:" not in proc.stdout


def test_component_alone_is_checked_without_a_model(wasmflow_bin, tmp_path):
    proc = check(wasmflow_bin, tmp_path, plugin_file("wasmflow_flavor_linear.wasm"))
    assert_all_ok(proc, ["component", "info"])
    assert "ok   load" not in proc.stdout


def test_the_checked_component_replaces_the_one_the_model_carries(wasmflow_bin, tmp_path):
    # The carried component need not even exist: `check` loads the model with FILE.wasm.
    carried = {"wasmflow": {"component": "plugin/old.wasm", "sha256": "ab" * 32, "flavor": "linear"}}
    model = write_linear_model(tmp_path / "model", extra_flavors=carried)
    proc = check(wasmflow_bin, tmp_path, plugin_file("wasmflow_flavor_linear.wasm"), "--model", model)
    assert_all_ok(proc, ["load", *FORMS, "memory"])
    load = next(line for line in proc.stdout.splitlines() if line.startswith("ok   load:"))
    assert "flavor 'linear'" in load and "the model carries 'plugin/old.wasm'" in load, load


def test_a_wrong_expected_answer_fails_with_the_differing_value(wasmflow_bin, tmp_path):
    model = write_linear_model(tmp_path / "model")
    request = write_json(tmp_path / "req.json", {"dataframe_split": {"columns": ["x1", "x2"], "data": X}})
    rows = expected()
    rows[1][0] += 1e-3
    want = write_json(tmp_path / "out.json", [{"y": y, "z": z} for y, z in rows])
    wasm = plugin_file("wasmflow_flavor_linear.wasm")
    proc = check(wasmflow_bin, tmp_path, wasm, "--model", model, "--input", request, "--expect", want)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    failures = lines(proc.stderr, "FAIL")
    assert len(failures) == 1, proc.stderr
    assert failures[0].startswith("FAIL expect: predictions[1].y is "), failures
    # Within a looser tolerance it passes.
    proc = check(wasmflow_bin, tmp_path, wasm, "--model", model, "--input", request, "--expect", want,
                 "--tolerance", "1e-2")
    assert_all_ok(proc, ["expect"])


def test_a_model_of_another_flavor_fails_to_load(wasmflow_bin, tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "MLmodel").write_text("flavors:\n  sklearn: {pickled_model: model.pkl}\n")
    proc = check(wasmflow_bin, tmp_path, plugin_file("wasmflow_flavor_linear.wasm"), "--model", model)
    assert proc.returncode == 1
    assert lines(proc.stderr, "FAIL load:"), proc.stderr
    assert "none of this model's flavors" in proc.stderr


@pytest.mark.skipif(not EXAMPLE_PLUGINS, reason="WASMFLOW_EXAMPLE_PLUGINS is not set")
def test_c_example_plugin_passes_with_its_expected_answer(wasmflow_bin, tmp_path):
    features = ["age", "income", "score"]
    intercept, coefs = -0.5, [0.08, -0.9, 1.3]
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.txt").write_text(
        f"features {' '.join(features)}\nintercept {intercept!r}\ncoefficients {' '.join(map(repr, coefs))}\n"
    )
    inputs = json.dumps([{"type": "double", "name": n} for n in features])
    (model / "MLmodel").write_text(
        "flavors:\n  c_logistic: {data: model.txt}\n"
        f"signature:\n  inputs: '{inputs}'\n  outputs: null\n"
    )
    rows = [[40.0, 5.0, 0.0], [52.5, 3.0, 1.5], [31.0, 7.5, -2.0]]
    request = write_json(tmp_path / "req.json", {"dataframe_records": [dict(zip(features, r)) for r in rows]})
    probabilities = [1 / (1 + math.exp(-(intercept + sum(c * x for c, x in zip(coefs, r))))) for r in rows]
    want = write_json(tmp_path / "out.json", {"predictions": [{"probability": p} for p in probabilities]})
    wasm = Path(EXAMPLE_PLUGINS) / "c_logistic.wasm"
    proc = check(wasmflow_bin, tmp_path, wasm, "--model", model, "--input", request, "--expect", want,
                 "--tolerance", "1e-9")
    assert_all_ok(proc, ["component", "load", "input", *FORMS, *EDGES, "expect", "memory"])


EXAMPLE_MODELS = {
    # component: (flavor, model file, its text, features)
    "py_knn.wasm": ("py_knn", "knn.json", json.dumps({
        "features": ["x1", "x2"], "task": "regression", "k": 2, "weights": "uniform",
        "X": [[0.0, 0.0], [1.0, 1.0], [2.0, 0.5]], "y": [1.0, 2.0, 3.0], "output": "prediction",
    }), ["x1", "x2"]),
    "js_tree.wasm": ("js_tree", "tree.json", json.dumps({
        "features": ["f0", "f1"], "task": "regression", "children_left": [1, -1, -1],
        "children_right": [2, -1, -1], "feature": [0, -2, -2], "threshold": [0.75, -2.0, -2.0],
        "value": [[1.5], [1.0], [2.0]], "float32_inputs": True,
    }), ["f0", "f1"]),
}


@pytest.mark.skipif(not EXAMPLE_PLUGINS, reason="WASMFLOW_EXAMPLE_PLUGINS is not set")
@pytest.mark.parametrize("component", sorted(EXAMPLE_MODELS))
def test_example_plugins_pass_on_rows_made_from_the_signature(wasmflow_bin, tmp_path, component):
    flavor, file_name, text, features = EXAMPLE_MODELS[component]
    model = tmp_path / "model"
    model.mkdir()
    (model / file_name).write_text(text)
    inputs = json.dumps([{"type": "double", "name": n} for n in features])
    (model / "MLmodel").write_text(
        f"flavors:\n  {flavor}: {{data: {file_name}}}\nsignature:\n  inputs: '{inputs}'\n  outputs: null\n"
    )
    proc = check(wasmflow_bin, tmp_path, Path(EXAMPLE_PLUGINS) / component, "--model", model)
    assert_all_ok(proc, ["component", "load", *FORMS, *EDGES, "memory"])


# ---- hostile plugins ------------------------------------------------------------------------------


def hostile_model(path: Path, behavior: str, on_load: bool = False) -> Path:
    path.mkdir(parents=True)
    section = f"{{behavior: {behavior}, on_load: {'true' if on_load else 'false'}}}"
    (path / "MLmodel").write_text(f"flavors:\n  hostile: {section}\n")
    return path


def run_hostile(wasmflow_bin, tmp_path, behavior, **limits):
    request = write_json(tmp_path / "req.json", {"dataframe_split": {"columns": ["a", "b"], "data": [[1.5, 2.5]]}})
    model = hostile_model(tmp_path / behavior, behavior, limits.pop("on_load", False))
    proc = check(wasmflow_bin, tmp_path, plugin_file("wasmflow_testing_hostile.wasm"), "--model", model,
                 "--input", request, **limits)
    assert proc.returncode == 1, f"{behavior}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    failures = lines(proc.stderr, "FAIL")
    assert failures, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].endswith("checks failed"), proc.stderr
    # One line each, no backtrace.
    assert "Caused by" not in proc.stderr and "stack backtrace" not in proc.stderr
    return proc, failures


def test_hostile_echo_passes(wasmflow_bin, tmp_path):
    # The control: the hostile plugin behaving.
    request = write_json(tmp_path / "req.json", {"dataframe_split": {"columns": ["a", "b"], "data": [[1.5, 2.5]]}})
    model = hostile_model(tmp_path / "echo", "echo")
    proc = check(wasmflow_bin, tmp_path, plugin_file("wasmflow_testing_hostile.wasm"), "--model", model,
                 "--input", request)
    assert_all_ok(proc, ["load", "input", *FORMS, *EDGES, "memory"])


def test_hostile_trap_is_reported_and_breaks_the_error_kinds(wasmflow_bin, tmp_path):
    proc, failures = run_hostile(wasmflow_bin, tmp_path, "panic")
    assert any(f.startswith("FAIL dataframe_split: the plugin trapped on a valid request") for f in failures), failures
    edge = [f for f in failures if f.startswith("FAIL missing column")]
    assert edge and "did not respect the error kinds: it trapped" in edge[0], failures
    # Every call trapped, and each got a fresh instance.
    assert len(failures) == len(["input", *FORMS, *EDGES]), failures


def test_hostile_loop_times_out_and_the_rest_is_skipped(wasmflow_bin, tmp_path):
    proc, failures = run_hostile(wasmflow_bin, tmp_path, "loop", timeout_s=1)
    assert len(failures) == 1 and "ran past its deadline on a valid request" in failures[0], failures
    skipped = lines(proc.stdout, "skip ")
    assert len(skipped) == len([*FORMS, *EDGES]), proc.stdout


def test_hostile_memory_bomb_is_reported(wasmflow_bin, tmp_path):
    proc, failures = run_hostile(wasmflow_bin, tmp_path, "alloc", memory_mib=64)
    assert all("ran out of memory" in f or "out of memory" in f for f in failures[:2]), failures
    assert "beyond the limit of 64 MiB" in failures[0], failures


@pytest.mark.parametrize("behavior", ["read-passwd", "escape-model-dir", "socket"])
def test_hostile_reads_outside_the_sandbox_are_refused(wasmflow_bin, tmp_path, behavior):
    # The sandbox has no /etc, nothing above /model and no network: the plugin's own error
    # answers even valid requests, which `check` reports.
    proc, failures = run_hostile(wasmflow_bin, tmp_path, behavior)
    assert failures[0].startswith("FAIL input: the plugin refused a valid request (invalid-input)"), failures
    assert "root:" not in proc.stdout + proc.stderr


@pytest.mark.parametrize("behavior", ["mismatched-columns", "bad-tensor-shape"])
def test_hostile_malformed_output_is_reported(wasmflow_bin, tmp_path, behavior):
    proc, failures = run_hostile(wasmflow_bin, tmp_path, behavior)
    assert "returned malformed output on a valid request" in failures[0], failures


def test_hostile_failing_load_is_reported(wasmflow_bin, tmp_path):
    proc, failures = run_hostile(wasmflow_bin, tmp_path, "panic", on_load=True)
    assert len(failures) == 1 and failures[0].startswith("FAIL load: "), failures
    assert "trapped" in failures[0], failures


# ---- not a flavor plugin --------------------------------------------------------------------------


def test_a_core_module_gets_the_wasip2_hint(wasmflow_bin, tmp_path):
    core = tmp_path / "core.wasm"
    core.write_bytes(b"\0asm\x01\0\0\0")
    proc = check(wasmflow_bin, tmp_path, core)
    assert proc.returncode == 1
    failures = lines(proc.stderr, "FAIL")
    assert len(failures) == 1, proc.stderr
    assert "this is a core wasm module; build a component for wasm32-wasip2" in failures[0], failures
    assert "Caused by" not in proc.stderr


def test_a_component_of_another_world_is_refused(wasmflow_bin, tmp_path):
    proc = check(wasmflow_bin, tmp_path, plugin_file("wasmflow_testing_not_a_flavor.wasm"))
    assert proc.returncode == 1
    assert "does not export 'wasmflow:plugin/flavor@0.1.0'" in proc.stderr, proc.stderr


def test_a_missing_file_is_one_failure_line(wasmflow_bin, tmp_path):
    proc = check(wasmflow_bin, tmp_path, tmp_path / "nope.wasm")
    assert proc.returncode == 1
    assert lines(proc.stderr, "FAIL component: cannot read '"), proc.stderr
