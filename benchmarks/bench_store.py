"""Benchmark the store: upsert throughput, staged-search latency, bytes per point (JSON out).

Synthetic L2-normalised vectors shaped like the small model (D=128, R=64, d=64; ~8 query tokens).
Example: python benchmarks/bench_store.py --sizes 10000 --out bench_store.json
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from vitr_qdrant.cli.command import prefetch_option
from vitr_qdrant.connectors import (COMPACT_STORAGE, STORAGE_OPTIONS, CollectionSpec, StageCfg, StoredPoint,
                                    create_backend, make_payload, search)

from common import disk_bytes  # benchmarks/common.py

logger = logging.getLogger("bench_store")


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def batches(n: int, a: argparse.Namespace, batch: int = 1024):
    """Yield (ids, global, regions) chunks; chunk i is seeded by i so every backend sees the same data."""
    for start in range(0, n, batch):
        rng = np.random.default_rng(1000 + start)
        k = min(batch, n - start)
        yield range(start, start + k), unit(rng.normal(size=(k, a.D))), unit(rng.normal(size=(k, a.R, a.d)))


def ingest(backend, n: int, a: argparse.Namespace) -> float:
    t0 = time.perf_counter()
    for ids, g, r in batches(n, a):
        backend.upsert([StoredPoint(i, g[j], r[j], make_payload(uri=f"img{i}.jpg", width=640, height=480,
                                                                metadata={"shard": i % 10}))
                        for j, i in enumerate(ids)])
    return n / (time.perf_counter() - t0)


def latencies(fn: Callable[[int], Any], n_queries: int, warmup: int = 5) -> dict[str, float]:
    for q in range(warmup):  # page in the index, create payload indexes on first use
        fn(q)
    ms = []
    for q in range(n_queries):
        t0 = time.perf_counter()
        fn(q)
        ms.append(1000 * (time.perf_counter() - t0))
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)), "queries": n_queries}


VARIANTS: dict[str, dict[str, Any]] = {
    "base": {}, "int8": {"quantize_regions": True}, "f16": {"regions_datatype": "float16"},
    "nocopy": {"regions_in_payload": False}, "nowal": {"wal": False},
    "turbo8": COMPACT_STORAGE,
}
SPEC_KEYS = STORAGE_OPTIONS


def run_backend(label: str, n: int, a: argparse.Namespace, n_queries: int, **kw: Any) -> dict[str, Any]:
    rng = np.random.default_rng(7)
    nq = max(n_queries, 20) + 50  # + warm-up queries
    qg, qt = unit(rng.normal(size=(nq, a.D))), unit(rng.normal(size=(nq, a.m, a.d)))
    stages = StageCfg(prefetch_limit=a.prefetch, late_limit=a.late)
    spec_kw = {k: kw.pop(k) for k in SPEC_KEYS if k in kw}
    out: dict[str, Any] = {"variant": label, "points": n, **spec_kw, **{k: v for k, v in kw.items() if k == "wal"}}
    if "path" in kw:
        kw["optimize_every"] = 0  # one index build after the ingest, timed on its own
    backend = create_backend(**kw)
    backend.open_collection(CollectionSpec(f"bench{n}", a.D, a.d, {"name": "synthetic"}, **spec_kw))
    out["backend"] = backend.name
    out["upsert_points_per_s"] = ingest(backend, n, a)
    stage12 = lambda q: search(backend, qg[q], qt[q], limit=a.late, stages=stages)  # noqa: E731
    if "path" in kw:
        out["stage12_before_optimize"] = latencies(stage12, min(n_queries, 50))
    t0 = time.perf_counter()
    backend.optimize()
    out["optimize_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    if hasattr(os, "sync"):
        os.sync()  # write back the new segments now, not while the queries below are timed
    out["sync_s"] = time.perf_counter() - t0
    out["stage12_first_queries"] = latencies(stage12, 20, warmup=0)  # cold: pages not yet in cache
    out["stage12"] = latencies(stage12, n_queries, warmup=min(n_queries, 50))
    out["stage12_with_vectors"] = latencies(
        lambda q: search(backend, qg[q], qt[q], limit=a.late, stages=stages, with_vectors=True), n_queries)
    out["global_only"] = latencies(lambda q: search(backend, qg[q], limit=10), n_queries)
    out["filtered_stage12"] = latencies(lambda q: search(
        backend, qg[q], qt[q], limit=a.late, stages=stages, filter={"shard": [1, 2]}), n_queries)
    out["stage12_repeat"] = latencies(stage12, n_queries)  # same as stage12, measured last: the noise
    backend.close()
    if kw.get("path"):
        alloc, apparent = disk_bytes(Path(kw["path"]))
        wal_alloc = sum(disk_bytes(p)[0] for p in Path(kw["path"]).rglob("wal") if p.is_dir())
        out.update(bytes_per_point=alloc / n, bytes_per_point_without_wal=(alloc - wal_alloc) / n,
                   apparent_bytes_per_point=apparent / n)
    logger.info("%s %s", label, json.dumps(out))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000])
    p.add_argument("--queries", type=int, default=200, help="queries per edge measurement")
    p.add_argument("--local-size", type=int, default=10_000, help="points for qdrant-client local (0: skip)")
    p.add_argument("--local-queries", type=int, default=5, help="queries for qdrant-client local (slow)")
    p.add_argument("--D", type=int, default=128)
    p.add_argument("--R", type=int, default=64)
    p.add_argument("--d", type=int, default=64)
    p.add_argument("--m", type=int, default=8, help="query tokens")
    p.add_argument("--prefetch", type=prefetch_option, default=200,
                   help="stage 1 size N, or 'all': no global stage, MaxSim over every point")
    p.add_argument("--late", type=int, default=50, help="stage 2 size M")
    p.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=list(VARIANTS),
                   help="edge variants at sizes <= 10k")
    p.add_argument("--large-variants", nargs="+", choices=sorted(VARIANTS), default=["base", "int8", "turbo8"],
                   help="edge variants at sizes > 10k")
    p.add_argument("--workdir", type=Path, default=None, help="scratch directory (default: a temp dir)")
    p.add_argument("--out", type=Path, default=Path("bench_store.json"))
    a = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    root = Path(tempfile.mkdtemp(prefix="vitr-bench-", dir=a.workdir))
    results: dict[str, Any] = {"config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()},
                               "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                           "processor": platform.processor() or platform.machine()}, "runs": []}
    try:
        for n in a.sizes:
            for name in (a.variants if n <= 10_000 else a.large_variants):
                path = root / f"edge-{n}-{name}"
                results["runs"].append(run_backend(name, n, a, a.queries, path=path, **VARIANTS[name]))
                shutil.rmtree(path, ignore_errors=True)
                a.out.write_text(json.dumps(results, indent=2))  # partial results survive a later failure
        if a.local_size:
            local = run_backend("base", a.local_size, a, a.local_queries, location=":memory:")
            results["runs"].append(local)
            for edge in results["runs"]:
                if (edge["points"], edge["backend"], edge["variant"]) == (a.local_size, "edge", "base"):
                    for key in ("stage12", "stage12_with_vectors", "stage12_repeat"):
                        results[f"edge_speedup_vs_local_{key}_p50"] = local[key]["p50_ms"] / edge[key]["p50_ms"]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    a.out.write_text(json.dumps(results, indent=2))
    logger.info("wrote %s", a.out)


if __name__ == "__main__":
    main()
