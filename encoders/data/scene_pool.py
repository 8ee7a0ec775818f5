"""A pre-rendered pool of Relation Scenes for training, with captions sampled per step.

Each pool entry is a ``train`` scene with at least one related pair; where the spec's placement
rules allow, the entry also carries its *partner*: the same scene with the centres of one related
pair exchanged (an image-side hard negative, as in the pair test). Images are stored as uint8 at
the model's input size, resized exactly as inference resizes them.
"""
from __future__ import annotations

import logging
import random
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image
from tqdm import tqdm

from .relation_scenes import (Scene, caption, hard_negatives, related_pairs, render,
                              sample_scene, swap_centres, truth)

log = logging.getLogger(__name__)
FLIP_WORDS = {"left": "right", "right": "left"}
TEMPLATE_PREFIX_WORDS = (0, 1, 1, 3)  # words before the first noun phrase in each template


class NounPhrases(NamedTuple):
    """Word spans [start, end) of a caption's two noun phrases and their objects' centres."""

    span_a: tuple[int, int]
    span_b: tuple[int, int]
    centre_a: tuple[float, float]
    centre_b: tuple[float, float]


@dataclass
class ScenePool:
    images: np.ndarray  # (N, S, S, 3) uint8 at the model input size
    scenes: list[Scene]
    partner: np.ndarray  # (N,) index of the partner image, or -1

    def __len__(self) -> int:
        return len(self.scenes)


def _scenes(seed: int) -> list[Scene]:
    """The pool entry of ``seed``: a train scene with a related pair, and its partner."""
    k = 0
    while not (pairs := related_pairs(scene := sample_scene(seed * 16 + k, "train"))):
        k += 1
    a, _, b = pairs[random.Random(seed).randrange(len(pairs))]
    other = swap_centres(scene, a, b)
    return [scene] if other is None else [scene, other]


def _render_entry(args: tuple[int, int, int]) -> list[np.ndarray]:
    seed, render_size, model_size = args
    return [np.asarray(render(s, render_size).resize((model_size, model_size), Image.BICUBIC))
            for s in _scenes(seed)]


def _assemble(entries, scenes_of) -> tuple[list[Scene], np.ndarray]:
    scenes, partner = [], []
    for entry in entries:
        group = scenes_of(entry)
        base = len(scenes)
        scenes += group
        partner += [base + 1 - j if len(group) == 2 else -1 for j in range(len(group))]
    return scenes, np.asarray(partner)


def build_pool(n: int, model_size: int, render_size: int = 128, seed: int = 0,
               workers: int = 2, cache: str | Path | None = None) -> ScenePool:
    """Render ``n`` train scenes (plus partners); cached in ``cache`` (.npz) when given."""
    seeds = [seed * 10_000_000 + i for i in range(n)]
    scenes, partner = _assemble(seeds, _scenes)
    if cache is not None and Path(cache).is_file():
        z = np.load(cache)
        if len(z["images"]) == len(scenes) and z["images"].shape[1] == model_size:
            return ScenePool(z["images"], scenes, partner)
        log.warning("pool cache %s does not fit this configuration: rendering anew", cache)
    images = []
    jobs = [(s, render_size, model_size) for s in seeds]
    with ProcessPoolExecutor(max(1, workers)) as ex:
        for arrs in tqdm(ex.map(_render_entry, jobs, chunksize=64), total=n, desc="render pool"):
            images += arrs
    pool = ScenePool(np.stack(images), scenes, partner)
    if cache is not None:
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, images=pool.images)
    return pool


def flip_caption(text: str) -> str:
    """The caption of the horizontally mirrored image: left and right exchanged."""
    return " ".join(FLIP_WORDS.get(w, w) for w in text.split())


class CaptionSampler:
    """Samples, per pool image, a true caption (random pair, template, size words) and the
    spec's hard negatives that are false for it."""

    def __init__(self, pool: ScenePool, seed: int = 0):
        self.pool = pool
        self.rng = random.Random(seed)
        self._pairs: dict[int, list] = {}

    def pairs(self, i: int) -> list:
        if i not in self._pairs:
            self._pairs[i] = related_pairs(self.pool.scenes[i])
        return self._pairs[i]

    def sample(self, i: int) -> tuple[str, list[str], NounPhrases]:
        """(true caption, its false hard negatives, where its two noun phrases are)."""
        a, rel, b = self.rng.choice(self.pairs(i))
        template, sized = self.rng.randrange(4), self.rng.random() < 0.3
        negs = hard_negatives(self.pool.scenes[i], a, rel, b, with_size=sized, template=template)
        text = caption(a, rel, b, template, sized)
        n_words, n_np = len(text.split()), 2 + sized
        start = TEMPLATE_PREFIX_WORDS[template]
        ground = NounPhrases((start, start + n_np), (n_words - n_np, n_words), (a.x, a.y), (b.x, b.y))
        return text, list(negs.values()), ground

    def is_true(self, i: int, text: str) -> bool:
        return truth(self.pool.scenes[i], text) is True
