"""A request fuzz of every endpoint of `vitr serve` (hypothesis): whatever a client sends, the
answer is never a 5xx, and the next request on the same keep-alive connection still succeeds."""
from __future__ import annotations

import json
import threading
import time
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import vitr_qdrant as vq
from vitr_qdrant.serve import create_app

from test_collection import free_port, png
from test_serve_safety import bomb_png

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
HUGE = st.sampled_from([2**63, 2**64, 2**70, -2**63 - 1, -2**64, 10**400])
SCALARS = st.none() | st.booleans() | st.integers() | HUGE | st.floats(allow_nan=False, allow_infinity=False) | \
    st.text(max_size=12)
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                          max_size=3), max_leaves=6)
RANGES = st.fixed_dictionaries({}, optional={k: JSON for k in ("gt", "gte", "lt", "lte")}) | \
    st.dictionaries(st.text(max_size=4), JSON, max_size=2)
KEYS = st.sampled_from(["year", "kind", "uri", "a.b", ""]) | st.text(max_size=8)
FILTERS = st.dictionaries(KEYS, st.one_of(RANGES, RANGES, JSON, st.lists(SCALARS, max_size=3)), min_size=1,
                          max_size=3) | JSON
FUZZED = {("post", "/search"), ("post", "/search/image"), ("post", "/search/texts"), ("get", "/items/{item_id}"),
          ("get", "/items/{item_id}/image"), ("delete", "/items/{item_id}"), ("post", "/items"), ("get", "/info"),
          ("get", "/health")}
"""The endpoints the tests below send to (each request is checked against this list)."""


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_model, scene_files, scene_images):
    """The service (uploads and deletes on) on a real port; yields (base url, a keep-alive client, images)."""
    import uvicorn

    folder = tmp_path_factory.mktemp("fuzz")
    col = vq.VitrCollection("fuzzed", path=folder / "store", model=tiny_model)
    col.add_images(scene_files, ids=[0, 1, 2, "3", "x", "y"], metadata={"year": 2020}, progress=False)
    col.add_texts(["a red circle"])
    app = create_app(col, uploads=folder / "up", allow_delete=True, max_body_bytes=200_000)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        yield Served((app, client, [png(scene_images[7]), png(scene_images[7])[:100], b"", b"not an image",
                                    bomb_png()]))
    server.should_exit = True
    thread.join(10)
    col.close()


class Served(tuple):
    """(app, client, upload bodies), with a short repr for hypothesis' reports."""

    def __repr__(self) -> str:
        return "<the served app, a client and 5 upload bodies>"


def check(client: httpx.Client, method: str, route: str, response: httpx.Response) -> None:
    assert (method, route) in FUZZED
    assert response.status_code < 500, (method, route, response.status_code, response.text[:300])
    assert response.headers.get("connection", "").lower() != "close"
    assert client.get("/health").status_code == 200   # the same connection still serves


def one_fuzzed(valid: dict, fuzzed: dict[str, st.SearchStrategy], weights: dict[str, int]) -> st.SearchStrategy:
    """A valid request with one field fuzzed, so that the fuzz reaches every field's own checks."""
    return st.one_of([st.builds(lambda v, k=k: {**valid, k: v}, strategy)
                      for k, strategy in fuzzed.items() for _ in range(weights.get(k, 1))])


VALID_BODY = {"text": "red circle left of blue square", "limit": 3, "mode": "late", "prefetch": 50, "candidates": 10}
BODIES = one_fuzzed(VALID_BODY, {"text": st.text(max_size=30) | JSON, "limit": JSON, "filter": FILTERS, "mode": JSON,
                                 "prefetch": JSON, "candidates": JSON, "other": JSON}, {"filter": 6})


@given(body=BODIES)
@FUZZ
def test_search(served, body):
    _, client, _ = served
    check(client, "post", "/search", client.post("/search", json=body))


@given(raw=st.binary(max_size=200))
@FUZZ
def test_search_raw_bodies(served, raw):
    _, client, _ = served
    check(client, "post", "/search", client.post("/search", content=raw, headers={"Content-Type": "application/json"}))


VALID_FORM = {"limit": "3", "prefetch": "50", "candidates": "10"}
NUMBER_FIELD = st.text(max_size=8) | HUGE.map(str) | st.integers().map(str)
FORMS = one_fuzzed(VALID_FORM, {"limit": NUMBER_FIELD, "prefetch": NUMBER_FIELD, "candidates": NUMBER_FIELD,
                                "mode": st.text(max_size=8), "filter": FILTERS.map(json.dumps) | st.text(max_size=20)},
                   {"filter": 4})


@pytest.mark.parametrize("route", ["/search/image", "/search/texts"])
@given(form=FORMS, pick=st.sampled_from([0, 0, 0, 1, 2, 3, 4]), extra=st.binary(max_size=64))
@FUZZ
def test_search_by_upload(served, route, form, pick, extra):
    _, client, files = served
    data = files[pick] if pick else files[0] + extra   # bytes after a PNG's end are ignored
    check(client, "post", route, client.post(route, files={"file": ("q.png", data)}, data=form))


ITEM_IDS = st.text(min_size=1, max_size=30) | st.integers(-2**70, 2**70).map(str) | st.sampled_from(["0", "3", "x"])
QUERY = st.fixed_dictionaries({}, optional={"id_type": st.sampled_from(["auto", "int", "str"]) | st.text(max_size=6),
                                            "size": st.integers(-5, 5000).map(str) | st.text(max_size=6)})


@given(item=ITEM_IDS, params=QUERY)
@FUZZ
def test_items(served, item, params):
    _, client, _ = served
    path = f"/items/{quote(item, safe='')}"
    check(client, "get", "/items/{item_id}", client.get(path, params=params))
    check(client, "get", "/items/{item_id}/image", client.get(path + "/image", params=params))


@given(item=ITEM_IDS, params=QUERY)
@FUZZ
def test_delete(served, item, params):
    _, client, _ = served
    check(client, "delete", "/items/{item_id}", client.delete(f"/items/{quote(item, safe='')}", params=params))


@given(picks=st.lists(st.integers(0, 4), min_size=0, max_size=3), metadata=JSON.map(json.dumps) | st.text(max_size=20),
       names=st.text(max_size=20))
@FUZZ
def test_add(served, picks, metadata, names):
    _, client, files = served
    upload = [("files", (names or "f", files[p])) for p in picks] or [("other", ("f", b"x"))]
    check(client, "post", "/items", client.post("/items", files=upload, data={"metadata": metadata}))


@given(junk=st.dictionaries(st.text(min_size=1, max_size=8).filter(str.isalnum), st.text(max_size=8), max_size=3))
@FUZZ
def test_gets(served, junk):
    _, client, _ = served
    for route in ("/info", "/health"):
        check(client, "get", route, client.get(route, params=junk))


def test_every_endpoint_is_fuzzed(served):
    app, _, _ = served
    endpoints = {(method, path) for path, ops in app.openapi()["paths"].items() for method in ops}
    assert endpoints and endpoints <= FUZZED, endpoints - FUZZED
