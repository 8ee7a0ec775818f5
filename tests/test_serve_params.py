"""The service takes the library's search parameters and awaits searches off its event loop."""
from __future__ import annotations

import asyncio

import httpx
import pytest

import vitr_qdrant as vq
from vitr_qdrant.serve import create_app

QUERIES = ["red circle left of blue square", "blue square", "green triangle above red circle"]


@pytest.fixture(scope="module")
def col(tmp_path_factory, tiny_model, scene_images):
    c = vq.VitrCollection("served", path=tmp_path_factory.mktemp("store"), model=tiny_model)
    c.add_images(scene_images[:6], ids=list(range(6)), progress=False)
    yield c
    c.close()


def post_all(app, bodies):
    async def main():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:   # loopback: the service answers no other host
            return await asyncio.gather(*[client.post("/search", json=b) for b in bodies])

    return asyncio.run(main())


def test_concurrent_requests_get_what_the_library_returns(col):
    bodies = [{"text": q, "limit": 3, "offset": 1, "prefetch": None} for q in QUERIES] * 3
    responses = post_all(create_app(col), bodies)
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    want = [[h.id for h in col.search(q, limit=3, offset=1, prefetch=None)] for q in QUERIES] * 3
    assert [[h["id"] for h in r.json()["hits"]] for r in responses] == want


def test_score_threshold_over_http(col):
    full = col.search(QUERIES[0], limit=6)
    cut = full[1].score - 1e-6
    (r,) = post_all(create_app(col), [{"text": QUERIES[0], "limit": 6, "score_threshold": cut}])
    assert [h["id"] for h in r.json()["hits"]] == [h.id for h in full[:2]]
    assert all("probability" in h for h in r.json()["hits"])
