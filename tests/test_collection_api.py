"""The collection API a Qdrant user expects: lifecycle, items, paging, thresholds, batch and async search."""
from __future__ import annotations

import asyncio
import shutil
import threading
import time

import pytest

import vitr_qdrant as vq
from vitr_qdrant.params import SearchParams

QUERIES = ["red circle left of blue square", "green triangle above red circle", "blue square"]


@pytest.fixture()
def store(tmp_path):
    return tmp_path / "store"


@pytest.fixture()
def col(store, tiny_model, scene_images):
    c = vq.VitrCollection("scenes", path=store, model=tiny_model)
    c.add_images(scene_images[:8], ids=list(range(8)), metadata=[{"i": i, "kind": "ab"[i % 2]} for i in range(8)],
                 progress=False)
    yield c
    c.close()


def ids(hits):
    return [h.id for h in hits]


# --- search parameters --------------------------------------------------------------------
@pytest.mark.parametrize("bad", [dict(limit=0), dict(limit=1001), dict(limit=2.0), dict(offset=-1),
                                 dict(prefetch=0), dict(candidates=0), dict(mode="clip"),
                                 dict(score_threshold=float("inf")), dict(filter=["kind"]),
                                 dict(filter={"kind": object()})])
def test_bad_search_parameters_are_input_errors_before_any_encoding(col, bad, monkeypatch):
    monkeypatch.setattr(col.model, "encode_queries", lambda *a, **k: pytest.fail("encoded before checking"))
    with pytest.raises(vq.InputError):
        col.search("red circle", **bad)
    with pytest.raises(vq.InputError):
        col.search_batch(["red circle"], **bad)
    with pytest.raises(vq.InputError):
        SearchParams(**bad)


def test_offset_pages_through_the_same_ranking(col):
    full = col.search(QUERIES[0], limit=6, mode="vitr")
    assert ids(col.search(QUERIES[0], limit=2, offset=2, mode="vitr")) == ids(full[2:4])
    assert ids(col.search(QUERIES[0], limit=4, offset=6, mode="vitr")) == ids(col.search(QUERIES[0], limit=8)[6:])
    assert col.search(QUERIES[0], limit=3, offset=8) == []


@pytest.mark.parametrize("mode", ["vitr", "late", "global"])
def test_score_threshold_leaves_out_lower_scores(col, mode):
    full = col.search(QUERIES[0], limit=8, mode=mode)
    cut = (full[2].score + full[3].score) / 2
    kept = col.search(QUERIES[0], limit=8, mode=mode, score_threshold=cut)
    assert ids(kept) == ids(full[:3])
    assert col.search(QUERIES[0], mode=mode, score_threshold=full[0].score + 1.0) == []


def test_search_batch_equals_searches_one_by_one_with_one_model_call(col, monkeypatch):
    expected = [col.search(q, limit=4, filter={"kind": "a"}) for q in QUERIES]
    calls = []
    encode = col.model.encode_queries
    monkeypatch.setattr(col.model, "encode_queries", lambda texts, *a, **k: calls.append(list(texts)) or encode(texts))
    got = col.search_batch(QUERIES, limit=4, filter={"kind": "a"})
    assert calls == [QUERIES]
    assert [ids(h) for h in got] == [ids(h) for h in expected]
    for hits, want in zip(got, expected):
        assert [h.score for h in hits] == pytest.approx([h.score for h in want], abs=1e-4)
        assert all(h.payload["kind"] == "a" for h in hits)
    assert col.search_batch([]) == []
    with pytest.raises(vq.InputError):
        col.search_batch("one string")
    with pytest.raises(vq.InputError):
        col.search_batch(["ok", " "])


def test_params_object_is_accepted_as_is(col):
    p = SearchParams(limit=3, offset=1, mode="late")
    assert ids(col.search(QUERIES[1], params=p)) == ids(col.search(QUERIES[1], limit=3, offset=1, mode="late"))
    with pytest.raises(vq.InputError, match="valid"):
        SearchParams.create(p, top_k=3)


# --- lifecycle ------------------------------------------------------------------------------
def test_create_false_refuses_a_typo_and_names_what_exists(col, store, tiny_model):
    with pytest.raises(vq.CollectionNotFoundError, match="scenes") as err:
        vq.VitrCollection("scenez", path=store, model=tiny_model, create=False)
    assert "create=True" in str(err.value)
    assert vq.list_collections(path=store) == ["scenes"]   # nothing was created


def test_create_false_fails_before_any_model_loads(col, store, monkeypatch):
    import vitr_qdrant.collection as collection

    monkeypatch.setattr(collection, "load_model", lambda *a, **k: pytest.fail("a model was loaded"))
    with pytest.raises(vq.CollectionNotFoundError):
        vq.VitrCollection("scenez", path=store, create=False)
    with pytest.raises(vq.InputError, match="collection name"):
        vq.VitrCollection("bad name!", path=store)
    with pytest.raises(vq.InputError, match="max_search_threads"):
        vq.VitrCollection("scenes", path=store, max_serach_threads=2)


def test_drop_leaves_nothing_on_disk(col, store):
    col.add_texts(["red circle", "blue square"])
    assert sorted(p.name for p in store.iterdir()) == ["scenes", "scenes__texts"]
    col.drop()
    assert list(store.iterdir()) == []
    assert vq.list_collections(path=store) == []


def test_list_collections_of_a_missing_store_creates_nothing(tmp_path, col, store, tiny_model):
    with vq.VitrCollection("other", path=store, model=tiny_model):
        pass
    assert vq.list_collections(path=store) == ["other", "scenes"]
    assert vq.list_collections(path=tmp_path / "nowhere") == []
    assert not (tmp_path / "nowhere").exists()


def test_model_none_opens_with_the_recorded_model(tmp_path, store, tiny_model, scene_images):
    model_dir = tiny_model.save(tmp_path / "my-model")
    loaded = vq.load_model(model_dir, device="cpu")
    with vq.VitrCollection("mine", path=store, model=loaded) as c:
        c.add_images(scene_images[:2], progress=False)
    with vq.VitrCollection("mine", path=store) as c:
        assert c.model.fingerprint == loaded.fingerprint and len(c) == 2
    shutil.rmtree(model_dir)
    with pytest.raises(vq.ModelNotFoundError, match="model='path/to/vitr-tiny-test'"):
        vq.VitrCollection("mine", path=store)


def test_model_none_opens_a_bundled_model_named_by_the_fingerprint(store):
    scenes = vq.load_model("vitr-scenes-s", device="cpu")
    vq.VitrCollection("built-with-scenes", path=store, model=scenes).close()
    with vq.VitrCollection("built-with-scenes", path=store) as c:
        assert c.model.cfg.name == "vitr-scenes-s"


# --- items ----------------------------------------------------------------------------------
def test_scroll_count_and_get(col):
    every = list(col.scroll())
    assert sorted(r.id for r in every) == list(range(8))
    assert [r.id for r in col.scroll(batch_size=3)] == [r.id for r in every]   # a stable order
    assert [r.id for r in col.scroll(offset=2, limit=3)] == [r.id for r in every[2:5]]
    assert {r.id for r in col.scroll(filter={"kind": "a"})} == {0, 2, 4, 6}
    assert col.count() == len(col) == 8 and col.count({"kind": "b"}) == 4
    assert col.count({"i": {"gte": 5}}) == 3
    assert [r.id for r in col.get([3, 99, 1])] == [3, 1]
    with pytest.raises(vq.InputError):
        list(col.scroll(limit=-1))


def test_set_metadata_merges_or_replaces_without_reencoding(col, monkeypatch):
    before = col.search(QUERIES[0], limit=8, mode="late")
    monkeypatch.setattr(col.model, "encode_images", lambda *a, **k: pytest.fail("re-encoded"))
    assert col.set_metadata([1, 2, 404], {"album": "x", "kind": "c"}) == 2
    rec = col.get(1)[0].payload
    assert (rec["album"], rec["kind"], rec["i"]) == ("x", "c", 1) and rec["sha256"]
    assert col.count({"album": "x"}) == 2
    assert col.set_metadata(2, {"album": "y"}, replace=True) == 1
    rec = col.get(2)[0].payload
    assert rec["album"] == "y" and "kind" not in rec and "i" not in rec and rec["sha256"]
    after = col.search(QUERIES[0], limit=8, mode="late")
    assert [(h.id, round(h.score, 4)) for h in after] == [(h.id, round(h.score, 4)) for h in before]
    with pytest.raises(vq.InputError, match="reserved"):
        col.set_metadata(1, {"uri": "elsewhere"})


# --- async ----------------------------------------------------------------------------------
def test_async_collection_runs_concurrent_calls_off_the_loop(col):
    expected = [ids(col.search(q, limit=3)) for q in QUERIES]
    face = vq.AsyncVitrCollection.of(col)
    search = col.search
    running, inflight = threading.Event(), [0]

    def slow_search(*args, **kwargs):
        inflight[0] += 1
        running.set()
        try:
            time.sleep(0.2)   # a blocking call: the loop must keep turning meanwhile
            return search(*args, **kwargs)
        finally:
            inflight[0] -= 1

    col.search = slow_search

    async def main():
        ticks = 0   # loop turns seen while a search runs (none if the searches blocked the loop)

        async def ticker():
            nonlocal ticks
            while not running.is_set():
                await asyncio.sleep(0.001)
            for _ in range(20):
                ticks += inflight[0] > 0
                await asyncio.sleep(0.005)

        results, _ = await asyncio.gather(asyncio.gather(*[face.search(q, limit=3) for q in QUERIES * 3]), ticker())
        counted, batch = await asyncio.gather(face.count({"kind": "a"}), face.search_batch(QUERIES, limit=3))
        with pytest.raises(vq.InputError):
            await face.search(QUERIES[0], limit=0)
        return ticks, results, counted, batch

    try:
        ticks, results, counted, batch = asyncio.run(main())
    finally:
        del col.search
    assert ticks >= 10   # 9 searches of >= 0.2 s each outlast 20 turns of 5 ms
    assert [ids(h) for h in results] == expected * 3
    assert counted == 4 and [ids(h) for h in batch] == expected
    assert vq.AsyncVitrCollection.of(col) is face


def test_async_open_add_and_drop(store, tiny_model, scene_images):
    async def main():
        face = await vq.AsyncVitrCollection.open("async", path=store, model=tiny_model)
        report = await face.add_images(scene_images[:3], ids=[1, 2, 3])
        await face.set_metadata(2, {"album": "z"})
        got = [r.id for r in await face.scroll(filter={"album": "z"})]
        await face.drop()
        return report.added, got

    assert asyncio.run(main()) == (3, [2])
    assert vq.list_collections(path=store) == []


def test_async_collection_opens_like_vitr_collection(store, tiny_model):
    async def main():
        face = vq.AsyncVitrCollection("direct", path=store, model=tiny_model)
        n = await face.count()
        await face.close()
        return n

    assert asyncio.run(main()) == 0
    assert vq.list_collections(path=store) == ["direct"]
    with pytest.raises(vq.CollectionNotFoundError):
        vq.AsyncVitrCollection("other", path=store, model=tiny_model, create=False)
