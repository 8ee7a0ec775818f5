"""The outside probe of `vitr serve` and the library, row by row (issue 21): what a web page on
another site can make a browser do, client input that got a 500, the file behind a thumbnail,
keys, uploads, typed ids, threads and the access log. Each test failed before the change it names."""
from __future__ import annotations

import hashlib
import io
import logging
import os
import struct
import threading
import zlib

import pytest
from fastapi.testclient import TestClient
from PIL import Image

import vitr_qdrant as vq
from vitr_qdrant.serve import create_app
from vitr_qdrant.serve.guards import Secret, key_checker

from test_collection import png

LOCAL = "http://127.0.0.1"
QUERY = "red circle left of blue square"


@pytest.fixture()
def writable(tmp_path, tiny_model, scene_files):
    """A collection of two scene files (ids 0, 1), served with uploads and deletes on."""
    with vq.VitrCollection("safe", path=tmp_path / "store", model=tiny_model) as c:
        c.add_images(scene_files[:2], ids=[0, 1], progress=False)
        yield c


def client_for(col, base_url=LOCAL, **options):
    return TestClient(create_app(col, **options), base_url=base_url)


# --- cross-site writes and DNS rebinding ------------------------------------------------------
@pytest.mark.parametrize("headers", [{"Origin": "http://evil.example"}, {"Origin": "null"},
                                     {"Origin": "http://127.0.0.1:9999"}, {"Sec-Fetch-Site": "cross-site"},
                                     {"Sec-Fetch-Site": "same-site", "Origin": "http://127.0.0.1"}])
def test_a_cross_site_upload_or_delete_is_refused(writable, tmp_path, scene_images, headers):
    client = client_for(writable, uploads=tmp_path / "up", allow_delete=True)
    r = client.post("/items", files=[("files", ("a.png", png(scene_images[7])))], headers=headers)
    assert r.status_code == 403 and "may not change" in r.json()["message"], r.text
    assert client.delete("/items/0", headers=headers).status_code == 403
    assert client.post("/search", json={"text": QUERY}, headers=headers).status_code == 403
    assert len(writable) == 2 and not (tmp_path / "up").exists()


def test_same_origin_writes_still_work(writable, tmp_path, scene_images):
    client = client_for(writable, uploads=tmp_path / "up", allow_delete=True)
    same = {"Origin": LOCAL, "Sec-Fetch-Site": "same-origin"}
    r = client.post("/items", files=[("files", ("a.png", png(scene_images[7])))], headers=same)
    assert r.status_code == 200 and r.json()["added"] == 1
    assert client.delete("/items/0", headers=same).status_code == 200 and len(writable) == 2


@pytest.mark.parametrize("path", ["/info", "/items/0", "/items/0/image", "/", "/health"])
def test_a_foreign_host_name_gets_nothing(writable, path):
    """DNS rebinding: a page on evil.example (resolving to 127.0.0.1) asks with its own Host."""
    r = client_for(writable, base_url="http://evil.example:8000").get(path)
    assert r.status_code == 421 and "--allowed-host" in r.json()["message"]
    assert "image" not in r.headers["content-type"] and "payload" not in r.text


def test_allowed_hosts_are_the_loopback_names_plus_those_given(writable):
    for base in ("http://localhost:8000", "http://127.0.0.1:8000", "http://[::1]:8000"):
        assert client_for(writable, base_url=base).get("/info").status_code == 200, base
    assert client_for(writable, base_url="http://photos.lan", allowed_hosts=["localhost", "photos.lan"]
                      ).get("/info").status_code == 200
    assert client_for(writable, base_url="http://any.name", allowed_hosts=["*"]).get("/info").status_code == 200


def test_the_page_loads_images_only_from_the_service(writable):
    policy = client_for(writable).get("/").headers["content-security-policy"]
    img_src = next(d for d in policy.split(";") if d.strip().startswith("img-src")).split()[1:]
    assert img_src == ["'self'", "blob:", "data:"]
    script = client_for(writable).get("/app.js").text
    assert "src: uri" not in script and "id_type=" in script   # no hit's uri is loaded by the viewer


# --- no 5xx for client input ------------------------------------------------------------------
BAD_FILTERS = [({"year": {"gte": None}}, "'year': its 'gte' bound must be a number"),
               ({"year": {"gte": [1]}}, "'year': its 'gte' bound must be a number"),
               ({"year": {"gte": {}}}, "'year': its 'gte' bound must be a number"),
               ({"year": {"gte": "x"}}, "'year': its 'gte' bound must be a number, got 'x'"),
               ({"year": 2**63}, "'year': an int must be within -2**63..2**63-1"),
               ({"year": 2**70}, "'year': an int must be within"),
               ({"year": -2**64}, "'year': an int must be within"),
               ({"year": {"lt": 2**70}}, "'year': an int must be within"),
               ({"year": [1, "a"]}, "'year': a list holds either str or int values"),
               ({"": 1}, "a key must be a non-empty str")]


@pytest.mark.parametrize("flt, says", BAD_FILTERS)
def test_bad_filter_values_are_400_naming_the_key(writable, scene_images, flt, says):
    import json

    client = client_for(writable)
    r = client.post("/search", json={"text": QUERY, "filter": flt})
    assert r.status_code == 400 and says in r.json()["message"], r.text
    r = client.post("/search/image", files={"file": ("q.png", png(scene_images[2]))}, data={"filter": json.dumps(flt)})
    assert r.status_code == 400 and says in r.json()["message"], r.text
    assert client.get("/health").status_code == 200
    with pytest.raises(vq.InputError, match="filter"):
        writable.search(QUERY, filter=flt)


def test_none_and_other_non_ids_are_input_errors(writable):
    for bad in (None, 1.5, b"5", {"a": 1}):
        with pytest.raises(vq.InputError, match="id"):
            writable.get(bad)
        with pytest.raises(vq.InputError, match="id"):
            writable.delete(bad)
    assert len(writable) == 2


# --- the file you indexed is the file you get -------------------------------------------------
def test_a_pil_image_opened_by_a_relative_path_is_stored_with_its_absolute_path(
        tmp_path, tiny_model, scene_images, monkeypatch):
    monkeypatch.chdir(tmp_path)
    scene_images[3].save("photo.png")
    with vq.VitrCollection("rel", path=tmp_path / "store", model=tiny_model) as col:
        with Image.open("photo.png") as img:
            col.add_images([img], ids=[1], progress=False)
        assert col.get(1)[0].uri == str(tmp_path / "photo.png")
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        scene_images[4].save(elsewhere / "photo.png")   # another file under the same relative name
        monkeypatch.chdir(elsewhere)
        r = client_for(col).get("/items/1/image", params={"size": 64})
        assert r.status_code == 200   # the file that was indexed (its pixels have the stored hash)
        (tmp_path / "photo.png").unlink()
        assert client_for(col).get("/items/1/image").status_code == 404   # never the other folder's


def test_a_file_that_changed_since_indexing_is_not_served(tmp_path, tiny_model, scene_images):
    path = tmp_path / "a.png"
    scene_images[0].save(path)
    with vq.VitrCollection("changed", path=tmp_path / "store", model=tiny_model) as col:
        col.add_images([path], ids=[7], progress=False)
        client = client_for(col)
        assert client.get("/items/7/image").status_code == 200
        scene_images[5].save(path)
        r = client.get("/items/7/image")
        assert r.status_code == 409 and "changed since it was indexed" in r.json()["message"]


# --- keys -------------------------------------------------------------------------------------
@pytest.mark.parametrize("key, says", [("", "empty"), ("   ", "printable ASCII"), (" k ", "printable ASCII"),
                                       ("schlüssel", "printable ASCII"), ("a\tb", "printable ASCII")])
def test_keys_no_client_can_send_are_refused(writable, key, says):
    with pytest.raises(vq.InputError, match=says):
        create_app(writable, api_key=key)


@pytest.mark.parametrize("key", ["   ", "schlüssel", ""])
def test_the_cli_refuses_such_a_key_at_start(writable, key, monkeypatch, capsys, tmp_path):
    from vitr_qdrant.cli import main

    monkeypatch.setenv("VITR_SERVICE_KEY", key)
    assert main(["serve", "-c", "x", "--path", str(tmp_path / "none")]) == 2
    assert "VITR_SERVICE_KEY" in capsys.readouterr().err


def test_the_key_is_in_no_repr_and_no_frame_local(writable):
    secret = "s3cret-key-value"
    assert secret not in repr(Secret(secret)) and secret not in str(Secret(secret))
    check = key_checker(secret)
    request = type("R", (), {"headers": {"X-API-Key": "wrong"}})()
    try:
        check(request)
    except Exception as exc:   # the 401 an error reporter would collect, with every frame's locals
        tb = exc.__traceback__
    seen, tb = [], tb.tb_next   # the frames below this test's own
    while tb is not None:
        seen += [repr(v) for v in tb.tb_frame.f_locals.values()]
        tb = tb.tb_next
    seen += [repr(c.cell_contents) for c in check.__closure__ or ()]
    assert seen and not any(secret in text for text in seen)


# --- uploads ----------------------------------------------------------------------------------
def bomb_png(width: int = 30_000, height: int = 30_000) -> bytes:
    """A small PNG whose header declares ``width`` x ``height`` pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + \
        chunk(b"IEND", b"")


def test_failed_uploads_leave_nothing_and_say_why(writable, tmp_path, scene_images):
    client = client_for(writable, uploads=tmp_path / "up")
    truncated = png(scene_images[6])[:200]   # a PNG header, then nothing: the add fails
    r = client.post("/items", files=[("files", ("cut.png", truncated)), ("files", ("bomb.png", bomb_png()))])
    body = r.json()
    assert r.status_code == 200 and body["added"] == 0, body
    reasons = {f["item"]: f["reason"] for f in body["failed"]}
    assert set(reasons) == {"cut.png", "bomb.png"} and "decompression bomb" in reasons["bomb.png"]
    assert not (tmp_path / "up").exists() or list((tmp_path / "up").iterdir()) == []


def test_an_upload_never_rewrites_an_item_unless_allowed(writable, tmp_path, scene_files):
    data = scene_files[2].read_bytes()
    client = client_for(writable, uploads=tmp_path / "up")
    first = client.post("/items", files=[("files", ("b.png", data))], data={"metadata": '{"album": "first"}'}).json()
    item = first["ids"][0]
    r = client.post("/items", files=[("files", ("again.png", data))], data={"metadata": '{"album": "mine"}'})
    body = r.json()
    assert body["added"] == 0 and "--allow-updates" in body["skipped"][0]["reason"] and item in \
        body["skipped"][0]["reason"]
    assert writable.get(item)[0].payload["album"] == "first"
    client = client_for(writable, uploads=tmp_path / "up", allow_updates=True)
    r = client.post("/items", files=[("files", ("b.png", data))], data={"metadata": '{"album": "mine"}'})
    assert r.json()["added"] == 1 and writable.get(item)[0].payload["album"] == "mine"


# --- ids and names ----------------------------------------------------------------------------
def test_int_and_str_ids_that_read_alike_are_both_reachable(writable, scene_files):
    writable.add_images([scene_files[3]], ids=["1"], progress=False)   # int 1 is stored already
    client = client_for(writable, allow_delete=True)
    r = client.get("/items/1")
    assert r.status_code == 409 and "id_type" in r.json()["message"]
    assert client.get("/items/1", params={"id_type": "int"}).json()["id"] == 1
    assert client.get("/items/1", params={"id_type": "str"}).json()["id"] == "1"
    assert client.get("/items/1/image", params={"id_type": "str"}).status_code == 200
    assert client.get("/items/0").json()["id"] == 0   # no clash: found without a type
    assert client.get("/items/x", params={"id_type": "int"}).status_code == 400
    assert client.delete("/items/1", params={"id_type": "str"}).json() == {"deleted": "1"}
    assert [r.id for r in writable.get([1, "1"])] == [1]


@pytest.mark.parametrize("name", ["x__texts", "x__upgrading"])
def test_a_name_ending_in_a_kept_suffix_is_refused(tmp_path, tiny_model, name):
    with pytest.raises(vq.InputError, match=name[1:]):
        vq.VitrCollection(name, path=tmp_path / "store", model=tiny_model)


# --- threads ----------------------------------------------------------------------------------
def test_close_during_a_search_is_a_clear_error(tmp_path, tiny_model, scene_files):
    col = vq.VitrCollection("racing", path=tmp_path / "store", model=tiny_model)
    col.add_images(scene_files, progress=False)
    errors, stop = [], threading.Event()

    def searching():
        while not stop.is_set():
            try:
                col.search(QUERY, limit=2)
            except Exception as exc:   # noqa: BLE001 - every kind is recorded
                errors.append(exc)
                return

    threads = [threading.Thread(target=searching) for _ in range(3)]
    for t in threads:
        t.start()
    col.close()
    stop.set()
    for t in threads:
        t.join(30)
    assert errors and all(isinstance(e, vq.CollectionClosedError) for e in errors), errors
    with pytest.raises(vq.CollectionClosedError, match="closed"):
        len(col)


def test_concurrent_adds_of_the_same_files_report_each_image_once(tmp_path, tiny_model, scene_files):
    with vq.VitrCollection("both", path=tmp_path / "store", model=tiny_model) as col:
        reports, barrier = [], threading.Barrier(2)

        def add(files):
            barrier.wait()
            reports.append(col.add_images(files, progress=False))

        threads = [threading.Thread(target=add, args=(scene_files[:4],)),
                   threading.Thread(target=add, args=(scene_files[2:],))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sum(r.added for r in reports) == len(col) == 6


# --- the access log and /docs -----------------------------------------------------------------
def test_one_access_line_per_request_without_secrets(writable, caplog):
    client = client_for(writable, api_key="s3cret")
    with caplog.at_level(logging.INFO, logger="vitr_qdrant.serve.access"):
        client.post("/search", json={"text": QUERY, "filter": {"album": "private"}}, headers={"X-API-Key": "s3cret"})
        client.get("/items/0", params={"id_type": "int"})
    lines = [r for r in caplog.records if r.name == "vitr_qdrant.serve.access"]
    assert [(r.access["method"], r.access["path"], r.access["status"]) for r in lines] == \
        [("POST", "/search", 200), ("GET", "/items/0", 401)]
    assert not any("s3cret" in r.getMessage() or "private" in r.getMessage() for r in lines)


def test_log_json_lines(writable):
    from vitr_qdrant.serve.access import JsonFormatter
    import json

    record = logging.LogRecord("vitr_qdrant.serve.access", logging.INFO, __file__, 1, "GET /x 200", None, None)
    record.access = {"method": "GET", "path": "/x", "status": 200}
    line = json.loads(JsonFormatter().format(record))
    assert line["status"] == 200 and line["message"] == "GET /x 200" and line["level"] == "INFO"


def test_docs_come_from_the_package(writable):
    client = client_for(writable)
    for name in ("/docs", "/docs.js"):
        r = client.get(name)
        assert r.status_code == 200 and "://" not in r.text and "cdn" not in r.text.lower(), name
    assert "openapi.json" in client.get("/docs").text and client.get("/openapi.json").status_code == 200


def test_vitr_serve_log_json_writes_one_json_line_per_request(tmp_path, tiny_model, scene_files):
    """The real command: `vitr serve --log-json` in its own process, asked twice."""
    import json
    import subprocess
    import sys
    import time

    import httpx

    from test_collection import free_port

    model_dir = str(tiny_model.save(tmp_path / "model"))
    with vq.VitrCollection("pics", path=tmp_path / "store", model=tiny_model) as col:
        col.add_images(scene_files[:2], progress=False)
    port = free_port()
    env = {**os.environ, "VITR_SERVICE_KEY": "k3y-value"}
    proc = subprocess.Popen([sys.executable, "-m", "vitr_qdrant", "serve", "-c", "pics", "--path",
                             str(tmp_path / "store"), "--model", model_dir, "--port", str(port), "--log-json"], env=env,
                            stderr=subprocess.PIPE, text=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert httpx.get(f"http://127.0.0.1:{port}/info", headers={"X-API-Key": "k3y-value"}).status_code == 200
        assert httpx.get(f"http://127.0.0.1:{port}/info", headers={"Host": "evil.example"}).status_code == 421
    finally:
        proc.terminate()
        err = proc.communicate(timeout=30)[1]
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    access = [(a["method"], a["path"], a["status"]) for a in lines if a["logger"] == "vitr_qdrant.serve.access"]
    assert ("GET", "/info", 200) in access and ("GET", "/info", 421) in access, err[-2000:]
    assert "k3y-value" not in err


def test_the_cli_wires_allowed_hosts_and_updates(tmp_path, tiny_model, scene_files, monkeypatch):
    import uvicorn

    from vitr_qdrant.cli import main

    model_dir = str(tiny_model.save(tmp_path / "model"))
    with vq.VitrCollection("pics", path=tmp_path / "store", model=tiny_model) as col:
        col.add_images(scene_files[:1], progress=False)
    seen = {}

    def fake_run(app, **kwargs):   # instead of listening: ask the app as clients on three names would
        for base in ("http://photos.lan:8000", "http://127.0.0.1:8000", "http://evil.example:8000"):
            seen[base] = TestClient(app, base_url=base).get("/info").status_code
        seen["update"] = TestClient(app, base_url=LOCAL).get("/info").json()["update"]

    monkeypatch.delenv("VITR_SERVICE_KEY", raising=False)
    monkeypatch.setattr(uvicorn, "run", fake_run)
    assert main(["serve", "-c", "pics", "--path", str(tmp_path / "store"), "--model", model_dir,
                 "--allowed-host", "photos.lan", "--allow-updates", "--uploads", str(tmp_path / "up")]) == 0
    assert seen == {"http://photos.lan:8000": 200, "http://127.0.0.1:8000": 200, "http://evil.example:8000": 421,
                    "update": True}
