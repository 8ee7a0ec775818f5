"""Reference scorers for both worlds: bounds and sanity checks for the evaluation protocol.

- ``oracle``: reads the ground-truth scene that :func:`~.evaluation.build_eval_set` attaches to
  each image (``image.info["scene"]``, ``image.info["world"]``) and scores with ``truth``: the
  upper bound (100 %).
- ``random``: uniform noise, the chance level of every figure.
- ``bag``: a relation-blind oracle that counts the caption's noun phrases present in the scene:
  what perfect recognition without relations achieves (ties on every swap, so 0 %).
- ``colors``: a relation-blind bag of colours (pixel share of each colour a caption names),
  the failure mode of CLIP-style models: it retrieves by content but cannot tell ``A rel B``
  from ``B rel A`` (ties, so 0 % under the protocol's strict comparisons).
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from PIL import Image

from .data.relation_scenes import COLORS, parse_caption
from .data.worlds import get_world

__all__ = ["oracle_scorer", "random_scorer", "bag_scorer", "color_scorer", "SCORERS"]

Scorer = Callable[[Sequence[Image.Image], Sequence[str]], np.ndarray]
_TRUTH_SCORE = {True: 1.0, None: 0.0, False: -1.0}


def _scenes(images: Sequence[Image.Image]) -> list[tuple]:
    if any("scene" not in im.info for im in images):
        raise ValueError("reference scorers need images from build_eval_set (image.info['scene'])")
    return [(get_world(im.info.get("world", "relation-scenes")), im.info["scene"])
            for im in images]


def oracle_scorer() -> Scorer:
    """Scores 1 / 0 / -1 for true / undefined / false captions, from the attached scene."""
    def score(images: Sequence[Image.Image], texts: Sequence[str]) -> np.ndarray:
        return np.array([[_TRUTH_SCORE[w.truth(s, t)] for t in texts]
                         for w, s in _scenes(images)])
    return score


def bag_scorer() -> Scorer:
    """How many of the caption's two noun phrases match an object of the attached scene."""
    def score(images: Sequence[Image.Image], texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(images), len(texts)))
        for i, (world, scene) in enumerate(_scenes(images)):
            for j, text in enumerate(texts):
                np_a, _, np_b = world.parse_caption(text)
                out[i, j] = sum(bool(world.matches(scene, p)) for p in (np_a, np_b))
        return out
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
    "oracle": oracle_scorer, "random": random_scorer, "bag": bag_scorer, "colors": color_scorer,
}
