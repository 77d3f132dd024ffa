"""Webhooks (MLflow 3.3+) with the official client: CRUD and paging, MLflow's URL and event
checks, registry events delivered to a local receiver and their signature verified as MLflow's
documentation describes, a failed delivery retried, and the test endpoint.

Deliveries to 127.0.0.1 need MLflow's development settings, which wasmflow reads under the same
names: `MLFLOW_WEBHOOK_ALLOWED_SCHEMES=http,https` and `MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS=true`."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import mlflow
import pytest
import requests
from mlflow.entities.webhook import WebhookEvent, WebhookStatus
from mlflow.exceptions import MlflowException

from conftest import ServerProcess

SECRET = "wh-secret-\u00e9"


@pytest.fixture(scope="module")
def dev_server(tmp_path_factory, wasmflow_bin):
    """A server that may deliver to loopback over plain HTTP (MLflow's development settings)."""
    saved = {k: os.environ.get(k) for k in ("MLFLOW_WEBHOOK_ALLOWED_SCHEMES", "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS", "MLFLOW_WEBHOOK_REQUEST_MAX_RETRIES")}
    os.environ["MLFLOW_WEBHOOK_ALLOWED_SCHEMES"] = "http,https"
    os.environ["MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS"] = "true"
    # Two retries (MLflow's default is three) keep the unreachable-receiver test short.
    os.environ["MLFLOW_WEBHOOK_REQUEST_MAX_RETRIES"] = "2"
    try:
        srv = ServerProcess(wasmflow_bin, tmp_path_factory.mktemp("webhooks"), name="webhooks").start()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    yield srv
    srv.stop()


@pytest.fixture
def client(dev_server) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(tracking_uri=dev_server.url, registry_uri=dev_server.url)


class Receiver:
    """A local HTTP endpoint that records every POST; `fail_first` answers 503 that many times."""

    def __init__(self, fail_first: int = 0):
        self.requests: list[dict] = []
        self.fail_first = fail_first
        self.cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.cond:
                    # Header names are case-insensitive; keep them in lower case.
                    receiver.requests.append({"headers": {k.lower(): v for k, v in self.headers.items()}, "body": body})
                    failing = receiver.fail_first > 0
                    receiver.fail_first -= 1 if failing else 0
                    receiver.cond.notify_all()
                self.send_response(503 if failing else 200)
                self.end_headers()
                self.wfile.write(b"busy" if failing else b"ok")

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def wait_for(self, n: int, timeout: float = 20.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.requests) < n:
                left = deadline - time.monotonic()
                assert left > 0, f"expected {n} deliveries, got {len(self.requests)}: {self.requests}"
                self.cond.wait(left)
            return list(self.requests)

    def close(self):
        self.httpd.shutdown()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def verify_signature(secret: str, headers: dict, body: bytes) -> bool:
    """MLflow's documented check: HMAC-SHA256 of `{delivery_id}.{timestamp}.{payload}` with the
    secret, base64, after `v1,`; and a timestamp no older than five minutes."""
    signature = headers["x-mlflow-signature"]
    delivery_id = headers["x-mlflow-delivery-id"]
    timestamp = headers["x-mlflow-timestamp"]
    if abs(time.time() - int(timestamp)) > 300 or not signature.startswith("v1,"):
        return False
    signed = f"{delivery_id}.{timestamp}.{body.decode('utf-8')}".encode()
    expected = base64.b64encode(hmac.new(secret.encode(), signed, hashlib.sha256).digest()).decode()
    return hmac.compare_digest(expected, signature.removeprefix("v1,"))


def test_crud_and_paging(client, unique_name):
    name = unique_name("h")[:60].lower().replace("_", "-")
    hook = client.create_webhook(
        name=name,
        url="https://example.com/hook",
        events=["registered_model.created", "model_version_tag.set"],
        description="first",
        secret="abc",
    )
    assert hook.name == name and hook.url == "https://example.com/hook"
    assert [str(e) for e in hook.events] == ["registered_model.created", "model_version_tag.set"]
    assert hook.status == WebhookStatus.ACTIVE and hook.description == "first"
    assert hook.creation_timestamp == hook.last_updated_timestamp > 0
    assert hook.secret is None  # never returned

    got = client.get_webhook(hook.webhook_id)
    assert got.webhook_id == hook.webhook_id and got.events == hook.events

    raw = requests.get(f"{client.tracking_uri}/api/2.0/mlflow/webhooks/{hook.webhook_id}").json()
    assert list(raw["webhook"]) == [
        "webhook_id", "name", "description", "url", "events", "status",
        "creation_timestamp", "last_updated_timestamp",
    ]
    assert raw["webhook"]["events"][0] == {"entity": "REGISTERED_MODEL", "action": "CREATED"}
    assert "secret" not in json.dumps(raw)

    updated = client.update_webhook(
        hook.webhook_id, status="DISABLED", events=[WebhookEvent("model_version", "created")]
    )
    assert updated.status == WebhookStatus.DISABLED
    assert [str(e) for e in updated.events] == ["model_version.created"]
    assert updated.description == "first" and updated.url == hook.url
    assert updated.last_updated_timestamp >= hook.last_updated_timestamp

    more = [
        client.create_webhook(name=f"{name[:50]}-{i}", url="https://example.com/x", events=["model_version.created"])
        for i in range(3)
    ]
    ids = {hook.webhook_id, *(m.webhook_id for m in more)}
    seen, token = [], None
    while True:
        page = client.list_webhooks(max_results=2, page_token=token)
        assert len(page) <= 2
        seen += [w.webhook_id for w in page]
        token = page.token
        if not token:
            break
    assert ids <= set(seen) and len(seen) == len(set(seen))
    # Newest first.
    assert seen.index(more[2].webhook_id) < seen.index(more[0].webhook_id) < seen.index(hook.webhook_id)

    for h in (hook, *more):
        client.delete_webhook(h.webhook_id)
    with pytest.raises(MlflowException, match=f"Webhook with ID {hook.webhook_id} not found") as e:
        client.get_webhook(hook.webhook_id)
    assert e.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert hook.webhook_id not in {w.webhook_id for w in client.list_webhooks(max_results=1000)}


def test_invalid_input_is_refused(client, dev_server):
    def refused(match, **kwargs):
        args = {"name": "ok", "url": "https://example.com/h", "events": ["model_version.created"], **kwargs}
        with pytest.raises(MlflowException, match=match) as e:
            client.create_webhook(**args)
        assert e.value.error_code == "INVALID_PARAMETER_VALUE"

    refused(r"Invalid webhook URL scheme: 'ftp'\. Allowed schemes are: http, https\.", url="ftp://example.com/x")
    refused(r"Webhook URL must include a hostname", url="https:///nohost")
    refused(r"Webhook URL cannot be empty", url="   ")
    refused(r"Webhook name 'bad name' is invalid", name="bad name")
    refused(r"Missing value for required parameter .events.", events=[])

    # What the client checks itself, sent raw: the server checks it as MLflow's does.
    url = f"{dev_server.url}/api/2.0/mlflow/webhooks"
    bad_pair = {"name": "x", "url": "https://example.com/h", "events": [{"entity": "REGISTERED_MODEL", "action": "DELETED"}]}
    r = requests.post(url, json=bad_pair)
    assert r.status_code == 400
    assert r.json() == {
        "error_code": "INVALID_PARAMETER_VALUE",
        "message": "Invalid action 'deleted' for entity 'registered_model'. Valid actions are: ['created']",
        "sqlstate": "KAM00",
        "error_class": "INVALID_PARAMETER_VALUE",
    }
    r = requests.post(url, json={"name": "x", "url": "https://example.com/h"})
    assert r.status_code == 400 and "'events'" in r.json()["message"]
    r = requests.get(url, params={"max_results": 5000})
    assert r.status_code == 400 and r.json()["message"] == "max_results must be between 1 and 1000."
    r = requests.patch(f"{url}/no-such-id", json={"name": "y"})
    assert r.status_code == 404 and r.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"


def test_default_settings_refuse_http_and_private_addresses(isolated_server):
    srv = isolated_server(name="strict")
    client = mlflow.MlflowClient(tracking_uri=srv.url, registry_uri=srv.url)
    with pytest.raises(MlflowException, match=r"Invalid webhook URL scheme: 'http'\. Allowed schemes are: https\."):
        client.create_webhook(name="h", url="http://example.com/x", events=["model_version.created"])
    with pytest.raises(MlflowException, match=r"must not resolve to a non-public IP address\. '127\.0\.0\.1' resolves to 127\.0\.0\.1\."):
        client.create_webhook(name="h", url="https://127.0.0.1:9/x", events=["model_version.created"])


def test_events_delivered_and_signed(client, receiver, unique_name):
    hook = client.create_webhook(
        name="all-registry-events",
        url=receiver.url,
        events=[
            "registered_model.created",
            "model_version.created",
            "model_version_tag.set",
            "model_version_tag.deleted",
            "model_version_alias.created",
            "model_version_alias.deleted",
        ],
        secret=SECRET,
    )
    name = unique_name("m")
    try:
        client.create_registered_model(name, tags={"team": "a\u00e9"})
        mv = client.create_model_version(name, "s3://bucket/model", tags={"k": "v"}, description="d")
        client.set_model_version_tag(name, mv.version, "stage", "ok")
        client.delete_model_version_tag(name, mv.version, "stage")
        client.set_registered_model_alias(name, "champ", mv.version)
        client.delete_registered_model_alias(name, "champ")
        got = receiver.wait_for(6)
    finally:
        client.delete_webhook(hook.webhook_id)

    by_event = {}
    for r in got:
        assert r["headers"]["content-type"] == "application/json"
        assert verify_signature(SECRET, r["headers"], r["body"]), r
        assert not verify_signature("wrong", r["headers"], r["body"])
        doc = json.loads(r["body"])
        assert list(doc) == ["entity", "action", "timestamp", "data"]
        assert doc["timestamp"].endswith("+00:00")
        by_event[f"{doc['entity']}.{doc['action']}"] = (doc["data"], r["body"])
    assert set(by_event) == {
        "registered_model.created", "model_version.created", "model_version_tag.set",
        "model_version_tag.deleted", "model_version_alias.created", "model_version_alias.deleted",
    }
    data, body = by_event["registered_model.created"]
    # json.dumps with its default separators and ensure_ascii, as MLflow sends it.
    assert data == {"name": name, "tags": {"team": "a\u00e9"}, "description": ""}
    assert b'"tags": {"team": "a\\u00e9"}' in body and b'"entity": "registered_model", ' in body
    assert by_event["model_version.created"][0] == {
        "name": name, "version": "1", "source": "s3://bucket/model", "run_id": None,
        "tags": {"k": "v"}, "description": "d",
    }
    assert by_event["model_version_tag.set"][0] == {"name": name, "version": "1", "key": "stage", "value": "ok"}
    assert by_event["model_version_tag.deleted"][0] == {"name": name, "version": "1", "key": "stage"}
    assert by_event["model_version_alias.created"][0] == {"name": name, "alias": "champ", "version": "1"}
    assert by_event["model_version_alias.deleted"][0] == {"name": name, "alias": "champ"}


def test_disabled_and_unsubscribed_hooks_get_nothing(client, receiver, unique_name):
    off = client.create_webhook(name="off", url=receiver.url, events=["registered_model.created"], status="DISABLED")
    other = client.create_webhook(name="other", url=receiver.url, events=["model_version_tag.deleted"])
    on = client.create_webhook(name="on", url=receiver.url, events=["registered_model.created"])
    try:
        client.create_registered_model(unique_name("m"))
        receiver.wait_for(1)
        time.sleep(0.5)
        assert len(receiver.requests) == 1
        assert "x-mlflow-signature" not in receiver.requests[0]["headers"]  # no secret, no signature
    finally:
        for h in (off, other, on):
            client.delete_webhook(h.webhook_id)


def test_failed_delivery_is_retried(client, unique_name):
    receiver = Receiver(fail_first=2)
    hook = client.create_webhook(name="flaky", url=receiver.url, events=["registered_model.created"], secret="s")
    try:
        client.create_registered_model(unique_name("m"))
        got = receiver.wait_for(3, timeout=30)
    finally:
        client.delete_webhook(hook.webhook_id)
        receiver.close()
    # One delivery, sent again as it was: the same id, timestamp and signature.
    assert len({r["headers"]["x-mlflow-delivery-id"] for r in got}) == 1
    assert len({r["body"] for r in got}) == 1
    assert all(verify_signature("s", r["headers"], r["body"]) for r in got)


def test_delivery_record(client, dev_server, unique_name):
    receiver = Receiver(fail_first=1)
    hook = client.create_webhook(name="recorded", url=receiver.url, events=["registered_model.created"])
    try:
        client.create_registered_model(unique_name("m"))
        receiver.wait_for(2)
        for _ in range(100):
            rows = requests.get(
                f"{dev_server.url}/api/2.0/wasmflow/webhooks/{hook.webhook_id}/deliveries"
            ).json()["deliveries"]
            if rows:
                break
            time.sleep(0.05)
        assert rows[0]["event"] == "registered_model.created"
        assert rows[0]["attempts"] == 2 and rows[0]["success"] is True and rows[0]["response_status"] == 200
    finally:
        client.delete_webhook(hook.webhook_id)
        receiver.close()


def test_test_endpoint(client, receiver):
    hook = client.create_webhook(
        name="tested", url=receiver.url, events=["model_version_alias.created", "model_version.created"], secret=SECRET
    )
    try:
        result = client.test_webhook(hook.webhook_id)
        assert result.success is True and result.response_status == 200 and result.response_body == "ok"
        (r,) = receiver.wait_for(1)
        assert verify_signature(SECRET, r["headers"], r["body"])
        doc = json.loads(r["body"])
        # MLflow's example payload of the first event.
        assert (doc["entity"], doc["action"]) == ("model_version_alias", "created")
        assert doc["data"] == {"name": "example_model", "alias": "example_alias", "version": "1"}

        result = client.test_webhook(hook.webhook_id, event=WebhookEvent("model_version", "created"))
        assert result.success is True
        assert json.loads(receiver.wait_for(2)[1]["body"])["data"]["source"] == "models:/123"
    finally:
        client.delete_webhook(hook.webhook_id)

    dead = client.create_webhook(name="dead", url=f"http://127.0.0.1:{_closed_port()}/x", events=["model_version.created"])
    try:
        result = client.test_webhook(dead.webhook_id)
        assert result.success is False and result.response_status is None
        assert result.error_message.startswith("Failed to test webhook: ")
    finally:
        client.delete_webhook(dead.webhook_id)


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
