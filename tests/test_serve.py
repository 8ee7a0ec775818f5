"""`vitr serve`'s HTTP API with the tiny model: the search contract, bad bodies, the key, caps, items."""
from __future__ import annotations

import hashlib
import io

import pytest
from fastapi.testclient import TestClient
from PIL import Image

import vitr_qdrant as vq
from vitr_qdrant.serve import create_app, guards

from test_collection import png

QUERY = "red circle left of blue square"
LOCAL = "http://127.0.0.1"   # the services answer loopback names only (tests/test_serve_safety.py)
HIT_KEYS = {"id", "score", "probability", "scores", "payload", "grounding"}


@pytest.fixture(scope="module")
def col(tmp_path_factory, tiny_model, scene_files, scene_images):
    """Six scenes as files (ids 0-5, metadata ``kind``), one from bytes (id 6: no file to show), two texts."""
    c = vq.VitrCollection("served", path=tmp_path_factory.mktemp("store"), model=tiny_model)
    c.add_images(scene_files, ids=list(range(6)), metadata=[{"kind": "ab"[i % 2]} for i in range(6)], progress=False)
    c.add_images([png(scene_images[6])], ids=[6], progress=False)
    c.add_texts(["red circle left of blue square", "a green star"])
    yield c
    c.close()


@pytest.fixture()
def client(col):
    return TestClient(create_app(col), base_url=LOCAL)


def test_health_and_the_search_contract(client):
    assert client.get("/health").status_code == 200
    r = client.post("/search", json={"text": QUERY, "limit": 3, "filter": None, "mode": "vitr"})
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"hits", "unknown_words"} and body["unknown_words"] == []
    assert len(body["hits"]) == 3 and all(set(h) == HIT_KEYS for h in body["hits"])
    top = body["hits"][0]
    assert set(top["scores"]) == {"global", "late", "vitr"} and top["score"] == top["scores"]["vitr"]
    assert [g["word"] for g in top["grounding"]][:2] == ["red", "circle"] and len(top["grounding"][0]["box"]) == 4
    scores = [h["score"] for h in body["hits"]]
    assert scores == sorted(scores, reverse=True)
    glob = client.post("/search", json={"text": QUERY, "limit": 2, "filter": {"kind": "a"}, "mode": "global"}).json()
    assert [set(h["scores"]) for h in glob["hits"]] == [{"global"}] * 2
    assert all(h["payload"]["kind"] == "a" and h["grounding"] == [] for h in glob["hits"])


def test_unknown_words_are_named(client):
    body = client.post("/search", json={"text": "zebra left of blue square", "limit": 1}).json()
    assert body["unknown_words"] == ["zebra"]


@pytest.mark.parametrize("body, status, says", [
    ({"limit": 3}, 422, "text: Field required"),
    ({"text": QUERY, "limit": 0}, 400, "limit must be an int from 1 to 1000, got 0"),
    ({"text": QUERY, "offset": -1}, 400, "offset must be an int from 0 to 10000"),
    ({"text": QUERY, "score_threshold": "high"}, 422, "score_threshold: Input should be a valid number"),
    ({"text": QUERY, "mode": "fast"}, 422, "mode: Input should be 'vitr', 'late' or 'global'"),
    ({"text": QUERY, "filter": ["kind"]}, 422, "filter: Input should be a valid dictionary"),
    ({"text": QUERY, "extra": 1}, 422, "extra: Extra inputs are not permitted"),
    ({"text": QUERY, "filter": {"kind": {"between": 1}}}, 400, "a range takes keys"),
    ({"text": "   "}, 400, "the query must be a non-empty string"),
])
def test_bad_bodies_get_a_message(client, body, status, says):
    r = client.post("/search", json=body)
    assert r.status_code == status and says in r.json()["message"], r.text


def test_a_body_that_is_not_json(client):
    r = client.post("/search", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and "JSON" in r.json()["message"]


def test_internal_errors_are_json_without_internals(col, monkeypatch):
    def broken(*a, **k):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(col, "search", broken)
    r = TestClient(create_app(col), base_url=LOCAL, raise_server_exceptions=False).post("/search", json={"text": QUERY})
    assert r.status_code == 500 and "secret" not in r.text and "RuntimeError" in r.json()["message"]


def test_api_key_is_checked_in_constant_time(col, monkeypatch):
    seen = []
    real = guards.hmac.compare_digest
    monkeypatch.setattr(guards.hmac, "compare_digest", lambda a, b: seen.append((a, b)) or real(a, b))
    client = TestClient(create_app(col, api_key="s3cret"), base_url=LOCAL)
    assert client.post("/search", json={"text": QUERY}).status_code == 401
    r = client.post("/search", json={"text": QUERY}, headers={"X-API-Key": "s3cre"})
    assert r.status_code == 401 and "X-API-Key" in r.json()["message"]
    assert client.post("/search", json={"text": QUERY}, headers={"X-API-Key": "s3cret"}).status_code == 200
    assert seen[-1] == (b"s3cret", b"s3cret")
    for guarded in ("/info", "/items/0", "/items/0/image"):
        assert client.get(guarded).status_code == 401, guarded
    for open_path in ("/health", "/", "/app.js", "/docs"):
        assert client.get(open_path).status_code == 200, open_path


def test_search_by_uploaded_image_and_for_texts(client, scene_images):
    r = client.post("/search/image", files={"file": ("q.png", png(scene_images[2]))}, data={"limit": "2"})
    assert r.status_code == 200 and r.json()["hits"][0]["id"] == 2
    r = client.post("/search/texts", files={"file": ("q.png", png(scene_images[2]))},
                    data={"limit": "2", "mode": "late"})
    assert {h["payload"]["text"] for h in r.json()["hits"]} == {"red circle left of blue square", "a green star"}
    r = client.post("/search/image", files={"file": ("q.png", png(scene_images[2]))}, data={"filter": "{"})
    assert r.status_code == 400 and "filter is not JSON" in r.json()["message"]
    r = client.post("/search/image", files={"file": ("q.png", png(scene_images[2]))}, data={"limit": "-1"})
    assert r.status_code == 400 and "limit" in r.json()["message"]
    r = client.post("/search/image", files={"file": ("q.txt", b"not an image")})
    assert r.status_code == 400 and "query image" in r.json()["message"]


def test_uploads_over_the_cap_get_413(col, scene_images):
    client = TestClient(create_app(col, max_body_bytes=2000), base_url=LOCAL)
    big = png(scene_images[0].resize((256, 256)))
    assert len(big) > 2000
    r = client.post("/search/image", files={"file": ("q.png", big)})
    assert r.status_code == 413 and "2,000-byte cap" in r.json()["message"]

    def chunks():   # no Content-Length: the body is counted as it arrives
        for start in range(0, len(big), 500):
            yield big[start:start + 500]

    r = client.post("/search", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413


def test_items_and_their_images_come_from_the_records_only(client, col):
    assert client.get("/items/3").json() == {"id": 3, "payload": col.get(3)[0].payload}
    r = client.get("/items/3/image", params={"size": 20})
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(r.content)).size) == 20
    assert client.get("/items/3/image", params={"size": 5000}).status_code == 422
    r = client.get("/items/6/image")   # added from bytes: there is no file to show
    assert r.status_code == 404 and "no stored image file" in r.json()["message"]
    for probe in ("/items/99", "/items/..%2F..%2Fetc%2Fpasswd/image", "/items/%2Fetc%2Fpasswd/image"):
        assert client.get(probe).status_code == 404, probe


def test_add_and_delete_only_when_allowed(tmp_path, tiny_model, scene_images, client):
    assert client.post("/items", files=[("files", ("a.png", png(scene_images[7])))]).status_code == 403
    assert client.delete("/items/0").status_code == 403
    with vq.VitrCollection("writable", path=tmp_path / "store", model=tiny_model) as c:
        app = TestClient(create_app(c, uploads=tmp_path / "uploads", allow_delete=True), base_url=LOCAL)
        data = png(scene_images[7])
        files = [("files", ("mine.png", data)), ("files", ("notes.txt", b"hello")), ("files", ("again.png", data))]
        r = app.post("/items", files=files, data={"metadata": '{"album": "x"}'})
        body = r.json()
        assert r.status_code == 200 and body["added"] == 1
        assert body["failed"][0]["item"] == "notes.txt" and "not an image" in body["failed"][0]["reason"]
        assert body["skipped"] == [{"item": "again.png", "reason": "duplicate of mine.png in this call"}]
        kept = tmp_path / "uploads" / f"{hashlib.sha256(data).hexdigest()}.png"
        assert kept.read_bytes() == data and sorted(p.name for p in (tmp_path / "uploads").iterdir()) == [kept.name]
        item = body["ids"][0]
        assert app.get(f"/items/{item}/image").status_code == 200
        hits = app.post("/search", json={"text": QUERY, "filter": {"album": "x"}}).json()["hits"]
        assert [h["id"] for h in hits] == [item]
        assert app.delete(f"/items/{item}").json() == {"deleted": item}
        assert app.get(f"/items/{item}").status_code == 404 and len(c) == 0


def test_info_and_the_page(client):
    info = client.get("/info").json()
    assert (info["name"], info["images"], info["texts"], info["add"]) == ("served", 7, 2, False)
    assert "location" not in info and info["model"]["name"] == "vitr-tiny-test"
    page = client.get("/")
    assert page.headers["content-type"].startswith("text/html") and "default-src 'self'" in \
        page.headers["content-security-policy"]
    for name in ("/", "/app.js", "/app.css"):   # nothing is fetched from elsewhere
        text = client.get(name).text
        assert "://" not in text and "@import" not in text, name


def test_the_search_page_starts_from_the_library_defaults():
    """The page sends its stage sizes with every search: they start as every other face's."""
    import re
    from pathlib import Path

    from vitr_qdrant import params
    from vitr_qdrant.serve import app as app_module

    page = (Path(app_module.__file__).parent / "page" / "index.html").read_text(encoding="utf-8")
    values = dict(re.findall(r'<input id="(prefetch|candidates)"[^>]* value="(\d+)"', page))
    assert values == {"prefetch": str(params.PREFETCH), "candidates": str(params.CANDIDATES)}
