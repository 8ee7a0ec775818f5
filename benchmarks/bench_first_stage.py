"""Stage 1 designs side by side: does a search keep what the model ranks first, and at what cost (JSON out).

    python benchmarks/bench_first_stage.py cache --n 100000              # encode the gallery once (resumable)
    python benchmarks/bench_first_stage.py designs --sizes 10000 100000 --out designs.json
    python benchmarks/bench_first_stage.py api --sizes 10000 100000 --out api.json
    python benchmarks/bench_first_stage.py stages --n 100000 --queries 400 --seed 11   # stage sizes side by side
    python benchmarks/bench_first_stage.py rebuild --n 20000 --rounds 2   # where one index rebuild's time goes

``cache`` renders Object Scenes of the evaluation protocol's ``test-iid`` seeds (the first scene
of seed 1e9 + k with a related pair) and encodes them with the model, 2,000 a chunk under
``--cache`` (a rerun resumes). Queries are relation captions of gallery scenes (random template,
size words as the sampler draws them), so each is true for at least one image; truth comes from
the spec (``truth``) for every image of the gallery. A query succeeds at k when a true image is
among its top k hits.

``designs`` builds, for each size, one embedded store per design from the cached vectors
(written 256 points a call with add_images' payload, the indexes rebuilt every 20,000 points as
the library does) and runs every query: stage 1 (the design), stage 2 (MaxSim of the query's
token vectors over the union, top 50), stage 3 (the fusion head on those 50), query encoding
included. Designs:

- ``global``: the top N = 200 by the global vector (stage 1 before first-stage vectors);
- ``exact``: no stage 1: MaxSim over every point (``prefetch=None``), the reference;
- ``first``: the union of the top N by ``global`` and by the model's first-stage vector
  (``encoders/first_stage.py``, a 128-d HNSW vector); ``first-only``: the top N by it alone (the
  library's stage 1 now); ``first-light``: the same under a cheaper HNSW (``--first-light-hnsw``);
- ``muvera``: the union of the top N by ``global`` and by a MUVERA fixed-dimensional encoding of
  the regions (fastembed's ``Muvera``; ``--muvera k_sim dim_proj r_reps``) in its own HNSW vector;
- ``pooled``: the union of the top N by ``global`` and by HNSW over the regions pooled to
  ``--pool`` vectors per image (k-means in each image; Qdrant's multivector HNSW, MaxSim);
- ``regions-hnsw``: the union of the top N by ``global`` and by HNSW over the 64 region vectors
  themselves (``--regions-hnsw-max`` caps the sizes it runs at: its index build is the cost).

Each design reports success@1 and @10 (and the same for ``exact``), agreement with ``exact``
(the same top 10 ids), p50 / p95 of a search end to end, ingest seconds and the longest write
call, and bytes per image. ``api`` measures what a user runs: ``VitrCollection.add_images`` of the
rendered scenes and ``col.search(text, limit=10)`` (the default), ``prefetch=None`` and
``mode="global"`` in the same run, with the default's ingest against a collection made without
first-stage vectors.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import qdrant_edge as qe
import torch

from vitr_qdrant.connectors.edge import SEGMENT_KB
from vitr_qdrant.connectors.records import decode_regions, encode_regions
from vitr_qdrant.encoders import load_model
from vitr_qdrant.encoders.data.world import split_rng
from vitr_qdrant.encoders.data.worlds import get_world
from vitr_qdrant.encoders.evaluation import EVAL_SEED, relevance_matrix

from common import disk_bytes, emit  # benchmarks/common.py

CHUNK, BATCH, OPTIMIZE_EVERY, PREFETCH, CANDIDATES, LIMIT = 2000, 256, 20_000, 200, 50, 10
WORLD, SPLIT = "object-scenes", "test-iid"


# --- the gallery and its queries ------------------------------------------------------------------
def scene(k: int) -> Any:
    return get_world(WORLD).first_scene(EVAL_SEED + k, SPLIT)


def cache_gallery(model: Any, n: int, cache: Path) -> None:
    """Encode scenes 0..n-1 into ``cache/chunkNNNNNNN.npz`` (global, regions as float16); resumable."""
    cache.mkdir(parents=True, exist_ok=True)
    world = get_world(WORLD)
    for c0 in range(0, n, CHUNK):
        path = cache / f"chunk{c0:07d}.npz"
        if path.exists():
            continue
        emb = model.encode_images([world.render(scene(k), 128) for k in range(c0, min(n, c0 + CHUNK))],
                                  batch_size=128)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, g=emb.global_vectors.astype(np.float16), r=emb.region_vectors.astype(np.float16))
        tmp.rename(path)
        print(json.dumps({"cached": c0 + len(emb.global_vectors)}), flush=True)


def load_gallery(cache: Path, n: int) -> tuple[np.ndarray, np.ndarray]:
    files = sorted(cache.glob("chunk*.npz"))[: (n + CHUNK - 1) // CHUNK]
    parts = [np.load(f) for f in files]
    g = np.concatenate([p["g"] for p in parts])[:n].astype(np.float32)
    r = np.concatenate([p["r"] for p in parts])[:n]
    if len(g) < n:
        raise SystemExit(f"the cache holds {len(g)} images, {n} asked: run `cache --n {n}` first")
    return g / np.linalg.norm(g, axis=1, keepdims=True), r


def queries(n: int, count: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """``count`` captions of random gallery scenes and their truth over the gallery ([n, count])."""
    world, rng = get_world(WORLD), split_rng(seed, SPLIT, "first-stage-queries")
    picks = rng.choice(n, size=count, replace=False)
    captions = []
    for k in picks:
        (a, rel, b), template, size_words = world.sample_caption(scene(int(k)), rng)
        captions.append(world.caption(a, rel, b, template, size_words))
    return captions, relevance_matrix([scene(k) for k in range(n)], captions, world)


# --- the designs ----------------------------------------------------------------------------------
def kmeans_pool(regions: np.ndarray, k: int, iters: int = 6) -> np.ndarray:
    """(n, R, d) -> (n, k, d): k-means of each image's regions (farthest-point start), unit centroids."""
    x = torch.from_numpy(regions.astype(np.float32))
    idx = [torch.zeros(len(x), dtype=torch.long)]
    for _ in range(k - 1):   # farthest point from the chosen ones
        chosen = torch.stack([x[torch.arange(len(x)), i] for i in idx], 1)
        idx.append((x @ chosen.transpose(1, 2)).max(-1).values.argmin(-1))
    cent = torch.stack([x[torch.arange(len(x)), i] for i in idx], 1)
    for _ in range(iters):
        assign = (x @ cent.transpose(1, 2)).argmax(-1)                      # (n, R)
        onehot = torch.nn.functional.one_hot(assign, k).float()             # (n, R, k)
        sums = onehot.transpose(1, 2) @ x                                   # (n, k, d)
        cent = torch.where(onehot.sum(1)[..., None] > 0, sums, cent)
        cent = torch.nn.functional.normalize(cent, dim=-1)
    return cent.numpy()


def design_vectors(name: str, model: Any, regions: np.ndarray, args: argparse.Namespace
                   ) -> tuple[dict[str, qe.EdgeVectorParams], Callable[[int, int], dict[str, list]],
                              Callable[[Any], list[tuple[str, list]]]]:
    """The extra vector config of design ``name``, the extra vectors of points [a, b), and the
    query's stage 1 prefetches beyond ``global`` (the union of all goes to stage 2)."""
    hnsw = qe.HnswIndexConfig(m=16, ef_construct=100, full_scan_threshold=10_000)
    multi = qe.MultiVectorConfig(qe.MultiVectorComparator.MaxSim)
    d = regions.shape[-1]
    if name in ("global", "exact"):
        return {}, lambda a, b: {}, lambda q: []
    if name == "first-light":   # the first-stage vector under a cheaper HNSW (--first-light-hnsw M EF)
        hnsw = qe.HnswIndexConfig(m=args.first_light_hnsw[0], ef_construct=args.first_light_hnsw[1],
                                  full_scan_threshold=10_000)
    if name in ("first", "first-only", "first-light"):
        # imported here: `latency` runs this script against older checkouts, which lack it
        from vitr_qdrant.encoders.first_stage import encode_all_regions

        stage = model.first_stage
        first = encode_all_regions(stage, regions).numpy()
        return ({"first": qe.EdgeVectorParams(size=stage.cfg.dim, distance=qe.Distance.Cosine, hnsw_config=hnsw)},
                lambda a, b: {"first": first[a:b].tolist()},
                lambda q: [("first", q.first_vector.tolist())])
    if name == "muvera":
        from fastembed.postprocess import Muvera   # pip install fastembed (only this benchmark needs it)

        k_sim, dim_proj, reps = args.muvera
        muv = Muvera(dim=d, k_sim=k_sim, dim_proj=dim_proj, r_reps=reps)
        fde = np.stack([muv.process_document(r.astype(np.float32)) for r in regions]).astype(np.float32)
        return ({"muvera": qe.EdgeVectorParams(size=muv.embedding_size, distance=qe.Distance.Dot, hnsw_config=hnsw)},
                lambda a, b: {"muvera": fde[a:b].tolist()},
                lambda q: [("muvera", muv.process_query(q.token_vectors).astype(np.float32).tolist())])
    if name == "pooled":
        pooled = np.concatenate([kmeans_pool(regions[i:i + 2048], args.pool) for i in range(0, len(regions), 2048)])
        return ({"pooled": qe.EdgeVectorParams(size=d, distance=qe.Distance.Cosine, multivector_config=multi,
                                               hnsw_config=hnsw)},
                lambda a, b: {"pooled": pooled[a:b].tolist()},
                lambda q: [("pooled", q.token_vectors.tolist())])
    if name == "regions-hnsw":
        return ({"regions_hnsw": qe.EdgeVectorParams(size=d, distance=qe.Distance.Cosine, multivector_config=multi,
                                                     hnsw_config=hnsw)},
                lambda a, b: {"regions_hnsw": regions[a:b].astype(np.float32).tolist()},
                lambda q: [("regions_hnsw", q.token_vectors.tolist())])
    raise SystemExit(f"unknown design {name!r}")


def dense(size: int, m: int = 16) -> Any:
    """A cosine vector under HNSW (m = 0: a plain index)."""
    return qe.EdgeVectorParams(size=size, distance=qe.Distance.Cosine,
                               hnsw_config=qe.HnswIndexConfig(m=m, ef_construct=100, full_scan_threshold=10_000))


def raw_shard(path: Path, g: np.ndarray, r: np.ndarray, vectors: dict, **config: Any) -> Any:
    """An edge shard at ``path`` with ``global`` (HNSW), ``regions`` (MaxSim, no HNSW) and ``vectors``."""
    return qe.EdgeShard.create(str(path), qe.EdgeConfig(
        vectors={"global": dense(g.shape[1]),
                 "regions": qe.EdgeVectorParams(size=r.shape[2], distance=qe.Distance.Cosine,
                                                multivector_config=qe.MultiVectorConfig(qe.MultiVectorComparator.MaxSim),
                                                hnsw_config=qe.HnswIndexConfig(m=0, ef_construct=100,
                                                                               full_scan_threshold=10_000)),
                 **vectors},
        optimizers=qe.EdgeOptimizersConfig(max_segment_size=SEGMENT_KB), **config))


def raw_points(g: np.ndarray, r: np.ndarray, a: int, b: int, more: dict) -> list[Any]:
    """Scenes a..b-1 as engine points with add_images' payload (the regions copy included) and
    ``more``'s vectors (one row per point)."""
    return [qe.Point(i, {"global": g[i].tolist(), "regions": r[i].astype(np.float32).tolist(),
                         **{k: v[i - a] for k, v in more.items()}},
                     {"uri": f"/gallery/{i:07d}.png", "sha256": "0" * 64, "width": 128, "height": 128,
                      "_vitr_regions_f16": encode_regions(r[i])}) for i in range(a, b)]


def build_store(path: Path, g: np.ndarray, r: np.ndarray, extra_cfg: dict, extra: Callable) -> tuple[Any, dict]:
    """An edge shard with ``global``, ``regions`` (+ the design's vectors), written as add_images
    writes; its ingest figures."""
    shard = raw_shard(path, g, r, extra_cfg)
    stalls, pending, t_start = [], 0, time.perf_counter()
    for a in range(0, len(g), BATCH):
        b = min(len(g), a + BATCH)
        pts = raw_points(g, r, a, b, extra(a, b))
        t0 = time.perf_counter()
        shard.update(qe.UpdateOperation.upsert_points(pts))
        shard.flush()
        pending += len(pts)
        if pending >= OPTIMIZE_EVERY:
            shard.optimize()
            shard.flush()
            pending = 0
        stalls.append(time.perf_counter() - t0)
    shard.optimize()
    shard.flush()
    return shard, {"ingest_s": round(time.perf_counter() - t_start, 1), "longest_stall_s": round(max(stalls), 2),
                   "bytes_per_image": round(disk_bytes(path)[0] / len(g))}


def run_design(name: str, model: Any, g: np.ndarray, r: np.ndarray, caps: list[str], rel: np.ndarray,
               path: Path, args: argparse.Namespace) -> dict[str, Any]:
    t0 = time.perf_counter()
    extra_cfg, extra, prefetch_of = design_vectors(name, model, r, args)
    prep = time.perf_counter() - t0
    shard, out = build_store(path, g, r, extra_cfg, extra)
    out["prepare_s"] = round(prep, 1)
    ranked, times = [], []
    for text in caps:
        t0 = time.perf_counter()
        q = model.encode_queries([text])[0]
        g_q = qe.Query.Nearest(q.global_vector.tolist(), using="global")
        stage1 = None if name == "exact" else [qe.Prefetch(limit=PREFETCH, query=g_q)][name in ("first-only", "first-light"):] + [
            qe.Prefetch(limit=PREFETCH, query=qe.Query.Nearest(v, using=using)) for using, v in prefetch_of(q)]
        pts = shard.query(qe.QueryRequest(limit=CANDIDATES, prefetches=stage1, with_payload=True, with_vector=["global"],
                                          query=qe.Query.Nearest(q.token_vectors.tolist(), using="regions")))
        regions = np.stack([decode_regions(p.payload["_vitr_regions_f16"], r.shape[2]) for p in pts])
        scores, _ = model.rerank(q, np.stack([np.asarray(p.vector["global"], np.float32) for p in pts]), regions)
        order = np.argsort(-scores, kind="stable")[:LIMIT]
        ranked.append([int(pts[i].id) for i in order])
        times.append(time.perf_counter() - t0)
    shard.close()
    shutil.rmtree(path, ignore_errors=True)
    ms = 1000 * np.array(times)
    out.update(success(ranked, rel), p50_ms=round(float(np.percentile(ms, 50)), 1),
               p95_ms=round(float(np.percentile(ms, 95)), 1))
    out["_ranked"] = ranked
    return out


def first_true(ranked: list[list[int]], rel: np.ndarray) -> list[int | None]:
    """Each query's rank of its first true image (None: none among its hits)."""
    return [next((k for k, i in enumerate(ids) if rel[i, j]), None) for j, ids in enumerate(ranked)]


def success_of(first: list[int | None]) -> dict[str, float]:
    """success@1 and @10 (percent) from :func:`first_true`: a true image at rank 1, among the top 10."""
    return {f"success_at_{k}": round(100 * float(np.mean([f is not None and f < k for f in first])), 1)
            for k in (1, 10)}


def success(ranked: list[list[int]], rel: np.ndarray) -> dict[str, float]:
    """success@1 and @10 (percent) of ranked ids against the truth ``rel`` [images, queries]."""
    return success_of(first_true(ranked, rel))


def designs(args: argparse.Namespace) -> dict[str, Any]:
    model = load_model(args.model)
    torch.set_num_threads(args.threads)
    result: dict[str, Any] = {"benchmark": "first_stage_designs", "model": model.cfg.name, "prefetch": PREFETCH,
                              "candidates": CANDIDATES, "threads": args.threads, "sizes": {}}
    for n in args.sizes:
        g, r = load_gallery(args.cache, n)
        caps, rel = queries(n, args.queries)
        res: dict[str, Any] = {"queries": len(caps)}
        for name in args.designs:
            if name == "regions-hnsw" and n > args.regions_hnsw_max:
                res[name] = {"skipped": f"its index build at {args.regions_hnsw_max} images already took "
                             f"{result['sizes'].get(str(args.regions_hnsw_max), {}).get(name, {}).get('ingest_s')} s"}
                continue
            res[name] = run_design(name, model, g, r, caps, rel, args.workdir / f"{name}-{n}", args)
            print(json.dumps({"size": n, "design": name, **{k: v for k, v in res[name].items() if k != "_ranked"}}),
                  flush=True)
        exact = res.get("exact", {}).get("_ranked")
        for name in args.designs:
            if exact and "_ranked" in res[name]:
                res[name]["same_top10_as_exact"] = round(100 * float(np.mean(
                    [a == b for a, b in zip(res[name]["_ranked"], exact)])), 1)
            res[name].pop("_ranked", None)
        result["sizes"][str(n)] = res
        if args.out:   # partial results as they come
            args.out.write_text(json.dumps(result, indent=2) + "\n")
    return result


def api(args: argparse.Namespace) -> dict[str, Any]:
    """The public API end to end: add_images of rendered scenes, then col.search per query."""
    import vitr_qdrant as vq

    model = load_model(args.model)
    torch.set_num_threads(args.threads)
    world = get_world(WORLD)
    result: dict[str, Any] = {"benchmark": "first_stage_api", "model": model.cfg.name, "threads": args.threads,
                              "sizes": {}}
    for n in args.sizes:
        caps, rel = queries(n, args.queries)
        path = args.workdir / f"api-{n}"
        shutil.rmtree(path, ignore_errors=True)
        with vq.VitrCollection("first-stage-api", path=path, model=model) as col:
            stalls: list[float] = []
            upsert = col._store.upsert   # instrumentation: one write call (its index rebuild included)

            def timed(points: Any) -> None:
                t0 = time.perf_counter()
                upsert(points)
                stalls.append(time.perf_counter() - t0)

            col._store.upsert = timed
            t0 = time.perf_counter()
            for c0 in range(0, n, CHUNK):
                images = [world.render(scene(k), 128) for k in range(c0, min(n, c0 + CHUNK))]
                report = col.add_images(images, ids=list(range(c0, c0 + len(images))), progress=False,
                                        batch_size=BATCH)
                if report.failed:
                    raise RuntimeError(f"ingest failed: {report.failed[:3]}")
            res: dict[str, Any] = {"queries": len(caps), "ingest_s": round(time.perf_counter() - t0, 1),
                                   "ingest_img_per_s": round(n / (time.perf_counter() - t0), 1),
                                   "longest_stall_s": round(max(stalls), 2),
                                   "bytes_per_image": round(disk_bytes(path)[0] / n)}
            res.update(timed_searches(col, caps, rel, {"default": ({}, len(caps)), "exact": ({"prefetch": None}, len(caps)),
                                                       "global": ({"mode": "global"}, len(caps))}))
            res["default"]["same_top10_as_exact"] = round(100 * float(np.mean(
                [a == b for a, b in zip(res["default"]["_ids"], res["exact"]["_ids"])])), 1)
            for name in ("default", "exact", "global"):
                res[name].pop("_ids")
        shutil.rmtree(path, ignore_errors=True)
        result["sizes"][str(n)] = res
        if args.out:
            args.out.write_text(json.dumps(result, indent=2) + "\n")
    return result


def write_cached(path: Path, name: str, model: Any, g: np.ndarray, r: np.ndarray, copies: int = 1,
                 jitter: float = 0.0, optimize_every: int = OPTIMIZE_EVERY, **storage: Any) -> dict[str, Any]:
    """A collection ``name`` at ``path`` written through the library's store from cached vectors:
    each scene ``copies`` times (copies after the first with Gaussian jitter, renormalised), in
    add_images' batches, the indexes rebuilt every ``optimize_every`` points; its ingest figures."""
    from vitr_qdrant.connectors import StoredPoint, create_backend, make_payload
    from vitr_qdrant.search import collection_spec

    base, rng = len(g), np.random.default_rng(0)
    shutil.rmtree(path, ignore_errors=True)
    stalls, t_start = [], time.perf_counter()
    with create_backend(path=path, optimize_every=optimize_every) as store:
        store.open_collection(collection_spec(name, model, **storage))
        for copy in range(copies):
            for a in range(0, base, BATCH):
                b = min(base, a + BATCH)
                gj = g[a:b] + (rng.normal(scale=jitter, size=g[a:b].shape) if copy else 0)
                rj = r[a:b].astype(np.float32) + (rng.normal(scale=jitter, size=r[a:b].shape) if copy else 0)
                gj /= np.linalg.norm(gj, axis=-1, keepdims=True)
                rj /= np.linalg.norm(rj, axis=-1, keepdims=True)
                with torch.inference_mode():
                    first = model.first_stage.encode_regions(torch.from_numpy(rj.astype(np.float32))).numpy()
                pts = [StoredPoint(copy * base + i, gj[i - a], rj[i - a], make_payload(
                    uri=f"/gallery/{i:07d}.png", sha256="0" * 64, width=128, height=128, metadata={"copy": copy}),
                    first[i - a]) for i in range(a, b)]
                t0 = time.perf_counter()
                store.upsert(pts)
                stalls.append(time.perf_counter() - t0)
            print(json.dumps({"written": (copy + 1) * base, "s": round(time.perf_counter() - t_start)}), flush=True)
        store.optimize()
    return {"points": copies * base, "ingest_s": round(time.perf_counter() - t_start, 1),
            "longest_stall_s": round(max(stalls), 2), "bytes_per_image": round(disk_bytes(path)[0] / (copies * base))}


def timed_searches(col: Any, caps: list[str], rel: np.ndarray, runs: dict[str, tuple[dict, int]],
                   base: int | None = None) -> dict[str, Any]:
    """``col.search(text, limit=10, **kw)`` for the first ``count`` captions of each run (after one
    warm-up search): success@1/@10, p50 / p95 ms and the ids (image ids modulo ``base``)."""
    res: dict[str, Any] = {}
    for name, (kw, count) in runs.items():
        col.search(caps[0], limit=LIMIT, **kw)
        ids, times = [], []
        for text in caps[:count]:
            t0 = time.perf_counter()
            hits = col.search(text, limit=LIMIT, **kw)
            times.append(time.perf_counter() - t0)
            ids.append([int(h.id) % base if base else int(h.id) for h in hits])
        ms = 1000 * np.array(times)
        res[name] = {**success(ids, rel[:, :count]), "queries": count, "p50_ms": round(float(np.percentile(ms, 50)), 1),
                     "p95_ms": round(float(np.percentile(ms, 95)), 1), "_ids": ids}
        print(json.dumps({"run": name, **{k: v for k, v in res[name].items() if k != "_ids"}}), flush=True)
    return res


def million(args: argparse.Namespace) -> dict[str, Any]:
    """``--n`` points (1M) on this machine, compact storage: the cached real vectors of
    ``--base`` rendered scenes, each written ``n / base`` times with Gaussian jitter (sigma
    ``--jitter`` per dimension, renormalised), through the library's store and ``col.search``."""
    import resource

    import vitr_qdrant as vq
    from vitr_qdrant.connectors import COMPACT_STORAGE

    model = load_model(args.model)
    torch.set_num_threads(args.threads)
    g, r = load_gallery(args.cache, args.base)
    caps, rel = queries(args.base, args.queries)
    path = args.workdir / "million"
    written = write_cached(path, "million", model, g, r, args.n // args.base, args.jitter, **COMPACT_STORAGE)
    res: dict[str, Any] = {"benchmark": "first_stage_million", "model": model.cfg.name, "points": written.pop("points"),
                           "vectors": f"{args.base} rendered scenes encoded by the model, each written "
                                      f"{args.n // args.base} times (copies after the first with jitter sigma "
                                      f"{args.jitter}, renormalised)",
                           "storage": "compact (turbo8 regions, no payload copy)", **written}
    with vq.VitrCollection("million", path=path, model=model) as col:
        res.update(timed_searches(col, caps, rel, {"default": ({}, len(caps)), "global": ({"mode": "global"}, len(caps)),
                                                   "exact": ({"prefetch": None}, args.exact_queries)}, args.base))
    k = args.exact_queries
    res["default"]["same_top10_as_exact"] = round(100 * float(np.mean(
        [a == b for a, b in zip(res["default"]["_ids"][:k], res["exact"]["_ids"])])), 1)
    for name in ("default", "global", "exact"):
        res[name].pop("_ids")
    res["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    shutil.rmtree(path, ignore_errors=True)
    return res


def latency(args: argparse.Namespace) -> dict[str, Any]:
    """Search latency of two checkouts of the library on one collection, in one run: ``--n``
    cached scenes written through the library's store (default storage), then ``--rounds``
    alternating rounds of ``searches`` in a subprocess per checkout (``--before DIR``: the
    older one's root; the current checkout after it), each round on fresh captions."""
    import subprocess
    import sys

    path = (args.workdir / f"latency-{args.n}").resolve()
    result: dict[str, Any] = {"benchmark": "search_latency", "points": args.n, "threads": args.threads, "rounds": []}
    if not (path / "latency" / "vitr_collection.json").exists():
        model = load_model(args.model)
        g, r = load_gallery(args.cache, args.n)
        result["ingest"] = write_cached(path, "latency", model, g, r, optimize_every=args.optimize_every)
    here = Path(__file__).resolve().parents[1]
    codes = {"before": Path(args.before).resolve(), "after": here}
    for k in range(args.rounds):
        row = {}
        for name, root in codes.items():
            env = {**os.environ, "PYTHONPATH": str(root)}
            exact = ["--exact-queries", str(args.exact_queries)] if name == "after" else ["--exact-queries", "0"]
            out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "searches", "--n", str(args.n),
                                  "--queries", str(args.queries), "--seed", str(k + 1), "--path", str(path),
                                  "--threads", str(args.threads), *exact], env=env, cwd=root, check=True,
                                 capture_output=True, text=True).stdout
            row[name] = json.loads(out.strip().splitlines()[-1])
        print(json.dumps({"round": k, **row}), flush=True)
        result["rounds"].append(row)
        if args.out:
            args.out.write_text(json.dumps(result, indent=2) + "\n")
    for name in codes:
        for run in ("default", "global"):
            p50 = [r[name][run]["p50_ms"] for r in result["rounds"]]
            result.setdefault(name, {})[run] = {"p50_ms": float(np.median(p50)), "p95_ms": float(np.median(
                [r[name][run]["p95_ms"] for r in result["rounds"]])), "success_at_1": result["rounds"][-1][name][run][
                "success_at_1"], "success_at_10": result["rounds"][-1][name][run]["success_at_10"]}
    result["after_over_before_p50"] = round(result["after"]["default"]["p50_ms"] / result["before"]["default"]["p50_ms"], 2)
    if args.exact_queries:   # success over every round's captions, the default against prefetch=None
        for run in ("default", "exact"):
            first = [f for r in result["rounds"] for f in r["after"][run].pop("first_true")[: args.exact_queries]]
            result["after"][f"{run}_on_the_same_captions"] = {**success_of(first), "queries": len(first)}
    return result


def searches(args: argparse.Namespace) -> dict[str, Any]:
    """One round of :func:`latency` in the checkout on ``PYTHONPATH``: the default search and the
    global-only one on ``--queries`` fresh captions (``--seed``)."""
    import vitr_qdrant as vq

    torch.set_num_threads(args.threads)
    caps, rel = queries(args.n, args.queries, seed=args.seed)
    runs = {"default": ({}, len(caps)), "global": ({"mode": "global"}, len(caps))}
    if args.exact_queries:
        runs["exact"] = ({"prefetch": None}, min(args.exact_queries, len(caps)))
    with vq.VitrCollection("latency", path=args.path) as col:
        res = timed_searches(col, caps, rel, runs)
    out: dict[str, Any] = {"code": str(Path(vq.__file__).resolve().parents[1].name)}
    for k, r in res.items():
        out[k] = {m: v for m, v in r.items() if m != "_ids"}
        if args.exact_queries and k != "global":   # each caption's rank of its first true hit: the
            # default and exact compared on the same captions
            out[k]["first_true"] = first_true(r["_ids"], rel)
    return out


def stages(args: argparse.Namespace) -> dict[str, Any]:
    """Stage sizes side by side on one collection (``--path``; default: the ``latency``
    collection of ``--n`` cached scenes under ``--workdir``): each of ``--queries`` captions
    (``--seed``) searched with ``col.search(text, limit=10, prefetch=N, candidates=M)`` for every
    ``--configs`` N/M, then with ``prefetch=None`` and ``mode="global"``, in turn; success on the same
    captions and p50 / p95 per config, written to ``--out`` every 50 captions (a checkpoint)."""
    import vitr_qdrant as vq

    torch.set_num_threads(args.threads)
    caps, rel = queries(args.n, args.queries, seed=args.seed)
    runs = {c: dict(zip(("prefetch", "candidates"), map(int, c.split("/")))) for c in args.configs}
    runs.update({"exact": {"prefetch": None}, "global": {"mode": "global"}})
    ranked: dict[str, list] = {k: [] for k in runs}
    times: dict[str, list] = {k: [] for k in runs}
    res: dict[str, Any] = {}
    path = args.path or args.workdir / f"latency-{args.n}"
    with vq.VitrCollection("latency", path=path) as col:
        col.search(caps[0], limit=LIMIT)
        for j, text in enumerate(caps):
            for k, kw in runs.items():
                t0 = time.perf_counter()
                hits = col.search(text, limit=LIMIT, **kw)
                times[k].append(time.perf_counter() - t0)
                ranked[k].append([int(h.id) for h in hits])
            if (j + 1) % 50 == 0 or j + 1 == len(caps):
                res = {"benchmark": "first_stage_stages", "points": args.n, "seed": args.seed, "captions": j + 1, **{
                    k: {**success(v, rel[:, : j + 1]), "p50_ms": round(1000 * float(np.median(times[k])), 1),
                        "p95_ms": round(1000 * float(np.percentile(times[k], 95)), 1)} for k, v in ranked.items()}}
                print(json.dumps(res), flush=True)
                if args.out:
                    args.out.write_text(json.dumps(res, indent=2) + "\n")
    return res


def rebuild(args: argparse.Namespace) -> dict[str, Any]:
    """What one index rebuild (the longest write of an ingest) spends its time on: ``--n`` cached
    scenes (20,000: one rebuild's worth) written as the library writes them (``global``, ``first``,
    ``regions``, the payload copy in RAM), then one ``optimize()`` timed, with HNSW on ``global``
    and ``first`` each on or off (off: a plain index, only the copy of the points), ``--rounds``
    alternating rounds of the four."""
    model = load_model(args.model)
    torch.set_num_threads(args.threads)
    g, r = load_gallery(args.cache, args.n)
    from vitr_qdrant.encoders.first_stage import encode_all_regions   # here: see design_vectors

    first = encode_all_regions(model.first_stage, r).numpy()
    variants = {"no HNSW": (0, 0), "global HNSW": (16, 0), "first HNSW": (0, 16), "both (the default)": (16, 16)}
    res: dict[str, Any] = {"benchmark": "first_stage_rebuild", "points": args.n,
                           **{k: {"optimize_s": [], "cpu_s": []} for k in variants}}
    for k in range(args.rounds):
        for name, (gm, fm) in variants.items():
            path = args.workdir / "rebuild"
            shutil.rmtree(path, ignore_errors=True)
            shard = raw_shard(path, g, r, {"global": dense(g.shape[1], gm), "first": dense(first.shape[1], fm)},
                              payload_memory=qe.Memory.Cached)
            for a in range(0, args.n, BATCH):
                b = min(args.n, a + BATCH)
                shard.update(qe.UpdateOperation.upsert_points(raw_points(g, r, a, b, {"first": first[a:b].tolist()})))
            shard.flush()
            c0, t0 = time.process_time(), time.perf_counter()
            shard.optimize()
            shard.flush()
            res[name]["optimize_s"].append(round(time.perf_counter() - t0, 2))
            res[name]["cpu_s"].append(round(time.process_time() - c0, 2))
            shard.close()
            shutil.rmtree(path, ignore_errors=True)
        print(json.dumps({"round": k, **{name: res[name]["optimize_s"][-1] for name in variants}}), flush=True)
    for name in variants:
        res[name]["median_s"] = float(np.median(res[name]["optimize_s"]))
    return res


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=("cache", "designs", "api", "million", "latency", "searches", "stages", "rebuild"))
    ap.add_argument("--model", help="model name or directory (default: the bundled default)")
    ap.add_argument("--n", type=int, default=100_000, help="cache: gallery images to encode; million: points")
    ap.add_argument("--base", type=int, default=100_000, help="million: cached scenes the points are made of")
    ap.add_argument("--jitter", type=float, default=0.02, help="million: sigma of the copies' jitter")
    ap.add_argument("--exact-queries", type=int, default=20,
                    help="million, latency: queries also run with prefetch=None (latency: the current code's, each round)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--designs", nargs="+",
                    default=["global", "exact", "first", "first-only", "muvera", "pooled", "regions-hnsw"])
    ap.add_argument("--muvera", type=int, nargs=3, default=[4, 8, 10], metavar=("K_SIM", "DIM_PROJ", "R_REPS"))
    ap.add_argument("--pool", type=int, default=8, help="pooled: vectors per image")
    ap.add_argument("--first-light-hnsw", type=int, nargs=2, default=[8, 32], metavar=("M", "EF_CONSTRUCT"),
                    help="first-light: HNSW of its first-stage vector")
    ap.add_argument("--regions-hnsw-max", type=int, default=10_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--optimize-every", type=int, default=OPTIMIZE_EVERY,
                    help="latency: rebuild the indexes every this many points while writing its collection")
    ap.add_argument("--cache", type=Path, default=Path("runs/first-stage-cache"))
    ap.add_argument("--workdir", type=Path, default=Path("runs/first-stage-work"))
    ap.add_argument("--before", type=Path, help="latency: the root of the older checkout to compare")
    ap.add_argument("--rounds", type=int, default=3, help="latency, rebuild: alternating rounds")
    ap.add_argument("--seed", type=int, default=0, help="searches, stages: the captions' seed")
    ap.add_argument("--configs", nargs="+", default=["300/30", "250/30", "200/30"], metavar="N/M",
                    help="stages: prefetch / candidates pairs")
    ap.add_argument("--path", type=Path, help="searches, stages: the collection's store")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args(argv)
    a.workdir.mkdir(parents=True, exist_ok=True)
    if a.what == "cache":
        cache_gallery(load_model(a.model), a.n, a.cache)
        return 0
    if a.what == "searches":   # one line, read by `latency`
        print(json.dumps(searches(a)), flush=True)
        return 0
    emit({"designs": designs, "api": api, "million": million, "latency": latency, "stages": stages,
          "rebuild": rebuild}[a.what](a), a.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
