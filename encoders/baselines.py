"""Reference scorers for Relation Scenes: bounds and sanity checks for the evaluation protocol.

- ``oracle``: reads the ground-truth scene that :func:`~.evaluation.build_eval_set` attaches to
  each image (``image.info["scene"]``) and scores with ``truth``: the upper bound (100 %).
- ``random``: uniform noise, the chance level of every figure.
- ``colors``: a relation-blind bag of colours (pixel share of each colour a caption names),
  the failure mode of CLIP-style models: it retrieves by content but cannot tell ``A rel B``
  from ``B rel A`` (ties, so 0 % under the protocol's strict comparisons).
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from PIL import Image

from .data.relation_scenes import COLORS, parse_caption, truth

__all__ = ["oracle_scorer", "random_scorer", "color_scorer", "SCORERS"]

Scorer = Callable[[Sequence[Image.Image], Sequence[str]], np.ndarray]
_TRUTH_SCORE = {True: 1.0, None: 0.0, False: -1.0}


def oracle_scorer() -> Scorer:
    """Scores 1 / 0 / -1 for true / undefined / false captions, from the attached scene."""
    def score(images: Sequence[Image.Image], texts: Sequence[str]) -> np.ndarray:
        scenes = [im.info.get("scene") for im in images]
        if any(s is None for s in scenes):
            raise ValueError("the oracle needs images from build_eval_set (image.info['scene'])")
        return np.array([[_TRUTH_SCORE[truth(s, t)] for t in texts] for s in scenes])
    return score


def random_scorer(seed: int = 0) -> Scorer:
    """Independent uniform scores; deterministic for a given sequence of calls."""
    rng = np.random.default_rng(seed)

    def score(images: Sequence[Image.Image], texts: Sequence[str]) -> np.ndarray:
        return rng.random((len(images), len(texts)))
    return score


def _color_shares(image: Image.Image) -> np.ndarray:
    small = image.convert("RGB").resize((32, 32), Image.NEAREST)  # shares barely change
    arr = np.asarray(small, dtype=np.float32).reshape(-1, 1, 3)
    ref = np.array(list(COLORS.values()), dtype=np.float32)[None]
    dist = np.abs(arr - ref).max(axis=2)                     # [pixels, colours]
    return (dist <= 30).mean(axis=0)


def color_scorer() -> Scorer:
    """Sum over the caption's two colours of their pixel share in the image."""
    names = list(COLORS)

    def score(images: Sequence[Image.Image], texts: Sequence[str]) -> np.ndarray:
        shares = np.stack([_color_shares(im) for im in images])
        words = np.zeros((len(texts), len(names)))
        for j, text in enumerate(texts):
            (_, ca, _), _, (_, cb, _) = parse_caption(text)
            words[j, names.index(ca)] += 1
            words[j, names.index(cb)] += 1
        return shares @ words.T
    return score


SCORERS: dict[str, Callable[[], Scorer]] = {
    "oracle": oracle_scorer, "random": random_scorer, "colors": color_scorer,
}
