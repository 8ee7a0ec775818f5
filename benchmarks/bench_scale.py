"""Ingest at scale: total time and the longest stall of ingesting N points, for several N (JSON out).

    python benchmarks/bench_scale.py --sizes 100000 200000 --out scale.json

The points are cheap to make (random vectors shaped like a model's: ``--model`` gives D, the
region count and d), but they go through the store as ``add_images`` writes them: batches of
``--batch-size`` points with add_images' payload (uri, sha256, width, height, the regions copy)
through the embedded backend's ``upsert``, which also runs the automatic index rebuilds. A stall
is one ``upsert`` call (its rebuild included): what add_images' writer thread waits for. Each N
runs in a fresh store; ``rebuilds`` lists every rebuild's seconds; ``search_ms`` is a staged query
(prefetch 200, MaxSim 50) after the last point.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from vitr_qdrant.connectors import CollectionSpec, StageCfg, StoredPoint, create_backend, make_payload, search
from vitr_qdrant.connectors.edge import EdgeBackend
from vitr_qdrant.encoders.config import get_model_config

from common import disk_bytes, emit  # benchmarks/common.py


def shapes(model: str) -> tuple[int, int, int]:
    """(D, regions per image, d) of a registered model."""
    cfg = get_model_config(model)
    grid = cfg.backbone.vision_cfg["image_size"] // cfg.backbone.vision_cfg["patch_size"]
    return cfg.backbone.embed_dim, grid * grid, cfg.local.dim


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def run(n: int, path: Path, D: int, R: int, d: int, batch: int, optimize_every: int) -> dict[str, Any]:
    """Ingest ``n`` points into a fresh store at ``path``; the timings."""
    rebuilds: list[float] = []
    real = EdgeBackend.optimize

    def timed_optimize(self: EdgeBackend) -> None:
        t0 = time.perf_counter()
        real(self)
        rebuilds.append(round(time.perf_counter() - t0, 2))

    EdgeBackend.optimize = timed_optimize   # the same rebuilds, timed
    rng = np.random.default_rng(0)
    pool_g, pool_r = unit(rng.normal(size=(1024, D))), unit(rng.normal(size=(1024, R, d)))
    stalls, t_start = [], time.perf_counter()
    try:
        with create_backend(path=path, optimize_every=optimize_every) as store:
            store.open_collection(CollectionSpec("scale", D, d, {"name": "synthetic"}))
            for start in range(0, n, batch):
                ids = range(start, min(n, start + batch))
                pts = [StoredPoint(i, pool_g[i % 1024], pool_r[(i * 7) % 1024],
                                   make_payload(uri=f"/photos/{i:07d}.jpg", sha256=f"{i:064x}", width=640, height=480))
                       for i in ids]
                t0 = time.perf_counter()
                store.upsert(pts)
                stalls.append(time.perf_counter() - t0)
            total = time.perf_counter() - t_start
            q = StageCfg(prefetch_limit=200, late_limit=50)
            times = []
            for k in range(30):
                t0 = time.perf_counter()
                search(store, pool_g[k], pool_r[k][:8], limit=50, stages=q)
                times.append(1000 * (time.perf_counter() - t0))
    finally:
        EdgeBackend.optimize = real
    stalls_s = np.array(stalls)
    return {"points": n, "total_s": round(total, 1), "points_per_s": round(n / total, 1),
            "longest_stall_s": round(float(stalls_s.max()), 2),
            "p50_upsert_ms": round(1000 * float(np.median(stalls_s)), 1),
            "rebuilds": rebuilds, "rebuild_s_total": round(sum(rebuilds), 1),
            "search_ms_p50": round(float(np.percentile(times[5:], 50)), 1),
            "bytes_per_point": round(disk_bytes(path)[0] / n)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 200_000])
    ap.add_argument("--model", default="vitr-scenes-s", help="registered model whose vector shapes to use")
    ap.add_argument("--batch-size", type=int, default=32, help="points per upsert (add_images' default batch)")
    ap.add_argument("--optimize-every", type=int, default=20_000, help="the embedded backend's default")
    ap.add_argument("--workdir", type=Path, help="scratch directory (default: a temp dir)")
    ap.add_argument("--out", type=Path, help="also write the JSON here")
    a = ap.parse_args()
    D, R, d = shapes(a.model)
    result: dict[str, Any] = {"benchmark": "scale", "model_shapes": a.model, "D": D, "regions": R, "d": d,
                              "batch_size": a.batch_size, "optimize_every": a.optimize_every,
                              "cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                              "runs": []}
    for n in a.sizes:
        root = Path(tempfile.mkdtemp(prefix="vitr-bench-scale-", dir=a.workdir))
        try:
            result["runs"].append(run(n, root / "store", D, R, d, a.batch_size, a.optimize_every))
        finally:
            shutil.rmtree(root, ignore_errors=True)
    emit(result, a.out)


if __name__ == "__main__":
    main()
