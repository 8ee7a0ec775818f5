"""``vitr demo``: relation queries on a gallery of Relation Scenes, VITR next to the global baseline.

Renders a gallery (default 2,000 test-iid scenes), indexes it in an embedded collection, runs
relation queries and their swapped versions (``A left of B`` / ``B left of A``), prints the top
hits of both modes with truth marks, and writes a contact sheet (PNG + HTML) of the top hits with
each query word's grounded region drawn. Offline; a few minutes on two CPU cores.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from .datasets.relation_scenes import Scene, caption, related_pairs, render, sample_scene, truth
from .sheet import MARKS, SheetRow, render_sheet, write_html

DEMO_SEED = 1_000_000_000   # the evaluation range: far from the training seeds
SPLIT = "test-iid"


def _render_one(job: tuple[int, int, str]) -> None:
    seed, size, path = job
    render(sample_scene(seed, SPLIT), size).save(path)


def render_gallery(folder: Path, n: int, size: int = 128, workers: int | None = None) -> list[Path]:
    """Render scenes ``DEMO_SEED .. DEMO_SEED + n - 1`` to ``folder/NNNNN.png`` (existing files kept)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{k:05d}.png" for k in range(n)]
    jobs = [(DEMO_SEED + k, size, str(p)) for k, p in enumerate(paths) if not p.exists()]
    workers = workers or os.cpu_count() or 1
    if workers > 1 and len(jobs) > 64:
        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(_render_one, jobs, chunksize=32))
    else:
        for job in jobs:
            _render_one(job)
    return paths


@lru_cache(maxsize=None)
def scene_of(seed: int) -> Scene:
    """The gallery scene of a seed (scenes are deterministic per seed)."""
    return sample_scene(seed, SPLIT)


def pick_queries(n_queries: int, n_scenes: int, seed: int = 0) -> list[tuple[str, str]]:
    """``(query, swapped)`` pairs from relations that hold in random gallery scenes."""
    rng, out, seen = np.random.default_rng(seed), [], set()
    for k in rng.permutation(n_scenes):
        pairs = related_pairs(scene_of(DEMO_SEED + int(k)))
        if pairs:
            a, rel, b = pairs[int(rng.integers(len(pairs)))]
            query = caption(a, rel, b)
            if query not in seen:
                seen.add(query)
                out.append((query, caption(b, rel, a)))
        if len(out) == n_queries:
            break
    return out


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="vitr demo", description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=2000, help="gallery size (scenes)")
    ap.add_argument("--queries", type=int, default=6, help="relation queries (each also run swapped)")
    ap.add_argument("--top", type=int, default=5, help="hits shown per query")
    ap.add_argument("--out", help="output folder (default: a new temporary folder)")
    ap.add_argument("--model", help="model name or directory (default: the bundled vitr-scenes-s)")
    ap.add_argument("--size", type=int, default=128, help="scene size in pixels")
    ap.add_argument("--workers", type=int, help="render processes (default: CPU count)")
    ap.add_argument("--device", help="cpu, cuda, ... (default: CUDA when available)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the query choice")
    return ap.parse_args(argv)


def _open_store(path: Path, model):
    """The demo's collection; a store left by an earlier run with another model is rebuilt (it
    holds nothing but the demo's renders)."""
    from .collection import VitrCollection
    from .connectors import FingerprintMismatchError

    try:
        return VitrCollection("relation-scenes", path=path, model=model)
    except FingerprintMismatchError:
        print(f"{path} was built with another model: rebuilding it")
        shutil.rmtree(path)
        return VitrCollection("relation-scenes", path=path, model=model)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; prints the comparison and the paths of the contact sheet."""
    args = parse_args(argv)
    from .encoders import load_model
    from .errors import ModelNotFoundError

    try:
        model = load_model(args.model, device=args.device)
    except ModelNotFoundError as exc:
        print(f"vitr demo: {exc}\n  pass --model NAME_OR_DIR (e.g. a directory written by `vitr train`)",
              file=sys.stderr)
        return 2
    if not model.head_trained:   # the demo compares the fused score with the baseline
        print(f"vitr demo: model {model.cfg.name} has no trained VITR head\n  pass --model with a trained head "
              f"(vitr train stage=head ...)", file=sys.stderr)
        return 2
    out = Path(args.out or tempfile.mkdtemp(prefix="vitr-demo-"))
    t0 = time.perf_counter()
    paths = render_gallery(out / "images", args.n, args.size, args.workers)
    t1 = time.perf_counter()
    print(f"rendered {len(paths)} Relation Scenes ({SPLIT}) in {t1 - t0:.1f}s -> {out / 'images'}")
    rows: list[SheetRow] = []
    with _open_store(out / "store", model) as col:
        report = col.add_images(paths, metadata=[{"seed": DEMO_SEED + k} for k in range(len(paths))])
        print(f"indexed in {time.perf_counter() - t1:.1f}s: {report.added} added, {report.skipped} "
              f"already there, {len(report.failed)} failed; model {model.cfg.name} "
              f"(head trained: {model.head_trained})")
        precision = {"vitr": [], "global": []}
        for query, swapped in pick_queries(args.queries, len(paths), args.seed):
            for text in (query, swapped):
                rows += _compare(col, text, args.top, precision)
    print(f"\nmean precision@{args.top} over {len(precision['vitr'])} queries: "
          f"VITR {np.mean(precision['vitr']):.2f}   global (CLIP baseline) {np.mean(precision['global']):.2f}")
    sheet = render_sheet(rows, out / "contact_sheet.png")
    page = write_html(rows, sheet, out / "index.html", title=f"vitr demo: {model.cfg.name} on {len(paths)} scenes")
    print(f"contact sheet: {sheet}\nhtml: {page}")
    return 0


def _compare(col, text: str, top: int, precision: dict[str, list[float]]) -> list[SheetRow]:
    """Print the top hits of both modes side by side; return their contact-sheet rows."""
    rows = []
    for mode in ("vitr", "global"):
        t = time.perf_counter()
        hits = col.search(text, limit=top, mode=mode)
        ms = 1000 * (time.perf_counter() - t)
        marks = [truth(scene_of(int(h.payload["seed"])), text) for h in hits]
        precision[mode].append(float(np.mean([m is True for m in marks])) if marks else 0.0)
        label = "VITR" if mode == "vitr" else "global (CLIP baseline)"
        rows.append(SheetRow(text, f"{label}  {ms:.0f} ms", hits, marks))
    print(f"\n{text!r}")
    print(f"  {'rank':<5}{'VITR':<28}{'global (CLIP baseline)':<28}")
    for k in range(top):
        cells = [f"{MARKS[r.truth[k]]} {r.hits[k].score:7.3f} {Path(r.hits[k].uri).name}" if k < len(r.hits)
                 else "" for r in rows]
        print(f"  {k + 1:<5}{cells[0]:<28}{cells[1]:<28}")
    print(f"  {'P@' + str(top):<5}{precision['vitr'][-1]:<28.2f}{precision['global'][-1]:<28.2f}")
    return rows
