"""Artifacts through the client (proxied `mlflow-artifacts` store) and path traversal over raw HTTP."""

from __future__ import annotations

import filecmp
import http.client
import json
import os
from pathlib import Path

import mlflow
import mlflow.artifacts
import pytest
import requests

ARTIFACTS_API = "/api/2.0/mlflow-artifacts/artifacts"


def _write_tree(root: Path) -> dict[str, bytes]:
    """A small nested directory with text and binary files; returns relative path -> content."""
    files = {
        "top.txt": b"top level\n",
        "data/values.csv": b"a,b\n1,2\n3,4\n",
        "data/deeper/blob.bin": bytes(range(256)) * 40,
        "data/deeper/empty.txt": b"",
        "other/notes.md": "# ünïcödé ✓\n".encode(),
    }
    for rel, content in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content)
    return files


def _read_tree(root: Path) -> dict[str, bytes]:
    out = {}
    for dirpath, _, filenames in os.walk(root):
        for fn in filenames:
            p = Path(dirpath) / fn
            out[p.relative_to(root).as_posix()] = p.read_bytes()
    return out


def test_run_artifact_uri_is_proxied(client, experiment_id):
    run = client.create_run(experiment_id)
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/"), run.info.artifact_uri
    assert run.info.run_id in run.info.artifact_uri


def test_log_artifact_and_download_file(client, experiment_id, tmp_path):
    src = tmp_path / "hello.txt"
    src.write_text("hello artifacts\n")
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(src))
        mlflow.log_artifact(str(big), artifact_path="bins")
    run_id = run.info.run_id

    root = {f.path: f for f in client.list_artifacts(run_id)}
    assert set(root) == {"hello.txt", "bins"}
    assert not root["hello.txt"].is_dir
    assert root["hello.txt"].file_size == len("hello artifacts\n")
    assert root["bins"].is_dir

    sub = client.list_artifacts(run_id, "bins")
    assert [(f.path, f.is_dir, f.file_size) for f in sub] == [("bins/big.bin", False, big.stat().st_size)]

    dst = tmp_path / "dl"
    dst.mkdir()
    local = client.download_artifacts(run_id, "hello.txt", str(dst))
    assert Path(local).read_text() == "hello artifacts\n"
    local_big = client.download_artifacts(run_id, "bins/big.bin", str(dst))
    assert filecmp.cmp(local_big, big, shallow=False)


def test_log_artifacts_nested_dir_and_download_dir(client, experiment_id, tmp_path):
    src = tmp_path / "tree"
    files = _write_tree(src)
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(src), artifact_path="bundle")
        mlflow.log_artifacts(str(src))  # also at the root
    run_id = run.info.run_id

    root = {(f.path, f.is_dir) for f in client.list_artifacts(run_id)}
    assert root == {("bundle", True), ("top.txt", False), ("data", True), ("other", True)}
    bundle = {(f.path, f.is_dir) for f in client.list_artifacts(run_id, "bundle")}
    assert bundle == {("bundle/top.txt", False), ("bundle/data", True), ("bundle/other", True)}
    # Protobuf JSON omits a zero file_size, so the client sees None for an empty file.
    deeper = {
        (f.path, f.file_size or 0) for f in client.list_artifacts(run_id, "bundle/data/deeper")
    }
    assert deeper == {
        ("bundle/data/deeper/blob.bin", len(files["data/deeper/blob.bin"])),
        ("bundle/data/deeper/empty.txt", 0),
    }

    dst = tmp_path / "dl"
    dst.mkdir()
    local_dir = client.download_artifacts(run_id, "bundle", str(dst))
    assert _read_tree(Path(local_dir)) == files

    # The whole run (root), through the fluent helper.
    everything = mlflow.artifacts.download_artifacts(run_id=run_id, dst_path=str(tmp_path / "all"))
    got = _read_tree(Path(everything))
    expected = dict(files)
    expected.update({f"bundle/{k}": v for k, v in files.items()})
    assert got == expected


def test_log_text_and_dict(client, experiment_id, tmp_path):
    payload = {"a": 1, "nested": {"b": [1, 2, 3]}, "s": "ünï"}
    with mlflow.start_run() as run:
        mlflow.log_text("some text\nline 2\n", "notes/readme.txt")
        mlflow.log_dict(payload, "config/params.json")
        mlflow.log_dict(payload, "config/params.yaml")
    run_id = run.info.run_id
    assert [f.path for f in client.list_artifacts(run_id, "config")] == [
        "config/params.json",
        "config/params.yaml",
    ]

    txt = mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path="notes/readme.txt", dst_path=str(tmp_path / "a")
    )
    assert Path(txt).read_text() == "some text\nline 2\n"
    js = mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path="config/params.json", dst_path=str(tmp_path / "b")
    )
    assert json.loads(Path(js).read_text()) == payload
    assert mlflow.artifacts.load_dict(f"runs:/{run_id}/config/params.json") == payload
    assert mlflow.artifacts.load_text(f"runs:/{run_id}/notes/readme.txt") == "some text\nline 2\n"
    dir_dl = mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path="config", dst_path=str(tmp_path / "c")
    )
    assert sorted(os.listdir(dir_dl)) == ["params.json", "params.yaml"]


def test_list_artifacts_empty_and_missing(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    assert client.list_artifacts(run_id) == []
    assert client.list_artifacts(run_id, "does/not/exist") == []


def test_artifacts_written_under_artifact_root(client, experiment_id, server, tmp_path):
    src = tmp_path / "marker.txt"
    src.write_text("marker")
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(src), artifact_path="m")
    hits = [p for p in server.artifacts_dir.rglob("marker.txt")]
    assert len(hits) == 1, f"expected the artifact under {server.artifacts_dir}, found {hits}"
    assert run.info.run_id in hits[0].as_posix()
    assert hits[0].read_text() == "marker"


def test_raw_artifact_put_get_roundtrip(base_url, server, unique_name):
    rel = f"{unique_name('raw')}/dir/file.txt"
    r = requests.put(f"{base_url}{ARTIFACTS_API}/{rel}", data=b"raw bytes", timeout=30)
    assert r.status_code == 200, r.text
    r = requests.get(f"{base_url}{ARTIFACTS_API}/{rel}", timeout=30)
    assert r.status_code == 200
    assert r.content == b"raw bytes"
    assert (server.artifacts_dir / rel).read_bytes() == b"raw bytes"
    r = requests.get(f"{base_url}{ARTIFACTS_API}", params={"path": rel.rsplit("/", 1)[0]}, timeout=30)
    assert r.status_code == 200
    files = r.json()["files"]
    assert [(f["path"], f["is_dir"], int(f["file_size"])) for f in files] == [("file.txt", False, 9)]


# --------------------------------------------------------------------------------------------------
# Path traversal: the raw path must reach the server exactly as written, so use http.client.

TRAVERSALS = [
    "../x",
    "../../x",
    "a/../../x",
    "..%2fx",
    "..%2Fx",
    "a/..%2f..%2fx",
    "%2e%2e/x",
    "%2E%2E/x",
    "%2e%2e%2fx",
    "a/%2e%2e/%2e%2e/x",
    "%252e%252e%252fx",
    "/etc/passwd",
    "%2fetc%2fpasswd",
    "%2Fetc%2Fpasswd",
]


def _raw(server, method: str, raw_path: str, body: bytes | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.putrequest(method, raw_path, skip_accept_encoding=True)
        conn.putheader("Content-Length", str(len(body or b"")))
        conn.endheaders(body or b"")
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _assert_invalid(status: int, body: bytes, what: str):
    assert status == 400, f"{what}: expected HTTP 400, got {status}: {body[:300]!r}"
    try:
        err = json.loads(body)
    except ValueError:
        pytest.fail(f"{what}: error body is not JSON: {body[:300]!r}")
    assert err.get("error_code") == "INVALID_PARAMETER_VALUE", f"{what}: {err}"
    assert isinstance(err.get("message"), str) and err["message"], f"{what}: {err}"


@pytest.mark.parametrize("path", TRAVERSALS)
def test_artifact_traversal_get_rejected(server, path):
    # An absolute path arrives as `.../artifacts//etc/passwd`.
    raw = f"{ARTIFACTS_API}/{path}"
    status, body = _raw(server, "GET", raw)
    _assert_invalid(status, body, f"GET {raw}")
    assert b"root:" not in body


@pytest.mark.parametrize("path", TRAVERSALS)
def test_artifact_traversal_put_rejected(server, tmp_path, path):
    marker = f"pwned-{os.getpid()}-{abs(hash(path))}".encode()
    before = _snapshot_outside(server)
    raw = f"{ARTIFACTS_API}/{path}"
    status, body = _raw(server, "PUT", raw, marker)
    _assert_invalid(status, body, f"PUT {raw}")
    after = _snapshot_outside(server)
    assert after == before, f"files appeared outside the artifact root: {sorted(after - before)}"


@pytest.mark.parametrize("path", ["../", "..", "a/../..", "/etc", "%2e%2e", "../../.."])
def test_artifact_traversal_list_rejected(base_url, path):
    r = requests.get(f"{base_url}{ARTIFACTS_API}", params={"path": path}, timeout=30)
    _assert_invalid(r.status_code, r.content, f"list path={path!r}")


def test_artifact_traversal_via_run_artifact_list(client, experiment_id, api):
    run_id = client.create_run(experiment_id).info.run_id
    r = requests.get(api("artifacts/list"), params={"run_id": run_id, "path": "../../"}, timeout=30)
    _assert_invalid(r.status_code, r.content, "artifacts/list path=../../")


def _snapshot_outside(server) -> set[str]:
    """Every file beside the artifact root (its parent, the store dir) and a few likely targets."""
    root = server.artifacts_dir.resolve()
    seen = set()
    for p in server.store_dir.rglob("*"):
        rp = p.resolve()
        if rp == root or root in rp.parents:
            continue
        if p.suffix == ".log" or p.name.startswith("db.sqlite"):
            continue
        seen.add(str(p))
    for extra in ("/x", "/etc/passwd", str(root.parent.parent / "x"), str(root.parent / "x")):
        p = Path(extra)
        if p.exists():
            seen.add(f"{extra}:{p.stat().st_mtime_ns}:{p.stat().st_size}")
    return seen
