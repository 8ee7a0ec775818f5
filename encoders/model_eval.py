"""Evaluate a VITR model with its world's protocol in every score mode.

    python -m vitr_qdrant.encoders.model_eval [--model NAME_OR_DIR] [--n-images 1000]
        [--world W] [--art SET] [--out results.json] [--markdown]

The world is the one the model was trained on (its config's ``world``) unless ``--world`` says
otherwise; ``--art`` draws every scene in one art set (leave-one-art-set-out). The model cards'
tables come from this command (``vitr eval`` runs it too); in Object Scenes they have a row per
art set as well.
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from typing import Sequence

import numpy as np

from .data.worlds import WORLD_NAMES, get_world
from .evaluation import EVAL_SEED, build_eval_set, evaluate
from .factory import load_model
from .model import ImageEmbeddings, TextEmbeddings, VitrModel
from .modes import MODES

log = logging.getLogger(__name__)
RETRIEVAL_KEYS = ("t2i_r1", "t2i_r5", "t2i_r10", "i2t_r1", "i2t_r5", "i2t_r10", "rsum")
PAIR_KEYS = ("pair_text", "pair_image", "pair_group")


def table_keys(world: str) -> tuple[str, ...]:
    """The columns of a world's table: retrieval, its swap-test kinds, the pair test."""
    kinds = get_world(world).swap_kinds
    return (*RETRIEVAL_KEYS, *(f"{k}_acc" for k in kinds), *PAIR_KEYS)


class CachedScorer:
    """``score(images, texts)`` for the evaluation protocol, encoding each image and text once
    (shared across modes: the protocol scores the same images many times)."""

    def __init__(self, model: VitrModel):
        self.model = model
        self._img: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._txt: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def _images(self, images) -> ImageEmbeddings:
        todo = [im for im in images if id(im) not in self._img]
        if todo:
            e = self.model.encode_images(todo)
            for k, im in enumerate(todo):
                self._img[id(im)] = (e.global_vectors[k], e.region_vectors[k])
        g, r = zip(*(self._img[id(im)] for im in images))
        return ImageEmbeddings(np.stack(g), np.stack(r))

    def _texts(self, texts) -> TextEmbeddings:
        todo = sorted({t for t in texts if t not in self._txt})
        if todo:
            e = self.model.encode_texts(todo)
            for k, t in enumerate(todo):
                self._txt[t] = (e.global_vectors[k], e.token_vectors[k])
        g, w = zip(*(self._txt[t] for t in texts))
        return TextEmbeddings(np.stack(g), list(w))

    def scorer(self, mode: str):
        def score(images, texts) -> np.ndarray:
            return self.model.score_embeddings(self._images(images), self._texts(texts), mode)
        return score


def model_world(model: VitrModel) -> str:
    """The world a model was trained on (Relation Scenes for configs that do not say)."""
    return model.cfg.world or "relation-scenes"


def evaluate_model(model: VitrModel, splits: Sequence[str] = ("test-iid", "test-comp"),
                   modes: Sequence[str] = MODES, n_images: int = 1000, n_pairs: int = 500,
                   seed: int = EVAL_SEED, size: int = 128, world: str | None = None,
                   art: str | None = None) -> dict[str, dict[str, dict]]:
    """``{split: {mode: metrics}}`` with the metrics of :func:`evaluation.evaluate`."""
    world = world or model_world(model)
    out: dict[str, dict[str, dict]] = {}
    for split in splits:
        es = build_eval_set(split, n_images=n_images, n_pairs=n_pairs, seed=seed, size=size,
                            world=world, art=art)
        cache = CachedScorer(model)
        out[split] = {}
        for mode in modes:
            t = time.perf_counter()
            out[split][mode] = evaluate(cache.scorer(mode), es)
            log.info("%s %s: %.1fs", split, mode, time.perf_counter() - t)
    return out


def _cell(value) -> str:
    return "–" if value is None else f"{float(value):.1f}"


def markdown_table(results: dict[str, dict[str, dict]], world: str = "relation-scenes") -> str:
    """One row per (split, mode), and per art set where the world has them; the protocol's
    figures as columns (percent; – where there was nothing to count)."""
    keys = table_keys(world)
    arts = bool(get_world(world).art_sets)  # an art column only where the world has art sets
    head = ["split", "mode", *(["art"] if arts else []), *keys]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for split, by_mode in results.items():
        for mode, m in by_mode.items():
            groups = [(m.get("art", "all"), m)] + sorted(m.get("by_art", {}).items())
            if m.get("art"):  # one art set throughout: its by_art row repeats the first
                groups = groups[:1]
            for art, figures in groups:
                cells = [split, mode, *([art] if arts else []), *(_cell(figures.get(k)) for k in keys)]
                rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="vitr eval", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="name or model directory (default: bundled)")
    ap.add_argument("--split", action="append", choices=("test-iid", "test-comp"))
    ap.add_argument("--mode", action="append", choices=MODES)
    ap.add_argument("--n-images", type=int, default=1000)
    ap.add_argument("--n-pairs", type=int, default=500)
    ap.add_argument("--seed", type=int, default=EVAL_SEED)
    ap.add_argument("--size", type=int, default=128, help="render size of the scenes")
    ap.add_argument("--world", choices=WORLD_NAMES, default=None,
                    help="the world to evaluate on (default: the model's own)")
    ap.add_argument("--art", default=None,
                    help="Object Scenes: draw every scene in this art set (leave-one-out)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--out", help="write the JSON here too")
    ap.add_argument("--markdown", action="store_true", help="print a markdown table, not JSON")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    model = load_model(args.model, device=args.device)
    world = args.world or model_world(model)
    results = evaluate_model(model, args.split or ("test-iid", "test-comp"),
                             args.mode or MODES, args.n_images, args.n_pairs, args.seed, args.size,
                             world, args.art)
    text = json.dumps({"model": model.fingerprint, "world": world, "art": args.art,
                       "results": results}, indent=2)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    print(markdown_table(results, world) if args.markdown else text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
