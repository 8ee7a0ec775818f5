"""A pre-rendered pool of training scenes (either world), with captions sampled per step.

Entry ``i`` is the first ``train`` scene of seed ``seed * 10_000_000 + i``'s stream with a related
pair (:meth:`World.first_scene`); where the placement rules allow, the entry also carries its
*partner*: the same scene with the centres of one related pair exchanged (an image-side hard
negative, as in the pair test). Images are stored as uint8 at the model's input size, resized
exactly as inference resizes them.
"""
from __future__ import annotations

import json
import logging
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np
from PIL import Image
from tqdm import tqdm

from ..images import resize_and_crop
from .world import World, rng_for
from .worlds import get_world

log = logging.getLogger(__name__)
FLIP_WORDS = {"left": "right", "right": "left"}
# (world, scene, size) -> image: how pool images are drawn (default: the world's renderer)
Renderer = Callable[[World, Any, int], Image.Image]


class PhraseTargets(NamedTuple):
    """Word spans [start, end) of a caption's two noun phrases and of its relation words, and
    the two objects' centres: the grounding supervision of the head stage."""

    span_a: tuple[int, int]
    span_b: tuple[int, int]
    centre_a: tuple[float, float]
    centre_b: tuple[float, float]
    span_rel: tuple[int, int]


@dataclass
class ScenePool:
    images: np.ndarray  # (N, S, S, 3) uint8 at the model input size
    scenes: list[Any]
    partner: np.ndarray  # (N,) index of the partner image, or -1
    world: World

    def __len__(self) -> int:
        return len(self.scenes)


def _entry(world: World, seed: int, art: Sequence[str] | None) -> list[Any]:
    """The pool entry of ``seed``: a train scene with a related pair, and its partner."""
    scene = world.first_scene(seed, "train", **({"art": art} if art else {}))
    pairs = world.related_pairs(scene)
    a, _, b = pairs[int(rng_for(scene.seed, "train", "partner").integers(len(pairs)))]
    other = world.swap_centres(scene, a, b)
    return [scene] if other is None else [scene, other]


def render_default(world: World, scene: Any, size: int) -> Image.Image:
    return world.render(scene, size)


def _render_entry(args: tuple) -> list[np.ndarray]:
    world_name, scenes, render_size, model_size, renderer = args
    world = get_world(world_name)
    return [np.asarray(resize_and_crop(renderer(world, s, render_size), model_size))
            for s in scenes]


def build_pool(n: int, model_size: int, render_size: int = 128, seed: int = 0,
               workers: int = 2, cache: str | Path | None = None,
               world: str | World = "relation-scenes", art: Sequence[str] | None = None,
               renderer: Renderer = render_default) -> ScenePool:
    """Render ``n`` train scenes (plus partners); cached in ``cache`` (.npz) when given.

    ``art`` restricts Object Scenes to some art sets (leave-one-art-set-out training);
    ``renderer`` draws the images (training augmentation may alter them; picklable)."""
    world = get_world(world)
    groups = [_entry(world, seed * 10_000_000 + i, art) for i in range(n)]
    scenes = [s for g in groups for s in g]
    partner = []
    for g in groups:
        base = len(partner)
        partner += [base + 1 - j if len(g) == 2 else -1 for j in range(len(g))]
    # what the cached images depend on: a cache of another configuration is never reused
    key = json.dumps({"world": world.name, "n": n, "seed": seed, "model_size": model_size,
                      "render_size": render_size, "art": list(art or []),
                      "renderer": getattr(renderer, "__qualname__", repr(renderer)),
                      "images": len(scenes)})
    if cache is not None and Path(cache).is_file():
        z = np.load(cache)
        if "key" in z and str(z["key"]) == key:
            return ScenePool(z["images"], scenes, np.asarray(partner), world)
        log.warning("pool cache %s was made for another configuration: rendering anew", cache)
    images = np.empty((len(scenes), model_size, model_size, 3), np.uint8)
    jobs = [(world.name, g, render_size, model_size, renderer) for g in groups]
    k = 0
    with ProcessPoolExecutor(max(1, workers)) as ex:
        for arrs in tqdm(ex.map(_render_entry, jobs, chunksize=64), total=n, desc="render pool"):
            images[k:k + len(arrs)] = arrs
            k += len(arrs)
    pool = ScenePool(images, scenes, np.asarray(partner), world)
    if cache is not None:
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, images=pool.images, key=np.array(key))
    return pool


def flip_caption(text: str) -> str:
    """The caption of the horizontally mirrored image: left and right exchanged."""
    return " ".join(FLIP_WORDS.get(w, w) for w in text.split())


class CaptionSampler:
    """Samples, per pool image, a true caption (the world's caption sampler) and the world's
    hard negatives that are false for it. Stateless: a draw depends on (seed, image, salt)
    only, so a resumed run draws what an uninterrupted one would."""

    def __init__(self, pool: ScenePool, seed: int = 0):
        self.pool, self.world, self.seed = pool, pool.world, int(seed)

    def sample(self, i: int, salt: int = 0) -> tuple[str, list[str], PhraseTargets]:
        """(true caption, its false hard negatives, where its two noun phrases are); ``salt``
        (e.g. the training step) picks another draw."""
        scene = self.pool.scenes[i]
        rng = np.random.default_rng([self.seed, int(i), int(salt)])
        (a, rel, b), template, sized = self.world.sample_caption(scene, rng)
        negs = self.world.hard_negatives(scene, a, rel, b, with_size=sized, template=template)
        text, spans = self.world.caption_spans(a, rel, b, template, sized)
        return text, list(negs.values()), PhraseTargets(spans.a, spans.b, (a.x, a.y), (b.x, b.y),
                                                        spans.rel)

    def is_true(self, i: int, text: str) -> bool:
        return self.world.truth(self.pool.scenes[i], text) is True
