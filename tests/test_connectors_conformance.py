"""One suite, every backend: the same calls on small random data, checked against numpy.

Every search goes through ``search``, the one staged query that VitrCollection's searches call."""
from __future__ import annotations

import os
import subprocess
import sys
import uuid

import numpy as np
import pytest
from qdrant_client import models

from vitr_qdrant.errors import InputError

from vitr_qdrant.connectors import (CollectionNotFoundError, CollectionSpec, FingerprintMismatchError,
                                    StageCfg, StoredPoint, StoreLockedError, create_backend, make_payload, search)

N, D, R, d, M_TOKENS = 48, 16, 6, 8, 3
FP = {"name": "tiny-test", "dims": {"global": D, "region": d}, "weights_hash": "abc123"}
BACKENDS = ["edge", "local-memory", "local-path", pytest.param("remote", marks=pytest.mark.qdrant_server)]
PERSISTENT = {"edge", "local-path", "remote"}


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    g, r = _unit(rng.normal(size=(N, D))), _unit(rng.normal(size=(N, R, d)))
    meta = [{"color": ["red", "green", "blue"][i % 3], "size": i % 10, "tags": ["a", "b"][: 1 + i % 2]}
            for i in range(N)]
    queries = [(_unit(rng.normal(size=D)), _unit(rng.normal(size=(M_TOKENS, d)))) for _ in range(4)]
    return g, r, meta, queries


def _points(data, ids=None):
    g, r, meta, _ = data
    ids = range(N) if ids is None else ids
    return [StoredPoint(i, g[i], r[i], make_payload(uri=f"img{i}.png", width=32, height=24, metadata=meta[i]))
            for i in ids]


@pytest.fixture(params=BACKENDS)
def kind(request):
    if request.param == "remote" and not os.environ.get("QDRANT_URL"):
        pytest.skip("QDRANT_URL is not set: no Qdrant server to test the remote backend against")
    return request.param


@pytest.fixture
def make(kind, tmp_path):
    """Factory of fresh backends on one storage location; closes (and drops remote) at teardown."""
    made, name = [], f"t{uuid.uuid4().hex[:10]}"

    def _make():
        if kind == "edge":
            b = create_backend(path=tmp_path / "edge")
        elif kind == "local-memory":
            b = create_backend(location=":memory:")
        elif kind == "local-path":
            b = create_backend(path=tmp_path / "local", backend="qdrant-local")
        else:
            b = create_backend(url=os.environ["QDRANT_URL"], api_key=os.environ.get("QDRANT_API_KEY"))
        made.append(b)
        return b

    _make.collection = name
    yield _make
    if kind == "remote":
        made[-1].drop_collection(name)
    for b in made:
        b.close()


@pytest.fixture
def store(make, data):
    b = make()
    b.open_collection(CollectionSpec(make.collection, D, d, fingerprint=FP))
    b.upsert(_points(data))
    return b


def _maxsim(tokens, regions):
    return np.einsum("md,nrd->nmr", tokens, regions).max(-1).sum(-1)


def _brute(data, qg, qt, n_prefetch, keep=None):
    g, r, _, _ = data
    ids = np.arange(N) if keep is None else np.flatnonzero(keep)
    stage1 = ids[np.argsort(-(g[ids] @ qg), kind="stable")[:n_prefetch]]
    late = _maxsim(qt, r[stage1])
    order = np.argsort(-late, kind="stable")
    return stage1[order].tolist(), late[order]


def test_upsert_count_retrieve_roundtrip(store, data):
    g, r, meta, _ = data
    assert store.count() == N
    got = store.retrieve([5, 999, 2], with_vectors=True)
    assert [p.id for p in got] == [5, 2]
    np.testing.assert_allclose(got[0].global_vector, g[5], atol=1e-5)
    np.testing.assert_allclose(got[0].regions, r[5], atol=1e-5)
    assert got[0].payload == {"uri": "img5.png", "width": 32, "height": 24, **meta[5]}
    assert store.retrieve([2])[0].global_vector is None


@pytest.mark.parametrize("n_prefetch", [N, 20, None])   # None: no global stage, MaxSim over all
def test_staged_ranking_equals_brute_force(store, data, n_prefetch):
    for qg, qt in data[3]:
        cands = search(store, qg, qt, limit=10, stages=StageCfg(prefetch_limit=n_prefetch), with_vectors=True)
        want_ids, want_scores = _brute(data, qg, qt, N if n_prefetch is None else n_prefetch)
        assert [c.id for c in cands] == want_ids[:10]
        np.testing.assert_allclose([c.stage_scores["late"] for c in cands], want_scores[:10], atol=1e-4)
        np.testing.assert_allclose([c.stage_scores["global"] for c in cands],
                                   [float(data[0][c.id] @ qg) for c in cands], atol=1e-5)
        for c in cands:  # regions come from the float16 payload copy; the copy never shows in the payload
            np.testing.assert_allclose(c.regions, data[1][c.id], atol=2e-3)
            assert set(c.payload) == {"uri", "width", "height", "color", "size", "tags"}


F_DIM = 5


@pytest.mark.parametrize("n_prefetch", [12, 20])
def test_first_stage_prefetch_equals_brute_force(make, data, n_prefetch):
    """Stage 1 of a collection with first-stage vectors keeps the top N by ``first`` (filters
    applied), stage 2 ranks them by MaxSim; without a query first-stage vector, by ``global``."""
    g, r, meta, queries = data
    first = _unit(np.random.default_rng(3).normal(size=(N, F_DIM)))
    b = make()
    b.open_collection(CollectionSpec(make.collection, D, d, fingerprint=FP, first_dim=F_DIM, first_sha256="f1"))
    b.upsert([StoredPoint(p.id, p.global_vector, p.regions, p.payload, first[p.id]) for p in _points(data)])
    assert (b.spec.first_dim, b.spec.first_sha256) == (F_DIM, "f1")
    keep = np.array([m["color"] != "red" for m in meta])
    for k, (qg, qt) in enumerate(queries):
        qf = first[k * 7]
        for flt, mask in ((None, np.ones(N, bool)), ({"color": ["green", "blue"]}, keep)):
            ids = np.flatnonzero(mask)
            pool = np.array(sorted(ids[np.argsort(-(first[ids] @ qf), kind="stable")[:n_prefetch]]))
            late = _maxsim(qt, r[pool])
            want = pool[np.argsort(-late, kind="stable")][:8].tolist()
            cands = search(b, qg, qt, limit=8, filter=flt, stages=StageCfg(prefetch_limit=n_prefetch), first_vector=qf)
            assert [c.id for c in cands] == want
            without = search(b, qg, qt, limit=8, filter=flt, stages=StageCfg(prefetch_limit=n_prefetch))
            assert [c.id for c in without] == _brute(data, qg, qt, n_prefetch, keep=mask)[0][:8]


def test_first_stage_vectors_are_checked(make, data):
    b = make()
    b.open_collection(CollectionSpec(make.collection, D, d, fingerprint=FP, first_dim=F_DIM, first_sha256="f1"))
    with pytest.raises(InputError, match="first-stage vector must have shape"):
        b.upsert(_points(data, ids=[0]))   # no first vector
    with pytest.raises(InputError, match="first-stage vector must have shape"):
        b.upsert([StoredPoint(1, data[0][1], data[1][1], {}, np.ones(F_DIM + 1, np.float32))])


def test_global_search_equals_brute_force(store, data):
    qg = data[3][0][0]
    hits = search(store, qg, limit=7)
    assert [h.id for h in hits] == np.argsort(-(data[0] @ qg))[:7].tolist()
    assert all(set(h.stage_scores) == {"global"} and h.regions is None for h in hits)
    np.testing.assert_allclose([h.score for h in hits], np.sort(data[0] @ qg)[::-1][:7], atol=1e-5)


@pytest.mark.parametrize("flt, keep", [
    ({"color": "red"}, lambda m: m["color"] == "red"),
    ({"color": ["red", "blue"], "size": {"gte": 2, "lte": 6}},
     lambda m: m["color"] in ("red", "blue") and 2 <= m["size"] <= 6),
    ({"tags": "b"}, lambda m: "b" in m["tags"]),
    (models.Filter(must_not=[models.FieldCondition(key="color", match=models.MatchValue(value="green"))]),
     lambda m: m["color"] != "green"),
])
def test_filters_match_brute_force(store, data, flt, keep):
    qg, qt = data[3][1]
    mask = np.array([keep(m) for m in data[2]])
    hits = search(store, qg, qt, limit=5, filter=flt, stages=StageCfg(prefetch_limit=N))
    assert [h.id for h in hits] == _brute(data, qg, qt, N, mask)[0][:5]
    hits = search(store, qg, qt, limit=5, filter=flt, stages=StageCfg(prefetch_limit=None))
    assert [h.id for h in hits] == _brute(data, qg, qt, N, mask)[0][:5]   # the filter holds without stage 1
    assert store.count(filter=models.Filter(must=[models.FieldCondition(
        key="color", match=models.MatchValue(value="red"))])) == sum(m["color"] == "red" for m in data[2])


def test_searches_create_no_payload_indexes(store, data):
    """Reads never write: a filter on keys without an index works and creates none; indexes are
    created only when asked for."""
    qg, qt = data[3][0]
    mask = np.array([m["color"] == "red" and m["size"] >= 1 for m in data[2]])
    flt = {"color": ["red"], "size": {"gte": 1}, "tags": ["a", "b"]}
    hits = search(store, qg, qt, limit=5, filter=flt, stages=StageCfg(prefetch_limit=N))
    assert [h.id for h in hits] == _brute(data, qg, qt, N, mask)[0][:5]
    assert store.payload_indexes() == {}
    store.create_payload_index("width", "float")
    assert store.payload_indexes() == {"width": "float"}
    with pytest.raises(ValueError):
        store.create_payload_index("height", "colour")
    assert len(search(store, qg, qt, limit=N, filter={"color": "red"})) == 16  # still exact


def test_delete_and_idempotent_reupsert(store, data):
    qg, qt = data[3][2]
    top = search(store, qg, qt, limit=3)[0].id
    store.delete([top, 12345])
    assert store.count() == N - 1 and store.retrieve([top]) == []
    assert top not in [h.id for h in search(store, qg, qt, limit=N)]
    store.upsert(_points(data))
    store.upsert(_points(data, ids=[1, 2]))
    assert store.count() == N
    assert search(store, qg, qt, limit=1)[0].id == top


def test_region_counts_may_vary_per_point(store, data):
    short = StoredPoint(1000, data[0][0], data[1][0][:2], {"kind": "short"})
    store.upsert([short])
    hit = search(store, data[0][0], data[1][0][:2], limit=1, filter={"kind": "short"}, with_vectors=True)[0]
    assert hit.id == 1000 and hit.regions.shape == (2, d)
    assert store.retrieve([1000], with_vectors=True)[0].regions.shape == (2, d)
    counts = search(store, data[0][0], data[1][0][:2], limit=3, rerank=lambda gv, rv: [-len(r) for r in rv])
    assert counts[0].id == 1000 and counts[0].score == -2   # the rerank sees each point's own regions


def test_scroll_lists_every_point(store):
    page, nxt = store.scroll(limit=10)
    assert len(page) == 10 and nxt is not None
    assert sorted(p.id for p in store.iter_points(batch_size=7)) == list(range(N))


def test_set_payload_merges_deletes_keys_and_keeps_vectors(store, data):
    g, r, meta, _ = data
    store.set_payload([3, 4, 999], {"color": "black", "album": "x"}, delete_keys=["size"])
    got = {p.id: p for p in store.retrieve([3, 4, 5], with_vectors=True)}
    assert got[3].payload == {"uri": "img3.png", "width": 32, "height": 24, "tags": meta[3]["tags"],
                              "color": "black", "album": "x"}
    assert got[5].payload == {"uri": "img5.png", "width": 32, "height": 24, **meta[5]}   # untouched
    np.testing.assert_allclose(got[4].regions, r[4], atol=1e-5)
    assert store.count() == N and store.count(models.Filter(must=[models.FieldCondition(
        key="album", match=models.MatchValue(value="x"))])) == 2


def test_rerank_callable_orders_final_hits(store, data):
    qg, qt = data[3][0]
    seen = {}

    def rerank(gv, regions):
        seen["shapes"] = (gv.shape, [r.shape for r in regions])
        return -gv[:, 0], [f"detail of {g[0]:.4f}" for g in gv]

    hits = search(store, qg, qt, limit=4, stages=StageCfg(prefetch_limit=30, late_limit=12), rerank=rerank)
    assert seen["shapes"] == ((12, D), [(R, d)] * 12)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert all(set(h.stage_scores) == {"global", "late", "rerank"} for h in hits)
    np.testing.assert_allclose([h.score for h in hits], [-data[0][h.id][0] for h in hits], atol=1e-5)
    assert [h.detail for h in hits] == [f"detail of {h.global_vector[0]:.4f}" for h in hits]   # each its own
    with pytest.raises(ValueError, match="one detail per candidate"):
        search(store, qg, qt, limit=4, rerank=lambda gv, rv: (gv[:, 0], ["too few"]))


def test_image_search_finds_itself(store, data):
    g, r, _, _ = data
    assert search(store, g[9], r[9], limit=1)[0].id == 9
    hits = search(store, g[9], r[9], limit=5, filter={"color": "green"})
    assert 9 not in [h.id for h in hits] and all(h.payload["color"] == "green" for h in hits)   # 9 is red
    lists = search(store, g[9], r[9], limit=3, rerank=lambda gv, rv: list(gv[:, 0]))
    assert [h.score for h in lists] == sorted(g[[h.id for h in lists], 0].tolist(), reverse=True)


def test_bad_input_raises_clear_errors(store, data):
    qg, qt = data[3][0]
    with pytest.raises(ValueError, match="limit"):
        search(store, qg, qt, limit=0)
    with pytest.raises(ValueError, match="token vectors"):
        search(store, qg, np.zeros((0, d)), limit=3)
    with pytest.raises(ValueError, match="global vector must have shape"):
        store.upsert([StoredPoint(1, np.ones(D + 1), data[1][0])])
    with pytest.raises(ValueError, match="unsupported value"):
        search(store, qg, qt, filter={"color": None})


def test_fingerprint_mismatch_names_both_models(make, store):
    other = dict(FP, weights_hash="zzz999")
    with pytest.raises(FingerprintMismatchError, match="abc123.*zzz999"):
        store.open_collection(CollectionSpec(make.collection, D, d, fingerprint=other))
    with pytest.raises(FingerprintMismatchError):
        store.open_collection(CollectionSpec(make.collection, D, d + 1, fingerprint=FP))
    store.open_collection(CollectionSpec(make.collection, D, d, fingerprint=FP))
    assert store.count() == N


def test_missing_collection_without_create(make):
    with pytest.raises(CollectionNotFoundError):
        make().open_collection(CollectionSpec("nope" + make.collection, D, d), create=False)


def test_reopen_persisted_store(kind, make, store, data):
    if kind not in PERSISTENT:
        pytest.skip(f"{kind} does not persist")
    qg, qt = data[3][3]
    before = [(h.id, round(h.score, 4)) for h in search(store, qg, qt, limit=5)]
    store.close()
    b = make()
    assert b.read_metadata(make.collection)["fingerprint"] == FP
    assert make.collection in b.list_collections()
    b.open_collection(CollectionSpec(make.collection, D, d, fingerprint=FP, regions_in_payload=False), create=False)
    assert b.spec.regions_in_payload  # the options the collection was created with win
    assert b.count() == N
    assert [(h.id, round(h.score, 4)) for h in search(b, qg, qt, limit=5)] == before


def test_second_open_of_embedded_store_is_refused(kind, make, store):
    if kind not in ("edge", "local-path"):
        pytest.skip(f"{kind} has no single-process lock")
    with pytest.raises(StoreLockedError, match="already open"):
        make().open_collection(CollectionSpec(make.collection, D, d, fingerprint=FP))


def test_edge_lock_is_held_across_processes(tmp_path):
    b = create_backend(path=tmp_path)
    b.open_collection(CollectionSpec("shared", D, d))
    code = ("import sys; from vitr_qdrant.connectors import *\n"
            "try:\n create_backend(path=sys.argv[1]).open_collection(CollectionSpec('shared', 16, 8))\n"
            "except StoreLockedError as e: print('LOCKED', e)\n")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert "LOCKED" in out.stdout and f"process {os.getpid()}" in out.stdout, out.stderr
    b.close()
    b.open_collection(CollectionSpec("shared", D, d))  # released on close
    b.close()


def test_edge_without_wal_persists_and_auto_optimizes(tmp_path, data):
    spec = CollectionSpec("nowal", D, d, fingerprint=FP)
    with create_backend(path=tmp_path, wal=False, optimize_every=10) as b:
        b.open_collection(spec)
        b.upsert(_points(data))
        assert b._pending == 0  # 48 >= 10 points since the last build: indexes were built
    with create_backend(path=tmp_path) as b:
        b.open_collection(spec)
        qg, qt = data[3][0]
        assert b.count() == N and [c.id for c in search(b, qg, qt, limit=5)] == _brute(data, qg, qt, 200)[0][:5]


@pytest.mark.parametrize("options", [{"quantize_regions": True}, {"regions_datatype": "float16"},
                                     {"regions_in_payload": False},
                                     {"regions_datatype": "turbo8", "regions_in_payload": False}])
def test_compact_regions_keep_the_ranking(make, data, options):
    b = make()
    b.open_collection(CollectionSpec(make.collection, D, d, fingerprint=FP, **options))
    b.upsert(_points(data))
    b.optimize()
    for qg, qt in data[3]:
        cands = search(b, qg, qt, limit=3, stages=StageCfg(prefetch_limit=N), with_vectors=True)
        assert cands[0].id == _brute(data, qg, qt, N)[0][0]
        atol = 1e-2 if options.get("regions_datatype") == "turbo8" else 2e-3  # 8 bits a dimension
        np.testing.assert_allclose(cands[0].regions, data[1][cands[0].id], atol=atol)


def test_backends_agree(tmp_path, data):
    specs = CollectionSpec("agree", D, d, fingerprint=FP)
    results = {}
    for name, b in [("edge", create_backend(path=tmp_path / "e")), ("memory", create_backend(location=":memory:"))]:
        with b:
            b.open_collection(specs)
            b.upsert(_points(data))
            results[name] = [[(c.id, round(c.score, 3)) for c in search(b, qg, qt, limit=8,
                              stages=StageCfg(prefetch_limit=25))] for qg, qt in data[3]]
    assert results["edge"] == results["memory"]
