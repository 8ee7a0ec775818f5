"""Evaluation protocol of both worlds (relation-scenes.md section 7, object-scenes.md section 8)
and recall@K for real datasets.

Build the data once, score it with any scorer, as often as needed::

    eval_set = build_eval_set("test-comp", n_images=1000, n_pairs=500)
    objects = build_eval_set("test-iid", world="object-scenes", art="emojione")
    metrics = evaluate(model_score, eval_set)        # JSON-serialisable dict
    everything = evaluate_splits(model_score)        # {"test-iid": {...}, "test-comp": {...}}

A scorer is ``score(images: list[PIL.Image], texts: list[str]) -> array [n_images, n_texts]``
(numpy or a torch tensor); higher means more relevant. All figures are percentages. Every
comparison is strict: a tie counts as a failure, so a scorer that cannot tell two captions apart
gets no credit for them (in ranking, tied irrelevant items are placed before the relevant one).

In Object Scenes every figure is also reported per art set (``metrics["by_art"]``); ``art=``
draws the whole set in one art set (leave-one-art-set-out: evaluate on the set left out of
training). Run as ``python -m vitr_qdrant.encoders.evaluation --scorer oracle`` for a JSON
report with one of the reference scorers of :mod:`vitr_qdrant.encoders.baselines`.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np
from PIL import Image

from .data.world import SPLITS, World, check_split, split_rng
from .data.worlds import WORLD_NAMES, get_world

__all__ = [
    "EVAL_SEED", "PAIR_SEED_OFFSET", "KS", "ScoreFn", "EvalSet", "build_eval_set", "evaluate",
    "evaluate_splits", "evaluate_retrieval", "recall_at_k", "relevance_matrix",
    "relevant_by_counts", "score_lists", "main",
]


ScoreFn = Callable[[list[Image.Image], list[str]], np.ndarray]
# Evaluation scenes come from seeds far above the training stream (train seeds count up from 0).
EVAL_SEED = 1_000_000_000
PAIR_SEED_OFFSET = 1 << 30  # pair-test scenes: a stream of their own, apart from the gallery's
KS = (1, 5, 10)


@dataclass
class EvalSet:
    """Everything the protocol scores for one split, built once by :func:`build_eval_set`.

    Images carry their scene in ``image.info["scene"]`` and the world's name in
    ``image.info["world"]`` (ground truth for oracle scorers and debugging; scorers under test
    must not read them).
    """

    split: str
    seed: int
    size: int
    scenes: list[Any]
    images: list[Image.Image]
    captions: list[str]                 # captions[i] is true for images[i]; canonical form
    relevance: np.ndarray               # bool [n_images, n_captions]: truth(...) is True
    negatives: list[dict[str, str]]     # per gallery image: kind -> caption false by truth
    pair_images: list[tuple[Image.Image, Image.Image]] = field(default_factory=list)
    pair_captions: list[tuple[str, str]] = field(default_factory=list)   # (c, c')
    world: World = field(default_factory=lambda: get_world("relation-scenes"))
    art: str | None = None              # the one art set of every scene, if drawn so


def _render(world: World, scene: Any, size: int) -> Image.Image:
    image = world.render(scene, size)
    image.info["scene"], image.info["world"] = scene, world.name
    return image


def relevance_matrix(scenes: Sequence[Any], captions: Sequence[str],
                     world: str | World = "relation-scenes") -> np.ndarray:
    """Bool [n_scenes, n_captions]: ``truth(scene, caption) is True``.

    Only (scene, caption) combinations whose two named objects are both present can be true,
    so ``truth`` runs on those alone: near-linear instead of quadratic.
    """
    world = get_world(world)
    by_keys: dict[tuple, list[int]] = {}
    for j, text in enumerate(captions):
        np_a, _, np_b = world.parse_caption(text)
        by_keys.setdefault((tuple(np_a[1:]), tuple(np_b[1:])), []).append(j)
    out = np.zeros((len(scenes), len(captions)), dtype=bool)
    for i, scene in enumerate(scenes):
        present = {o.key for o in scene.objects}
        for ka in present:
            for kb in present:
                for j in by_keys.get((ka, kb), ()):
                    out[i, j] = world.truth(scene, captions[j]) is True
    return out


def _gallery(world: World, split: str, n_images: int, seed: int, scene_kw: dict
             ) -> tuple[list[Any], list[str], list[dict[str, str]]]:
    rng = split_rng(seed, split, "gallery")
    scenes, captions, negatives = [], [], []
    for k in range(n_images):
        scene = world.first_scene(seed + k, split, **scene_kw)
        pairs = world.related_pairs(scene)
        a, rel, b = pairs[int(rng.integers(len(pairs)))]
        negs = world.hard_negatives(scene, a, rel, b)
        scenes.append(scene)
        captions.append(world.caption(a, rel, b))
        negatives.append({kind: negs[kind] for kind in world.swap_kinds if kind in negs})
    return scenes, captions, negatives


def build_eval_set(split: str = "test-iid", n_images: int = 1000, n_pairs: int = 500,
                   seed: int = EVAL_SEED, size: int = 128, world: str | World = "relation-scenes",
                   art: str | None = None) -> EvalSet:
    """Build the gallery, swap and pair-test data of the protocol for one split.

    Args:
        split: ``test-iid``, ``test-comp`` (or ``train``, for sanity checks).
        n_images: gallery size N; image k is the first scene of seed ``seed + k``'s stream
            with a related pair, with one canonical caption about one of them (in
            ``test-comp`` a held-out composition). The swap test reuses these.
        n_pairs: number of pair-test examples (two images each), from seeds
            ``seed + PAIR_SEED_OFFSET + k``.
        seed: first scene seed; the default keeps evaluation scenes away from training seeds.
        size: image side in pixels.
        world: ``relation-scenes`` or ``object-scenes``.
        art: Object Scenes only: draw every scene in this art set (default: uniform over all).
    """
    world = get_world(world)
    check_split(split)
    if n_images < 1 or n_pairs < 0:
        raise ValueError("n_images must be >= 1 and n_pairs >= 0")
    if art is not None and art not in world.art_sets:
        raise ValueError(f"unknown art set {art!r} for {world.name}; expected one of "
                         f"{world.art_sets or 'none (this world has no art sets)'}")
    scene_kw = {} if art is None else {"art": art}
    scenes, captions, negatives = _gallery(world, split, n_images, seed, scene_kw)
    pair_images, pair_captions = [], []
    for k in range(n_pairs):
        scene1, scene2, c, c_swapped = world.pair_example(seed + PAIR_SEED_OFFSET + k, split,
                                                          **scene_kw)
        pair_images.append((_render(world, scene1, size), _render(world, scene2, size)))
        pair_captions.append((c, c_swapped))
    return EvalSet(split=split, seed=seed, size=size, scenes=scenes,
                   images=[_render(world, s, size) for s in scenes], captions=captions,
                   relevance=relevance_matrix(scenes, captions, world), negatives=negatives,
                   pair_images=pair_images, pair_captions=pair_captions, world=world, art=art)


# --- scoring --------------------------------------------------------------------------------

def _as_scores(values, shape: tuple[int, ...]) -> np.ndarray:
    if hasattr(values, "detach"):  # torch tensor, possibly on GPU or in bf16
        values = values.detach().float().cpu().numpy()
    arr = np.asarray(values, dtype=np.float64)
    if arr.shape != shape:
        raise ValueError(f"scorer returned shape {arr.shape}, expected {shape}")
    if not np.isfinite(arr).all():
        raise ValueError("scorer returned non-finite scores (NaN or inf)")
    return arr


def _score_matrix(score_fn: ScoreFn, images: Sequence[Image.Image], texts: Sequence[str],
                  chunk_size: int) -> np.ndarray:
    rows = []
    for start in range(0, len(images), chunk_size):
        chunk = list(images[start:start + chunk_size])
        rows.append(_as_scores(score_fn(chunk, list(texts)), (len(chunk), len(texts))))
    return np.concatenate(rows) if rows else np.zeros((0, len(texts)))


def score_lists(score_fn: ScoreFn, images: Sequence[Image.Image],
                text_lists: Sequence[Sequence[str]], chunk_size: int = 32,
                score_pairs: ScoreFn | None = None) -> list[np.ndarray]:
    """Scores of each image against its own list of texts: ``out[i][j] = s(images[i],
    text_lists[i][j])``.

    With ``score_pairs(images, texts) -> array [n]`` (scores of aligned pairs) the pairs are
    scored directly, ``8 * chunk_size`` per call. Otherwise each chunk of images is scored
    against the union of its texts in one ``score_fn`` call and the needed entries are picked;
    neighbouring images that share texts (as pair-test images do) then cost nothing extra.
    """
    lengths = [len(ts) for ts in text_lists]
    if score_pairs is not None:
        flat_images = [im for im, n in zip(images, lengths) for _ in range(n)]
        flat_texts = [t for ts in text_lists for t in ts]
        step, parts = 8 * chunk_size, []
        for s in range(0, len(flat_texts), step):
            parts.append(_as_scores(score_pairs(flat_images[s:s + step], flat_texts[s:s + step]),
                                    (len(flat_texts[s:s + step]),)))
        flat = np.concatenate(parts) if parts else np.zeros(0)
        return np.split(flat, np.cumsum(lengths)[:-1]) if lengths else []
    out: list[np.ndarray] = []
    for start in range(0, len(images), chunk_size):
        lists = text_lists[start:start + chunk_size]
        union = list(dict.fromkeys(t for ts in lists for t in ts))
        column = {t: k for k, t in enumerate(union)}
        m = _as_scores(score_fn(list(images[start:start + chunk_size]), union),
                       (len(lists), len(union)))
        out.extend(m[r, [column[t] for t in ts]] for r, ts in enumerate(lists))
    return out


# --- metrics --------------------------------------------------------------------------------

def _percent(hits) -> float:
    hits = np.asarray(hits, dtype=bool)
    return 100.0 * float(hits.mean()) if hits.size else 0.0


def recall_at_k(sim: np.ndarray, relevant: np.ndarray, ks: Iterable[int] = KS
                ) -> tuple[dict[int, float], int]:
    """Recall@K in percent for queries = rows of ``sim`` [n_queries, n_items].

    ``relevant`` is a bool matrix of the same shape. A query counts as found at K if a relevant
    item ranks within the top K; irrelevant items tied with the best relevant one rank before
    it. Queries without any relevant item are left out; their count is returned second.
    """
    sim, relevant = np.asarray(sim, dtype=np.float64), np.asarray(relevant, dtype=bool)
    if sim.shape != relevant.shape:
        raise ValueError(f"sim {sim.shape} and relevant {relevant.shape} differ in shape")
    has = relevant.any(axis=1)
    best = np.where(relevant, sim, -np.inf).max(axis=1, initial=-np.inf)
    ranks = 1 + ((sim >= best[:, None]) & ~relevant).sum(axis=1)
    ranks = ranks[has]
    found = {k: _percent(ranks <= k) for k in ks}
    return found, int((~has).sum())


def _relevance_mask(relevant, shape: tuple[int, int]) -> np.ndarray:
    if isinstance(relevant, np.ndarray):
        return relevant.astype(bool)
    mask = np.zeros(shape, dtype=bool)
    if len(relevant) != shape[0]:
        raise ValueError(f"relevant has {len(relevant)} entries for {shape[0]} images")
    for i, items in enumerate(relevant):
        mask[i, list(items)] = True
    return mask


def evaluate_retrieval(sim: np.ndarray, relevant: Sequence[Iterable[int]] | np.ndarray,
                       ks: Sequence[int] = KS) -> dict[str, float | int]:
    """Recall@K both directions for a similarity matrix [n_images, n_texts] (the VITR protocol).

    Args:
        sim: scores, higher is better; rows are images, columns texts.
        relevant: for each image the indices of its correct texts (e.g. its 5 captions), or a
            bool matrix shaped like ``sim``. Several correct items per query are allowed.
        ks: the cut-offs.

    Returns:
        ``i2t_r{k}``, ``t2i_r{k}`` (percent), ``rsum`` (their sum), and ``i2t_n`` / ``t2i_n``,
        the numbers of queries with at least one relevant item (others are left out).
    """
    sim = _as_scores(sim, np.shape(sim))
    mask = _relevance_mask(relevant, sim.shape)
    out: dict[str, float | int] = {}
    rsum = 0.0
    for name, s, m in (("i2t", sim, mask), ("t2i", sim.T, mask.T)):
        found, missing = recall_at_k(s, m, ks)
        out.update({f"{name}_r{k}": v for k, v in found.items()})
        out[f"{name}_n"] = int(s.shape[0] - missing)
        rsum += sum(found.values())
    out["rsum"] = float(rsum)
    return out


def relevant_by_counts(counts: Sequence[int]) -> list[set[int]]:
    """Relevance lists for texts laid out image by image: image i owns the next counts[i]."""
    bounds = np.concatenate([[0], np.cumsum(counts)]).astype(int)
    return [set(range(bounds[i], bounds[i + 1])) for i in range(len(counts))]


def _swap_metrics(scores: list[np.ndarray], negatives: list[dict[str, str]],
                  kinds: Sequence[str]) -> dict:
    out: dict[str, float | int] = {}
    for kind in kinds:
        wins = [s[0] > s[1 + list(negs).index(kind)]
                for s, negs in zip(scores, negatives) if kind in negs]
        out[f"{kind}_acc"] = _percent(wins) if wins else None  # nothing to count: no figure
        out[f"{kind}_n"] = len(wins)
    return out


def _pair_metrics(scores: list[np.ndarray]) -> dict:
    if not scores:
        return {"pair_text": None, "pair_image": None, "pair_group": None, "pair_n": 0}
    s = np.stack(scores).reshape(-1, 2, 2)  # [example, image 1|2, caption c|c']
    text = (s[:, 0, 0] > s[:, 0, 1]) & (s[:, 1, 1] > s[:, 1, 0])
    image = (s[:, 0, 0] > s[:, 1, 0]) & (s[:, 1, 1] > s[:, 0, 1])
    return {"pair_text": _percent(text), "pair_image": _percent(image),
            "pair_group": _percent(text & image), "pair_n": int(len(s))}


def _figures(es: EvalSet, sim: np.ndarray, swap: list[np.ndarray], pairs: list[np.ndarray],
             rows: np.ndarray, pair_rows: np.ndarray) -> dict[str, float | int]:
    """Every figure over the gallery images ``rows`` (as queries: image-to-text ranks all
    captions, text-to-image ranks each of their captions over all images) and the pair-test
    examples ``pair_rows``."""
    out: dict[str, float | int] = {}
    for name, s, m in (("i2t", sim[rows], es.relevance[rows]),
                       ("t2i", sim[:, rows].T, es.relevance[:, rows].T)):
        found, _ = recall_at_k(s, m)
        out.update({f"{name}_r{k}": v for k, v in found.items()})
    out["rsum"] = float(sum(out.values()))
    out.update(_swap_metrics([swap[i] for i in rows], [es.negatives[i] for i in rows],
                             es.world.swap_kinds))
    out.update(_pair_metrics([pairs[2 * k + j] for k in pair_rows for j in (0, 1)]))
    return out


def evaluate(score_fn: ScoreFn, eval_set: EvalSet, chunk_size: int = 100, pair_chunk: int = 32,
             score_pairs: ScoreFn | None = None) -> dict[str, Any]:
    """Score ``eval_set`` with ``score_fn`` and return every figure of the protocol.

    Args:
        score_fn: ``score(images, texts) -> [n_images, n_texts]``.
        eval_set: from :func:`build_eval_set`.
        chunk_size: gallery images per ``score_fn`` call (each call scores all N captions).
        pair_chunk: images per call in the swap and pair tests (see :func:`score_lists`).
        score_pairs: optional fast path scoring aligned (image, text) pairs -> [n].

    Returns:
        A JSON-serialisable dict: ``t2i_r1/5/10``, ``i2t_r1/5/10``, ``rsum``; for each kind of
        the world's swap test (Relation Scenes: swap, opposite, attribute; Object Scenes:
        swap, opposite, distractor) ``{kind}_acc`` and its count ``{kind}_n``; ``pair_text``,
        ``pair_image``, ``pair_group``, ``pair_n`` (a figure with nothing to count, e.g. an art
        set without pair-test examples, is None); the set's description; and in worlds with
        art sets ``by_art``: the same figures per art set (the gallery images, captions and
        pair examples drawn in it).
    """
    started = time.perf_counter()
    es = eval_set
    sim = _score_matrix(score_fn, es.images, es.captions, chunk_size)
    swap_texts = [[c, *negs.values()] for c, negs in zip(es.captions, es.negatives)]
    swap = score_lists(score_fn, es.images, swap_texts, pair_chunk, score_pairs)
    pair_images = [im for pair in es.pair_images for im in pair]
    pair_texts = [list(caps) for caps in es.pair_captions for _ in range(2)]
    pairs = score_lists(score_fn, pair_images, pair_texts, pair_chunk, score_pairs)
    out: dict[str, Any] = {"split": es.split, "world": es.world.name, "n_images": len(es.images),
                           "seed": es.seed, "size": es.size}
    if es.art is not None:
        out["art"] = es.art
    out.update(_figures(es, sim, swap, pairs, np.arange(len(es.images)),
                        np.arange(len(es.pair_images))))
    if es.world.art_sets:
        arts = np.array([s.art for s in es.scenes])
        pair_arts = np.array([p[0].info["scene"].art for p in es.pair_images])
        out["by_art"] = {art: _figures(es, sim, swap, pairs, np.flatnonzero(arts == art),
                                       np.flatnonzero(pair_arts == art))
                         for art in es.world.art_sets if (arts == art).any()}
    out["seconds"] = round(time.perf_counter() - started, 3)
    return out


def evaluate_splits(score_fn: ScoreFn, splits: Sequence[str] = ("test-iid", "test-comp"),
                    n_images: int = 1000, n_pairs: int = 500, seed: int = EVAL_SEED,
                    size: int = 128, world: str | World = "relation-scenes",
                    art: str | None = None, **kwargs) -> dict[str, dict]:
    """Build each split's eval set and :func:`evaluate` it; ``{split: metrics}``.

    Rebuilds the data on every call; a training loop should keep the sets of
    :func:`build_eval_set` and call :func:`evaluate` instead. ``kwargs`` go to ``evaluate``.
    """
    return {split: evaluate(score_fn, build_eval_set(split, n_images, n_pairs, seed, size,
                                                     world, art), **kwargs)
            for split in splits}


# --- command line ---------------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> int:
    """``python -m vitr_qdrant.encoders.evaluation``: evaluate a reference scorer, print JSON."""
    from .baselines import SCORERS

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--split", action="append", choices=SPLITS,
                   help="split to evaluate (repeatable; default test-iid and test-comp)")
    p.add_argument("--n-images", type=int, default=1000)
    p.add_argument("--n-pairs", type=int, default=500)
    p.add_argument("--seed", type=int, default=EVAL_SEED)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--world", choices=WORLD_NAMES, default="relation-scenes")
    p.add_argument("--art", default=None, help="Object Scenes: draw every scene in this art set")
    p.add_argument("--scorer", choices=sorted(SCORERS), default="oracle")
    p.add_argument("--out", help="also write the JSON report to this file")
    args = p.parse_args(argv)
    report = {"scorer": args.scorer, "splits": evaluate_splits(
        SCORERS[args.scorer](), args.split or ("test-iid", "test-comp"), args.n_images,
        args.n_pairs, args.seed, args.size, args.world, args.art)}
    text = json.dumps(report, indent=2)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
