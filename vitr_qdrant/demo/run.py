"""``vitr demo``: relation queries on a rendered gallery, VITR next to the global baseline.

Renders a gallery of the model's world (Object Scenes for the bundled default: about 2,000
test-iid scenes, plus for each demo query a few scene pairs where it holds in one scene and its
swap in the other, the pair test's exchange of centres), indexes it in an
embedded collection, runs the user's relation queries and their swapped versions (``dog left
of cat`` / ``cat left of dog``, template-5 forms, size words, a held-out pair), prints the top
hits of both modes with truth marks, and writes a contact sheet (PNG) and a page (HTML) of the
top hits with each query word's grounded region drawn. Offline; a few minutes on two CPU cores.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import zlib
from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .page import write_page
from ..encoders.data.world import FALLBACK_STRIDE, World
from ..encoders.data.worlds import get_world
from ..encoders.evaluation import EVAL_SEED
from ..encoders.model_eval import model_world
from .sheet import MARKS, SheetRow, render_sheet

DEMO_SEED = EVAL_SEED       # the evaluation range: far from the training seeds
SPLIT = "test-iid"
PAIR_SCENES = 5             # scene pairs added per demo query: the query holds in one, its swap in the other
DESCRIPTION = ("Relation queries on a rendered gallery of the model's world: VITR next to the global "
               "(CLIP) baseline of the same model, with truth marks, a contact sheet and an HTML page.")
LABELS = {"vitr": "VITR", "global": "global (CLIP baseline)"}
# The user's own queries, each with its swap: (query, swapped, split of the scenes that hold them).
OBJECT_QUERIES = (
    ("dog left of cat", "cat left of dog", SPLIT),
    ("a cat with a dog to its left", "a dog with a cat to its left", SPLIT),
    ("cup above book", "book above cup", SPLIT),
    ("the large apple is below the small tree", "the small tree is below the large apple", SPLIT),
    ("car left of bus", "bus left of car", "test-comp"),  # {car, bus} is held out of training
)
LEGEND = {
    True: "the query holds in the scene: both objects are there, once each, in that relation.",
    False: "it does not: an object it names is missing, or the two stand in another relation.",
    None: "the scene cannot say: an object it names is there twice, or the two objects stand in no "
          "clear relation (e.g. one diagonally above the other). Such a hit is neither right nor "
          "wrong, so precision leaves it out.",
}


# A gallery scene: (seed, split, swap). ``swap`` is () for the scene of the seed as sampled, or
# the indices (i, j) of two of its objects whose centres are exchanged (relation-scenes.md 7.3).
Job = tuple[int, str, tuple[int, ...]]


def _map(fn: Callable[[Any], Any], items: Sequence[Any], workers: int | None, worth: int,
         chunksize: int = 1) -> list[Any]:
    """``fn`` over ``items``, in ``workers`` processes (default: one per core) when there are
    more than ``worth`` items, else in this one."""
    workers = min(workers or os.cpu_count() or 1, len(items))
    if workers > 1 and len(items) > worth:
        with ProcessPoolExecutor(workers) as pool:
            return list(pool.map(fn, items, chunksize=chunksize))
    return [fn(item) for item in items]


def _render_one(job: tuple[str, Job, int, str]) -> None:
    world, (seed, split, swap), size, path = job
    get_world(world).render(scene_of(world, seed, split, swap), size).save(path)


def _pair_jobs(task: tuple[str, str, str, str, int]) -> list[Job]:
    """``k`` scene pairs for ``query``: the first scenes of a stream (one per query) where the
    query or its swap holds, each followed by its twin with the two objects' centres exchanged.
    In each pair the query holds in one scene and its swap in the other, so the gallery has
    true hits for both."""
    world, query, swapped, split, k = get_world(task[0]), *task[1:]
    np_a, _, np_b = world.parse_caption(query)
    base = DEMO_SEED + (zlib.crc32(query.encode()) % 1000 + 1) * FALLBACK_STRIDE
    out, s = [], 0
    while len(out) < 2 * k and s < 5_000_000:
        scene = world.sample_scene(base + s, split)
        if world.truth(scene, query) or world.truth(scene, swapped):
            a, b = world.matches(scene, np_a)[0], world.matches(scene, np_b)[0]
            if world.swap_centres(scene, a, b) is not None:
                out += [(base + s, split, ()),
                        (base + s, split, (scene.objects.index(a), scene.objects.index(b)))]
        s += 1
    return out


def gallery_jobs(world: World, n: int, queries: Sequence[tuple[str, str, str]],
                 workers: int | None = None) -> list[Job]:
    """Every gallery scene: ``n`` test-iid scenes, then each query's scene pairs (the queries'
    streams are searched in ``workers`` processes)."""
    jobs: list[Job] = [(DEMO_SEED + k, SPLIT, ()) for k in range(n)]
    tasks = [(world.name, query, swapped, split, PAIR_SCENES) for query, swapped, split in queries]
    return jobs + [job for pairs in _map(_pair_jobs, tasks, workers, worth=1) for job in pairs]


def render_gallery(folder: Path, world: World, jobs: Sequence[Job], size: int = 128,
                   workers: int | None = None) -> list[Path]:
    """Render the scenes of ``jobs`` to ``folder/NNNNN.png``; files of an earlier run with the
    same scenes are kept (``folder/scenes.json`` says which), any others are drawn anew."""
    listing = folder / "scenes.json"
    wanted = json.loads(json.dumps({"world": world.name, "size": size, "scenes": list(jobs)}))
    if listing.is_file() and json.loads(listing.read_text()) != wanted:
        shutil.rmtree(folder)   # another gallery: its files would be indexed under these seeds
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{k:05d}.png" for k in range(len(jobs))]
    todo = [(world.name, job, size, str(p)) for job, p in zip(jobs, paths) if not p.exists()]
    _map(_render_one, todo, workers, worth=64, chunksize=32)
    listing.write_text(json.dumps(wanted) + "\n")
    return paths


@lru_cache(maxsize=None)
def scene_of(world: str, seed: int, split: str, swap: tuple[int, ...] = ()) -> Any:
    """The gallery scene of a job (scenes are deterministic per seed)."""
    w = get_world(world)
    scene = w.sample_scene(seed, split)
    if swap:
        scene = w.swap_centres(scene, scene.objects[swap[0]], scene.objects[swap[1]])
    return scene


def pick_queries(world: World, n_queries: int, n_scenes: int, seed: int = 0
                 ) -> list[tuple[str, str, str]]:
    """``(query, swapped, split)`` from relations that hold in random gallery scenes."""
    rng, out, seen = np.random.default_rng(seed), [], set()
    for k in rng.permutation(n_scenes)[:50 * max(1, n_queries)]:
        pairs = world.related_pairs(scene_of(world.name, DEMO_SEED + int(k), SPLIT))
        if pairs:
            a, rel, b = pairs[int(rng.integers(len(pairs)))]
            query = world.caption(a, rel, b)
            if query not in seen:
                seen.add(query)
                out.append((query, world.caption(b, rel, a), SPLIT))
        if len(out) == n_queries:
            break
    return out


def build_parser() -> argparse.ArgumentParser:
    """The options of ``vitr demo``."""
    ap = argparse.ArgumentParser(prog="vitr demo", description=DESCRIPTION)
    ap.add_argument("--n", type=int, default=2000, help="gallery size (scenes)")
    ap.add_argument("--queries", type=int, default=None,
                    help="random relation queries from gallery scenes, besides the world's own "
                         "(each also run swapped; default 2 in Object Scenes, 6 elsewhere)")
    ap.add_argument("--top", type=int, default=5, help="hits shown per query")
    ap.add_argument("--out", help="output folder (default: a new temporary folder)")
    ap.add_argument("--model", help="model name or directory (default: the bundled default model)")
    ap.add_argument("--size", type=int, default=128, help="scene size in pixels")
    ap.add_argument("--workers", type=int, help="render processes (default: CPU count)")
    ap.add_argument("--device", help="cpu, cuda, ... (default: CUDA when available)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the query choice")
    return ap


def _open_store(path: Path, model, name: str):
    """The demo's collection; a store left by an earlier run with another model, or with another
    first stage of it (its stage 1 would fall back to the global vector), is rebuilt (it holds
    nothing but the demo's renders)."""
    from ..collection import VitrCollection
    from ..connectors import FingerprintMismatchError
    from ..search import first_stage_ok

    try:
        col = VitrCollection(name, path=path, model=model)
    except FingerprintMismatchError:
        print(f"{path} was built with another model: rebuilding it")
        shutil.rmtree(path)
        return VitrCollection(name, path=path, model=model)
    if model.first_stage is None or first_stage_ok(col._store, model):
        return col
    col.close()
    print(f"{path} was built without this model's first stage: rebuilding it")
    shutil.rmtree(path)
    return VitrCollection(name, path=path, model=model)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; prints the comparison and the paths of the contact sheet."""
    args = build_parser().parse_args(argv)
    from ..encoders import load_model
    from ..errors import ModelNotFoundError

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
    world = get_world(model_world(model))
    fixed = list(OBJECT_QUERIES) if world.name == "object-scenes" else []
    t0 = time.perf_counter()
    jobs = gallery_jobs(world, args.n, fixed, args.workers)
    paths = render_gallery(out / "images", world, jobs, args.size, args.workers)
    t1 = time.perf_counter()
    print(f"rendered {len(paths)} {world.name} scenes ({args.n} {SPLIT}, {len(paths) - args.n} "
          f"in pairs for the demo queries: one where the query holds, one where its swap does) "
          f"in {t1 - t0:.1f}s -> {out / 'images'}")
    rows: list[SheetRow] = []
    with _open_store(out / "store", model, world.name) as col:
        report = col.add_images(paths, metadata=[{"seed": seed, "split": split, "swap": list(swap)}
                                                 for seed, split, swap in jobs])
        print(f"indexed in {time.perf_counter() - t1:.1f}s: {report.added} added, {report.skipped} "
              f"already there, {len(report.failed)} failed; model {model.cfg.name} "
              f"(head trained: {model.head_trained})")
        precision = {"vitr": [], "global": []}
        n_random = args.queries if args.queries is not None else 2 if fixed else 6
        for query, swapped, _ in fixed + pick_queries(world, n_random, args.n, args.seed):
            for text in (query, swapped):
                rows += _compare(col, world, text, args.top, precision)
    means = {mode: float(np.mean(p)) if p else float("nan") for mode, p in precision.items()}
    print(f"\nmean precision@{args.top} (over the hits whose truth is defined): "
          + "   ".join(f"{LABELS[m]} {v:.2f}" for m, v in means.items()))
    sheet = render_sheet(rows, out / "contact_sheet.png")
    intro = [f"The model {model.cfg.name} searched {len(paths)} rendered {world.name} scenes "
             f"in an embedded Qdrant collection. Each relation query runs twice, as written and with its "
             f"two objects swapped ('A left of B', then 'B left of A'): a model that understands relations "
             f"returns different images for the two; the global score (the CLIP baseline of the same "
             f"backbone) sees nearly the same words and returns nearly the same images.",
             f"Each query shows its top {args.top} hits in both modes with a truth mark. Hover an image to "
             f"see which region each query word was matched to (the fusion head's attention)."]
    summary = [(f"{LABELS[m]}, precision@{args.top}", f"{v:.2f} over {len(precision[m])} queries")
               for m, v in means.items()]
    page = write_page(rows, sheet, out / "index.html", title=f"vitr demo: {model.cfg.name} on {len(paths)} scenes",
                      intro=intro, legend=LEGEND, summary=summary)
    print(f"contact sheet: {sheet}\nhtml: {page}")
    return 0


def precision_of(marks: Sequence[bool | None]) -> float | None:
    """The share of true marks among the defined ones (None when no hit's truth is defined)."""
    defined = [m for m in marks if m is not None]
    return sum(defined) / len(defined) if defined else None


def _compare(col, world: World, text: str, top: int, precision: dict[str, list[float]]
             ) -> list[SheetRow]:
    """Print the top hits of both modes side by side; return their contact-sheet rows."""
    rows = []
    for mode in ("vitr", "global"):
        t = time.perf_counter()
        hits = col.search(text, limit=top, mode=mode)
        ms = 1000 * (time.perf_counter() - t)
        marks = [world.truth(scene_of(world.name, int(h.payload["seed"]), h.payload.get("split", SPLIT),
                                      tuple(h.payload.get("swap", ()))), text) for h in hits]
        p = precision_of(marks)
        if p is not None:
            precision[mode].append(p)
        rows.append(SheetRow(text, f"{LABELS[mode]}  {ms:.0f} ms", hits, marks, p))
    print(f"\n{text!r}")
    print(f"  {'rank':<5}{'VITR':<28}{'global (CLIP baseline)':<28}")
    for k in range(top):
        cells = [f"{MARKS[r.truth[k]]} {r.hits[k].score:7.3f} {Path(r.hits[k].uri).name}" if k < len(r.hits)
                 else "" for r in rows]
        print(f"  {k + 1:<5}{cells[0]:<28}{cells[1]:<28}")
    shown = ["-" if r.precision is None else f"{r.precision:.2f}" for r in rows]
    print(f"  {'P@' + str(top):<5}{shown[0]:<28}{shown[1]:<28}")
    return rows
