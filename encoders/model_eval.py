"""Evaluate a VITR model with the Relation Scenes protocol in every score mode.

    python -m vitr_qdrant.encoders.model_eval [--model NAME_OR_DIR] [--n-images 1000]
        [--out results.json] [--markdown]

The model card's table comes from this command (``vitr eval`` runs it too).
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from typing import Sequence

import numpy as np

from .evaluation import EVAL_SEED, build_eval_set, evaluate
from .factory import load_model
from .model import ImageEmbeddings, TextEmbeddings, VitrModel
from .modes import MODES

log = logging.getLogger(__name__)
TABLE_KEYS = ("t2i_r1", "t2i_r5", "t2i_r10", "i2t_r1", "i2t_r5", "i2t_r10", "rsum", "swap_acc",
              "opposite_acc", "attribute_acc", "pair_text", "pair_image", "pair_group")


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


def evaluate_model(model: VitrModel, splits: Sequence[str] = ("test-iid", "test-comp"),
                   modes: Sequence[str] = MODES, n_images: int = 1000, n_pairs: int = 500,
                   seed: int = EVAL_SEED, size: int = 128) -> dict[str, dict[str, dict]]:
    """``{split: {mode: metrics}}`` with the metrics of :func:`evaluation.evaluate`."""
    out: dict[str, dict[str, dict]] = {}
    for split in splits:
        es = build_eval_set(split, n_images=n_images, n_pairs=n_pairs, seed=seed, size=size)
        cache = CachedScorer(model)
        out[split] = {}
        for mode in modes:
            t = time.perf_counter()
            out[split][mode] = evaluate(cache.scorer(mode), es)
            log.info("%s %s: %.1fs", split, mode, time.perf_counter() - t)
    return out


def markdown_table(results: dict[str, dict[str, dict]]) -> str:
    """One row per (split, mode), the protocol's figures as columns (percent)."""
    head = "| split | mode | " + " | ".join(TABLE_KEYS) + " |"
    rows = [head, "|" + "---|" * (len(TABLE_KEYS) + 2)]
    for split, by_mode in results.items():
        for mode, m in by_mode.items():
            rows.append(f"| {split} | {mode} | "
                        + " | ".join(f"{float(m[k]):.1f}" for k in TABLE_KEYS) + " |")
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
    ap.add_argument("--device", default=None)
    ap.add_argument("--out", help="write the JSON here too")
    ap.add_argument("--markdown", action="store_true", help="print a markdown table, not JSON")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    model = load_model(args.model, device=args.device)
    results = evaluate_model(model, args.split or ("test-iid", "test-comp"),
                             args.mode or MODES, args.n_images, args.n_pairs, args.seed, args.size)
    text = json.dumps({"model": model.fingerprint, "results": results}, indent=2)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    print(markdown_table(results) if args.markdown else text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
