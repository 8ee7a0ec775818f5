"""Benchmark search_batch against a loop of search: queries per second at equal results (JSON out).

A gallery of the model's world (the evaluation protocol's scenes) in an embedded store; its
captions are the queries. Example (the README's figure):
    python benchmarks/bench_batch.py --images 500 --queries 100 --repeats 3
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

import vitr_qdrant as vq
from vitr_qdrant.encoders.evaluation import build_eval_set
from vitr_qdrant.encoders.model_eval import model_world

from common import run_model_benchmark  # benchmarks/common.py


def run(model: Any, images: int = 500, queries: int = 100, repeats: int = 3, limit: int = 10,
        prefetch: int | None = 200) -> dict[str, Any]:
    """Index ``images`` scenes, then time ``queries`` captions as one ``search_batch`` and as a loop."""
    es = build_eval_set("test-iid", n_images=images, n_pairs=0, world=model_world(model))
    texts = (es.captions * (queries // len(es.captions) + 1))[:queries]
    with tempfile.TemporaryDirectory() as tmp, vq.VitrCollection("bench", path=Path(tmp), model=model) as col:
        col.add_images(es.images, progress=False)
        col.search_batch(texts[:2], limit=limit, prefetch=prefetch)   # warm-up: first-call costs out of the way
        loop_s, batch_s = [], []
        for _ in range(repeats):
            t0 = time.perf_counter()
            one_by_one = [col.search(t, limit=limit, prefetch=prefetch) for t in texts]
            loop_s.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            batched = col.search_batch(texts, limit=limit, prefetch=prefetch)
            batch_s.append(time.perf_counter() - t0)
        same = [[h.id for h in hits] for hits in one_by_one] == [[h.id for h in hits] for hits in batched]
    loop, batch = min(loop_s), min(batch_s)
    return {"model": model.cfg.name, "device": str(model.device), "images": images, "queries": queries,
            "limit": limit, "prefetch": prefetch, "repeats": repeats, "same_results": same,
            "loop_s": round(loop, 3), "batch_s": round(batch, 3),
            "loop_queries_per_s": round(queries / loop, 1), "batch_queries_per_s": round(queries / batch, 1),
            "speedup": round(loop / batch, 2), "torch_threads": torch.get_num_threads(),
            "cpus": os.cpu_count(), "machine": platform.processor() or platform.machine()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="model name or directory (default: the bundled default)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--limit", type=int, default=10)
    ap.add_argument("--out", type=Path, help="write the JSON here too")
    a = ap.parse_args()
    return run_model_benchmark("bench_batch", a.model, a.device,
                               lambda m: run(m, a.images, a.queries, a.repeats, a.limit), a.out)


if __name__ == "__main__":
    raise SystemExit(main())
