"""Quality through the store: text-to-image recall of the staged search vs exhaustive scoring (JSON out).

    python benchmarks/bench_quality.py                       # bundled model, n=1000, both splits
    python benchmarks/bench_quality.py --model DIR --n 200 --out quality.json

For each split, builds the gallery of the evaluation protocol in the model's own world
(``build_eval_set(split, n, world=...)``: n images, one caption each, relevance by ``truth``), indexes the
images in an embedded ``VitrCollection``, runs every caption through ``col.search(caption,
limit=10)`` (stage 1 prefetch, stage 2 MaxSim, stage 3 fusion) and computes text-to-image
R@1/5/10 from the hits. The same recalls from exhaustive scoring (every image against every
caption, ``model.score_embeddings``; ties count against, as in the protocol) show what staging
loses: ``r10_gap`` = exhaustive R@10 - store R@10 (target: at most 1 point in vitr mode).
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

import vitr_qdrant as vq
from vitr_qdrant.cli.command import prefetch_option
from vitr_qdrant.encoders.evaluation import KS, build_eval_set, recall_at_k
from vitr_qdrant.encoders.model_eval import model_world
from vitr_qdrant.encoders.modes import MODES

from common import disk_bytes, run_model_benchmark  # benchmarks/common.py



def store_recall(hits: list[list[int]], relevance: np.ndarray) -> dict[str, float]:
    """t2i R@K (percent) from ranked gallery indices per caption; ``relevance`` is [images, captions]."""
    found = {k: [] for k in KS}
    for j, ranked in enumerate(hits):
        if not relevance[:, j].any():
            continue
        first = next((r for r, i in enumerate(ranked) if relevance[i, j]), None)
        for k in KS:
            found[k].append(first is not None and first < k)
    return {f"t2i_r{k}": round(100.0 * float(np.mean(v)), 2) if v else 0.0 for k, v in found.items()}


def exhaustive_recall(model: Any, images: Any, texts: Any, relevance: np.ndarray, mode: str) -> dict[str, float]:
    sim = model.score_embeddings(images, texts, mode)     # [images, captions]
    found, _ = recall_at_k(sim.T, relevance.T, KS)
    return {f"t2i_r{k}": round(v, 2) for k, v in found.items()}


def run_split(model: Any, split: str, n: int, modes: Sequence[str], root: Path, prefetch: int | None,
              candidates: int, storage: dict[str, Any]) -> dict[str, Any]:
    """Store and exhaustive recall of ``model`` on one split's gallery of ``n`` images, per mode."""
    ev = build_eval_set(split, n_images=n, n_pairs=0, world=model_world(model))
    out: dict[str, Any] = {"images": len(ev.images), "captions": len(ev.captions)}
    t0 = time.perf_counter()
    with vq.VitrCollection(f"quality-{split}", path=root / split, model=model, **storage) as col:
        report = col.add_images(ev.images, ids=list(range(len(ev.images))), progress=False)
        if report.failed or len(col) != len(ev.images):
            raise RuntimeError(f"indexing the {split} gallery failed: {report}")
        out["index_s"] = round(time.perf_counter() - t0, 1)
        img_emb, txt_emb = model.encode_images(ev.images), model.encode_texts(ev.captions)
        for mode in modes:
            t0 = time.perf_counter()
            hits = [[int(h.id) for h in col.search(c, limit=max(KS), mode=mode, prefetch=prefetch,
                                                   candidates=candidates)] for c in ev.captions]
            ms = 1000 * (time.perf_counter() - t0) / len(ev.captions)
            store = store_recall(hits, ev.relevance)
            full = exhaustive_recall(model, img_emb, txt_emb, ev.relevance, mode)
            out[mode] = {"store": store, "exhaustive": full, "search_ms_mean": round(ms, 2),
                         "r10_gap": round(full["t2i_r10"] - store["t2i_r10"], 2)}
    out["bytes_per_image"] = round(disk_bytes(root / split)[0] / len(ev.images))  # the WAL included
    return out


def run(model: Any, n: int = 1000, splits: Sequence[str] = ("test-iid", "test-comp"),
        modes: Sequence[str] = MODES, prefetch: int | None = 200, candidates: int = 50,
        workdir: Path | None = None, storage: dict[str, Any] | None = None) -> dict[str, Any]:
    """The benchmark's JSON object (see the module docstring)."""
    root = Path(tempfile.mkdtemp(prefix="vitr-bench-quality-", dir=workdir))
    storage = storage or {}
    try:
        result: dict[str, Any] = {"benchmark": "quality", "model": model.cfg.name,
                                  "head_trained": model.head_trained, "n": n, "prefetch": prefetch,
                                  "candidates": candidates, "storage": storage, "splits": {}}
        for split in splits:
            result["splits"][split] = run_split(model, split, n, modes, root, prefetch, candidates,
                                                 storage)
        return result
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="model name or directory (default: the bundled default model)")
    ap.add_argument("--n", type=int, default=1000, help="gallery images per split")
    ap.add_argument("--splits", nargs="+", default=["test-iid", "test-comp"])
    ap.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    ap.add_argument("--prefetch", type=prefetch_option, default=200,
                    help="stage 1 size N, or 'all': no global stage, MaxSim over every image")
    ap.add_argument("--candidates", type=int, default=50, help="stage 2 size M")
    ap.add_argument("--regions-datatype", choices=("float32", "float16", "turbo8"), default="float32")
    ap.add_argument("--no-regions-copy", action="store_true",
                    help="no float16 copy of the regions in the payload (smaller, slower rerank)")
    ap.add_argument("--device", help="cpu, cuda, ... (default: CUDA when available)")
    ap.add_argument("--workdir", type=Path, help="scratch directory (default: a temp dir)")
    ap.add_argument("--out", type=Path, help="also write the JSON here")
    a = ap.parse_args(argv)
    storage = {"regions_datatype": a.regions_datatype, "regions_in_payload": not a.no_regions_copy}
    return run_model_benchmark("bench_quality", a.model, a.device, lambda model: run(
        model, a.n, a.splits, a.modes, a.prefetch, a.candidates, a.workdir, storage), a.out)


if __name__ == "__main__":
    raise SystemExit(main())
