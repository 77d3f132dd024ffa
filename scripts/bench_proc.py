"""Process helpers the Python bench scripts share: a free local port, waiting for a server's
`/health`, stopping a server started in a session of its own (`start_new_session=True`)
with everything it spawned, and a light keep-alive HTTP client for load generators."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import time

import requests


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(proc: subprocess.Popen, url: str, timeout: float = 600, what: str | None = None) -> None:
    """Returns once `url`/health answers 200; exits the bench if the server exits first or does
    not answer within `timeout` s (`what` names it, with its log, in that message)."""
    what = what or f"server at {url}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}")
        try:
            if requests.get(url + "/health", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{what} did not come up")


class KeepAlive:
    """POSTs on one keep-alive connection with `http.client`: a fraction of `requests`' cost a
    call, so that a load generator sharing the machine's cores leaves them to the server."""

    def __init__(self, url: str, timeout: float = 300):
        host, port = url.removeprefix("http://").rsplit(":", 1)
        self.conn = http.client.HTTPConnection(host, int(port), timeout=timeout)

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        """The answer's status and bytes, read to the last one."""
        self.conn.request("POST", path, body=body, headers=headers)
        r = self.conn.getresponse()
        return r.status, r.read()


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the server's process group, SIGKILL if it is still there after 20 s; returns
    when the group is empty (a server's worker processes, uvicorn's, may outlive it a moment)."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    for _ in range(100):
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
