"""Serves MLflow's own built UI in front of a wasmflow server, as MLflow's Flask app serves it.

Usage: mlflow_ui_proxy.py <port> <wasmflow-url> <failures.log>

MLflow's app answers `/` with the UI's index.html and `/static-files/<path>` with the files of
the build (mlflow/server/js/build of the installed package); every other path is its API. Here
those two are served from the installed mlflow package and every other request is forwarded to
wasmflow unchanged, so the UI's `ajax-api/...`, `graphql` and `get-artifact` calls reach wasmflow.

Every answer of 4xx/5xx, and every GraphQL answer with `errors`, is appended to failures.log as
one JSON line (status, method, path, the start of the body): the browser test reads it after each
page. The proxy sees what the page's own listeners miss (requests from the UI's web workers).
"""

import http.server
import importlib.util
import json
import os
import sys
import urllib.error
import urllib.request

# Found without importing mlflow.server, which builds MLflow's whole Flask app (seconds).
BUILD = os.path.join(importlib.util.find_spec("mlflow").submodule_search_locations[0], "server", "js", "build")
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-authorization", "proxy-authenticate"}


class Handler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, directory=BUILD, **kwargs)

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass

    def _static(self) -> bool:
        path = self.path.split("?", 1)[0]
        if path == "/" or path == "/index.html":
            self.path = "/index.html"
            return True
        if path.startswith("/static-files/"):
            self.path = self.path[len("/static-files"):]
            return True
        return False

    def do_GET(self):
        if self._static():
            return super().do_GET()
        self._forward()

    def do_HEAD(self):
        if self._static():
            return super().do_HEAD()
        self._forward()

    def do_POST(self):
        self._forward()

    def do_PATCH(self):
        self._forward()

    def do_PUT(self):
        self._forward()

    def do_DELETE(self):
        self._forward()

    def _forward(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP and k.lower() != "host"}
        request = urllib.request.Request(UPSTREAM + self.path, data=body, headers=headers, method=self.command)
        try:
            response = urllib.request.urlopen(request, timeout=60)
        except urllib.error.HTTPError as e:
            response = e
        data = response.read()
        self._record(response.status, data)
        self.send_response(response.status)
        for key, value in response.headers.items():
            if key.lower() not in HOP_BY_HOP and key.lower() != "content-length":
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _record(self, status: int, data: bytes) -> None:
        failed = status >= 400
        if not failed and self.path.split("?", 1)[0] == "/graphql":
            try:
                failed = json.loads(data).get("errors") is not None
            except ValueError:
                failed = True
        if failed:
            line = {"status": status, "method": self.command, "path": self.path, "body": data[:400].decode("utf-8", "replace")}
            with open(FAILURES, "a") as f:
                f.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    port, UPSTREAM, FAILURES = int(sys.argv[1]), sys.argv[2].rstrip("/"), sys.argv[3]
    http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
