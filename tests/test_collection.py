"""VitrCollection end to end with the tiny model: bad inputs, idempotence, persistence, search."""
from __future__ import annotations

import io
import socket

import numpy as np
import pytest
from PIL import Image
from qdrant_client import models

import vitr_qdrant as vq
from vitr_qdrant.connectors import FingerprintMismatchError, StoreLockedError
from vitr_qdrant.encoders.modes import MODES

FAST = {"url_retries": 2, "url_backoff": 0.0, "url_timeout": 1.0, "url_allow": ["127.0.0.1"]}
QUERY = "red circle left of blue square"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture()
def col(tmp_path, tiny_model, scene_images):
    """An edge collection holding six scenes with metadata ``i`` and ``kind`` (a/b)."""
    c = vq.VitrCollection("scenes", path=tmp_path / "store", model=tiny_model, settings=FAST)
    meta = [{"i": i, "kind": "ab"[i % 2]} for i in range(6)]
    report = c.add_images(scene_images[:6], metadata=meta, progress=False)
    assert (report.added, report.skipped, report.failed) == (6, 0, [])
    yield c
    c.close()


def test_mixed_good_and_bad_inputs(tmp_path, tiny_model, scene_images):
    folder = tmp_path / "photos"
    (folder / "nested").mkdir(parents=True)
    scene_images[0].save(folder / "a.png")
    scene_images[1].save(folder / "nested" / "b.jpg")
    (folder / "readme.txt").write_text("skipped: not an image extension")
    (tmp_path / "fake.png").write_text("not an image")
    (tmp_path / "cut.png").write_bytes(png(scene_images[2])[:100])
    bomb = tmp_path / "bomb.png"
    from test_ingest import bomb_png
    bomb.write_bytes(bomb_png())
    good = [folder, png(scene_images[3]), np.asarray(scene_images[4]), scene_images[5]]
    bad = {str(tmp_path / "missing.png"): "no such file", str(tmp_path / "fake.png"): "not a readable image",
           str(tmp_path / "cut.png"): "readable", str(bomb): "bomb",
           f"http://127.0.0.1:{free_port()}/x.png": "gave up after 2 attempt", "<dict>": "unsupported"}
    items = good + [k for k in bad if k != "<dict>"] + [{"not": "an image"}]
    with vq.VitrCollection("mixed", path=tmp_path / "store", model=tiny_model, settings=FAST) as c:
        report = c.add_images(items, progress=False)
        assert report.added == 5 and report.skipped == 0 and len(c) == 5
        reasons = dict(report.failed)
        assert set(reasons) == set(bad)
        for item, expected in bad.items():
            assert expected in reasons[item], (item, reasons[item])
        again = c.add_images(items, progress=False)
        assert (again.added, again.skipped, len(again.failed)) == (0, 5, 6)
        assert again.ids == report.ids and len(c) == 5


def test_report_names_every_skipped_item(tmp_path, tiny_model, scene_images):
    for name in ("a.png", "b.png"):   # the same image twice, under two names
        scene_images[0].save(tmp_path / name)
    with vq.VitrCollection("dups", path=tmp_path / "store", model=tiny_model) as c:
        report = c.add_images([tmp_path / "a.png", tmp_path / "b.png"], progress=False)
        assert report.added == 1 and report.skipped_items == [
            (str(tmp_path / "b.png"), f"duplicate of {tmp_path / 'a.png'} in this call")]
        again = c.add_images([tmp_path / "a.png"], progress=False)
        assert again.skipped_items == [(str(tmp_path / "a.png"), "already stored")] and again.skipped == 1


def test_reopen_finds_everything(tmp_path, tiny_model, scene_images):
    store = tmp_path / "store"
    with vq.VitrCollection("keep", path=store, model=tiny_model) as c:
        report = c.add_images(scene_images, ids=list(range(100, 108)), progress=False)
        c.add_texts(["red circle above blue square"])
        before = [h.id for h in c.search(QUERY, limit=8)]
    with vq.VitrCollection("keep", path=store, model=tiny_model) as c:
        assert len(c) == 8 and report.ids == list(range(100, 108))
        assert [h.id for h in c.search(QUERY, limit=8)] == before
        assert [r.id for r in c.get([101, 107, 999])] == [101, 107]
        assert c.info()["texts"] == 1 and c.info()["images"] == 8
        assert c.add_images(scene_images, ids=list(range(100, 108)), progress=False).skipped == 8


def test_compact_storage_ranks_like_the_default_and_is_kept_on_reopen(tmp_path, tiny_model, scene_images):
    hits = {}
    for kind, options in (("default", {}), ("compact", {"regions_datatype": "turbo8", "regions_in_payload": False})):
        with vq.VitrCollection(kind, path=tmp_path / kind, model=tiny_model, **options) as c:
            c.add_images(scene_images, ids=list(range(8)), progress=False)
            hits[kind] = [c.search(q, limit=3) for q in (QUERY, "green star below gray circle")]
    for full, compact in zip(hits["default"], hits["compact"]):
        assert [h.id for h in compact][:1] == [h.id for h in full][:1]
        np.testing.assert_allclose([h.score for h in compact], [h.score for h in full], atol=0.05)
    with vq.VitrCollection("compact", path=tmp_path / "compact", model=tiny_model) as c:
        assert c.info()["stored"]["options"]["regions_datatype"] == "turbo8"
        assert c.search(QUERY, limit=3)[0].id == hits["compact"][0][0].id


def test_hnsw_options_reach_the_engine_and_are_kept_on_reopen(tmp_path, tiny_model):
    import json

    with vq.VitrCollection("h", path=tmp_path, model=tiny_model, hnsw_m=8, hnsw_ef_construct=50) as c:
        assert {k: c.info()["stored"]["options"][k] for k in ("hnsw_m", "hnsw_ef_construct")} == \
            {"hnsw_m": 8, "hnsw_ef_construct": 50}
    engine = json.loads((tmp_path / "h" / "shard" / "edge_config.json").read_text())["vectors"]
    assert (engine["global"]["hnsw_config"]["m"], engine["global"]["hnsw_config"]["ef_construct"]) == (8, 50)
    assert engine["regions"]["hnsw_config"]["m"] == 0   # regions only rerank
    with vq.VitrCollection("h", path=tmp_path, model=tiny_model, hnsw_m=32) as c:   # what was stored wins
        assert (c._store.spec.hnsw_m, c._store.spec.hnsw_ef_construct) == (8, 50)
    with vq.VitrCollection("m", location=":memory:", model=tiny_model, hnsw_m=12, hnsw_ef_construct=40) as c:
        hnsw = c._store.client.get_collection("m").config.params.vectors["global"].hnsw_config
        assert (hnsw.m, hnsw.ef_construct) == (12, 40)
    for bad in ({"hnsw_m": 0}, {"hnsw_ef_construct": -1}, {"hnsw_m": "16"}, {"hnsw_m": True}):
        with pytest.raises(vq.InputError, match=next(iter(bad))):
            vq.VitrCollection("bad", path=tmp_path / "bad", model=tiny_model, **bad)
    assert not (tmp_path / "bad").exists()   # refused before anything opened


def test_interrupted_ingest_resumes(tmp_path, tiny_model, scene_images, monkeypatch):
    c = vq.VitrCollection("resume", path=tmp_path, model=tiny_model)
    real, batches = c._store.upsert, []

    def power_cut_on_second_batch(points):
        batches.append(len(points))
        if len(batches) == 2:
            raise ConnectionError("power cut")
        real(points)

    monkeypatch.setattr(c._store, "upsert", power_cut_on_second_batch)
    with pytest.raises(ConnectionError):
        c.add_images(scene_images, batch_size=3, progress=False)
    c.close()
    with vq.VitrCollection("resume", path=tmp_path, model=tiny_model) as c:
        assert len(c) == 3                                   # the acknowledged first batch
        report = c.add_images(scene_images, batch_size=3, progress=False)
        assert (report.added, report.skipped, len(c)) == (5, 3, 8)


def test_search_hits_and_grounding(tmp_path, tiny_model, scene_images):
    wide = Image.new("RGB", (96, 64), "white")
    wide.paste(scene_images[0], (16, 0))
    with vq.VitrCollection("g", path=tmp_path / "s", model=tiny_model) as c:
        c.add_images([wide], ids=["wide"], progress=False)
        (hit,) = c.search(QUERY, limit=5)
    assert hit.id == "wide" and hit.score == hit.scores["vitr"]
    assert set(hit.scores) == {"global", "late", "vitr"} and hit.payload["width"] == 96
    assert [g.word for g in hit.grounding] == QUERY.split()
    for g in hit.grounding:   # boxes lie in the centre crop of the 96x64 image, in pixels
        x0, y0, x1, y1 = g.box
        assert 16 <= x0 < x1 <= 80 and 0 <= y0 < y1 <= 64 and 0 <= g.region < 16


def test_modes_filters_and_limits(col):
    for mode in MODES:
        hits = col.search(QUERY, limit=4, mode=mode)
        assert len(hits) == 4 and [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        assert (hits[0].grounding == []) == (mode == "global")
    only_a = col.search(QUERY, limit=6, filter={"kind": "a"})
    assert len(only_a) == 3 and {h.payload["kind"] for h in only_a} == {"a"}
    flt = models.Filter(must=[models.FieldCondition(key="i", range=models.Range(gte=4))])
    assert sorted(h.payload["i"] for h in col.search(QUERY, limit=6, filter=flt)) == [4, 5]
    for bad in ("", "   "):
        with pytest.raises(ValueError, match="non-empty"):
            col.search(bad)
    with pytest.raises(ValueError, match="limit"):
        col.search(QUERY, limit=0)
    with pytest.raises(ValueError, match="mode"):
        col.search(QUERY, mode="fast")


def test_a_head_less_model_searches_late_as_maxsim(tmp_path, scene_images):
    model = vq.create_model("vitr-tiny-test", device="cpu")
    with vq.VitrCollection("headless", path=tmp_path, model=model) as c:
        ids = c.add_images(scene_images, progress=False).ids
        emb, query = model.encode_images(scene_images), model.encode_texts([QUERY]).token_vectors[0]
        by_hand = {i: float((query @ r.T).max(axis=1).sum()) for i, r in zip(ids, emb.region_vectors)}
        hits = c.search(QUERY, limit=8, mode="late")
        assert [h.id for h in hits] == sorted(by_hand, key=by_hand.get, reverse=True)
        np.testing.assert_allclose([h.score for h in hits], [by_hand[h.id] for h in hits], atol=1e-3)
        assert [h.id for h in c.search(QUERY, limit=3)] == [h.id for h in c.search(QUERY, limit=3, mode="global")]
        with pytest.raises(vq.HeadNotTrainedError):
            c.search(QUERY, mode="vitr")


def test_every_search_is_one_call_of_the_staged_query(col, scene_images, monkeypatch):
    """What the connector conformance suite runs on every backend is what the collection runs."""
    import vitr_qdrant.search as S

    calls, real = [], S.staged_search
    monkeypatch.setattr(S, "staged_search", lambda *a, **k: calls.append(k.get("rerank") is not None) or real(*a, **k))
    col.add_texts([QUERY])
    for mode in MODES:
        col.search(QUERY, limit=2, mode=mode)
        col.search_texts(scene_images[0], limit=1, mode=mode)
    col.search_by_image(scene_images[0], limit=2)
    assert calls == [True, True, False, False, False, False, False]   # the rerank in vitr mode only


def test_pipeline_stage_sizes(col, monkeypatch):
    seen = []
    original = col.model.rerank

    def spy(query, g, r):
        seen.append(len(g))
        return original(query, g, r)

    monkeypatch.setattr(col.model, "rerank", spy)
    hits = col.search(QUERY, limit=2, prefetch=4, candidates=3)
    assert seen == [3] and len(hits) == 2
    # stage 1 keeps the top 4 by global cosine: the hits come from there
    top4 = {h.id for h in col.search(QUERY, limit=4, mode="global")}
    assert {h.id for h in hits} <= top4
    assert len(col.search(QUERY, limit=5, prefetch=1, candidates=1)) == 5   # stages grow to the limit


def test_no_global_stage_ranks_every_image_by_maxsim(col):
    """prefetch=None skips stage 1: late-mode hits are the MaxSim order of the whole collection,
    which a prefetch as large as the collection also gives, and vitr mode reranks that order."""
    n = len(col)
    every = [(h.id, round(h.score, 5)) for h in col.search(QUERY, limit=n, mode="late", prefetch=None)]
    assert every == [(h.id, round(h.score, 5)) for h in col.search(QUERY, limit=n, mode="late", prefetch=n)]
    assert [h.id for h in col.search(QUERY, limit=3, prefetch=None)] == \
        [h.id for h in col.search(QUERY, limit=3, prefetch=n)]
    from vitr_qdrant.cli.command import prefetch_option
    assert prefetch_option("all") is None and prefetch_option("30") == 30


def test_delete_get_and_search_by_image(col, scene_images):
    ids = col.add_images(scene_images[:6], progress=False).ids
    assert len(col) == 6
    hits = col.search_by_image(scene_images[2], limit=3)
    assert hits[0].id == ids[2] and hits[0].scores["global"] == pytest.approx(1.0, abs=1e-4)
    col.delete([ids[2], ids[3]])
    col.delete(ids[3])                          # missing ids are ignored
    assert len(col) == 4 and col.get(ids[2:4]) == []
    assert ids[2] not in {h.id for h in col.search_by_image(scene_images[2], limit=6)}


def test_user_ids(tmp_path, tiny_model, scene_images):
    with vq.VitrCollection("ids", location=":memory:", model=tiny_model) as c:
        report = c.add_images(scene_images[:2], ids=["cat", 7], progress=False)
        assert report.ids == ["cat", 7]
        assert {h.id for h in c.search(QUERY, limit=2)} == {"cat", 7}
        assert [r.id for r in c.get("cat")] == ["cat"]
        c.delete("cat")
        assert len(c) == 1
        with pytest.raises(ValueError, match="one per item"):
            c.add_images(scene_images[:2], ids=[1])
        with pytest.raises(ValueError, match="directory"):
            c.add_images([tmp_path], ids=[1])


def test_texts_image_to_text(col, scene_images):
    texts = ["red circle left of blue square", "blue square left of red circle", "green star above gray triangle"]
    report = col.add_texts(texts + ["", 3], metadata={"lang": "en"})
    assert report.added == 3 and len(report.failed) == 2
    assert col.add_texts(texts, metadata={"lang": "en"}).skipped == 3
    hits = col.search_texts(scene_images[0], limit=3)
    assert {h.text for h in hits} == set(texts) and hits[0].payload["lang"] == "en"
    assert [g.word for g in hits[0].grounding] == hits[0].text.split()
    assert all(0 <= v <= 64 for h in hits for g in h.grounding for v in g.box)
    assert len(col) == 6   # texts live in their own collection


def test_wrong_model_is_a_clear_error(tmp_path, tiny_model, scene_images):
    with vq.VitrCollection("fp", path=tmp_path, model=tiny_model) as c:
        c.add_images(scene_images[:1], progress=False)
    other = vq.create_model("vitr-tiny-test", device="cpu")   # other random weights
    with pytest.raises(FingerprintMismatchError, match="built with model vitr-tiny-test") as err:
        vq.VitrCollection("fp", path=tmp_path, model=other)
    assert "load_model('vitr-tiny-test')" in str(err.value) and "--model vitr-tiny-test" in str(err.value)
    objects = vq.create_model("vitr-tiny-objects", device="cpu")   # another model altogether
    with pytest.raises(FingerprintMismatchError, match="opened with model vitr-tiny-objects"):
        vq.VitrCollection("fp", path=tmp_path, model=objects)
    with vq.VitrCollection("fp", path=tmp_path, model=tiny_model) as c:   # lock was released
        assert len(c) == 1


def test_second_open_of_embedded_store(tmp_path, tiny_model):
    with vq.VitrCollection("lock", path=tmp_path, model=tiny_model):
        with pytest.raises(StoreLockedError, match="already open"):
            vq.VitrCollection("lock", path=tmp_path, model=tiny_model)
    vq.VitrCollection("lock", path=tmp_path, model=tiny_model).close()


def test_backend_instance_and_memory_store(tiny_model, scene_images):
    from vitr_qdrant.connectors import create_backend

    with vq.VitrCollection("inst", backend=create_backend(location=":memory:"), model=tiny_model) as c:
        c.add_images(scene_images[:2], progress=False)
        c.add_texts(["red circle left of blue square"])   # the texts collection shares the client
        assert len(c) == 2 and c.info()["texts"] == 1 and c.info()["backend"] == "qdrant-local"
    with pytest.raises(ValueError, match="backend instance"):
        vq.VitrCollection("inst", backend=create_backend(location=":memory:"), model=tiny_model, path="x")


def test_default_location_comes_from_settings(tmp_path, tiny_model, monkeypatch):
    monkeypatch.setenv("VITR_QDRANT_HOME", str(tmp_path / "home"))
    with vq.VitrCollection("where", model=tiny_model) as c:
        assert c.info()["location"] == str(tmp_path / "home")
    assert (tmp_path / "home" / "where").is_dir()


def test_re_adding_without_metadata_keeps_what_was_stored(col, scene_images):
    again = col.add_images(scene_images[:6], progress=False)
    assert (again.added, again.skipped) == (0, 6)
    assert sorted(r.payload["i"] for r in col.get(again.ids)) == list(range(6))
    changed = col.add_images(scene_images[:1], metadata=[{"i": 99, "kind": "c"}], progress=False)
    assert (changed.added, changed.skipped) == (1, 0)
    assert col.get(changed.ids)[0].payload["i"] == 99
    assert len(col) == 6


def test_every_error_is_a_vitr_error(tmp_path, tiny_model):
    """One family: bad input (also a ValueError), model and store errors, all under vq.VitrError."""
    assert issubclass(vq.InputError, ValueError) and issubclass(vq.ImageLoadError, vq.InputError)
    assert issubclass(vq.FetchError, vq.InputError) and issubclass(vq.StoreLockedError, vq.StoreError)
    assert issubclass(vq.HeadNotTrainedError, vq.ModelError) and issubclass(vq.ModelFormatError, vq.ModelError)
    failures = [lambda: vq.VitrCollection("bad name", location=":memory:", model=tiny_model),
                lambda: vq.load_model(tmp_path),
                lambda: vq.load_model("no-such-model"),
                lambda: tiny_model.encode_texts([""])]
    with vq.VitrCollection("lock", path=tmp_path, model=tiny_model) as col:
        failures += [lambda: col.search(QUERY, filter={"kind": None}),
                     lambda: col.search(QUERY, limit=0),
                     lambda: vq.VitrCollection("lock", path=tmp_path, model=tiny_model)]
        for fail in failures:
            with pytest.raises(vq.VitrError):
                fail()
