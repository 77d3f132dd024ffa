"""The compile cache is the user's, not the working directory's: with no --plugin-cache-dir,
compiled plugins go to `$XDG_CACHE_HOME/wasmflow/compiled` (else `~/.cache/wasmflow/compiled`),
two processes starting at once on an empty cache each compile a plugin at most once between
them, and a later start from another directory compiles nothing (read from `/metrics`)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests

from conftest import STARTUP_TIMEOUT, ModelServer, free_port
from test_plugins import X, write_linear_model


# Starts on an empty cache compile the built-in plugins: over a minute on a busy 2-core machine.
COMPILE_TIMEOUT = max(STARTUP_TIMEOUT, 600.0)


class Serve(ModelServer):
    """`wasmflow models serve` of a local model directory, started in `cwd` with `env`."""

    def __init__(self, binary: str, model: Path, cwd: Path, env: dict):
        cwd.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = cwd / "serve.log"
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [binary, "models", "serve", "-m", str(model), "-p", str(self.port)],
            cwd=cwd,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def predict(self) -> list:
        body = {"dataframe_split": {"columns": ["x1", "x2"], "data": X}}
        r = self.invoke(body)
        assert r.status_code == 200, r.text
        return r.json()["predictions"]

    def cache_counts(self) -> tuple[int, int]:
        """(hits, misses) of the compile cache, from /metrics."""
        text = requests.get(self.url + "/metrics", timeout=5).text

        def counter(name: str) -> int:
            found = re.search(rf"^wasmflow_plugin_cache_{name}_total (\d+)$", text, re.MULTILINE)
            assert found, text
            return int(found.group(1))

        return counter("hits"), counter("misses")


def test_one_compile_cache_per_user_shared_across_directories(wasmflow_bin, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    model = write_linear_model(tmp_path / "model")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("XDG_CACHE_HOME", "WASMFLOW_PLUGIN_CACHE_DIR", "WASMFLOW_PLUGINS_DIR")
    }
    env["HOME"] = str(home)
    cache = home / ".cache" / "wasmflow" / "compiled"

    # Two processes from two empty directories, at once, on an empty cache.
    first = [Serve(wasmflow_bin, model, tmp_path / f"cwd-{i}", env) for i in range(2)]
    try:
        for s in first:
            s.wait_ready(COMPILE_TIMEOUT)
        answers = [s.predict() for s in first]
        assert answers[0] == answers[1]
        counts = [s.cache_counts() for s in first]
    finally:
        for s in first:
            s.stop()
    compiled = sorted(p.name for p in cache.glob("*.cwasm"))
    assert compiled, f"nothing was cached in {cache}"
    # The lock makes the second process wait for the first one's compile: every plugin was
    # compiled once between them, whichever process did it.
    assert sum(misses for _, misses in counts) == len(compiled), (counts, compiled)
    assert not list(cache.glob("*.tmp")) and not list(cache.glob(".*.tmp"))
    for i in range(2):
        assert not (tmp_path / f"cwd-{i}" / "wasmflow-plugins" / ".compiled").exists()

    # A later start from yet another directory, same HOME: everything comes from the cache.
    again = Serve(wasmflow_bin, model, tmp_path / "elsewhere", env)
    try:
        again.wait_ready()
        assert again.predict() == answers[0]
        hits, misses = again.cache_counts()
        assert misses == 0 and hits >= 1, (hits, misses, again.logs())
        assert "compiling plugin '" not in again.logs()
    finally:
        again.stop()
    assert sorted(p.name for p in cache.glob("*.cwasm")) == compiled


def test_xdg_cache_home_and_the_flag_choose_the_cache(wasmflow_bin, tmp_path):
    """XDG_CACHE_HOME wins over HOME; WASMFLOW_PLUGIN_CACHE_DIR (--plugin-cache-dir) over both.
    The second cache is seeded with the first one's files, so only the first start compiles."""
    model = write_linear_model(tmp_path / "model")
    env = {k: v for k, v in os.environ.items() if k not in ("WASMFLOW_PLUGIN_CACHE_DIR", "WASMFLOW_PLUGINS_DIR")}
    env.update(HOME=str(tmp_path / "home"), XDG_CACHE_HOME=str(tmp_path / "xdg"))
    s = Serve(wasmflow_bin, model, tmp_path / "a", env)
    try:
        s.wait_ready(COMPILE_TIMEOUT)
        assert f"compiled plugins are cached in '{tmp_path / 'xdg' / 'wasmflow' / 'compiled'}'" in s.logs()
    finally:
        s.stop()
    assert not (tmp_path / "home").exists()
    assert list((tmp_path / "xdg" / "wasmflow" / "compiled").glob("*.cwasm"))

    flag_dir = tmp_path / "flag-cache"
    flag_dir.mkdir()
    for f in (tmp_path / "xdg" / "wasmflow" / "compiled").glob("*.cwasm"):
        shutil.copy(f, flag_dir / f.name)
    env["WASMFLOW_PLUGIN_CACHE_DIR"] = str(flag_dir)
    s = Serve(wasmflow_bin, model, tmp_path / "b", env)
    try:
        s.wait_ready()
        assert f"compiled plugins are cached in '{flag_dir}'" in s.logs()
        assert s.cache_counts()[1] == 0, s.logs()
    finally:
        s.stop()
