"""Relation Scenes v1: the synthetic relation world of shared/specs/relation-scenes.md.

Flat coloured shapes; what the worlds share (relations, captions, truth, negatives, splits, the
pair test) is :mod:`.world`. Everything here is deterministic per seed. Public names are
re-exported as ``vitr_qdrant.datasets.relation_scenes``.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, ImageDraw

from .world import (OPPOSITE, RELATIONS, SPLITS, TEMPLATES as _ALL_TEMPLATES, World, add_noise,
                    place, placement_ok, relation, rng_for)

__all__ = [
    "SHAPES", "COLORS", "SIZES", "HELD_OUT", "ALL_PAIRS", "TRAIN_PAIRS", "SPLITS", "RELATIONS",
    "OPPOSITE", "TEMPLATES", "WORLD", "SceneObject", "Scene", "sample_scene", "render",
    "relation", "truth", "caption", "parse_caption", "related_pairs", "hard_negatives",
    "swap_centres", "pair_example", "placement_ok",
]

SHAPES = ("circle", "square", "triangle", "star")
COLORS: dict[str, tuple[int, int, int]] = {
    "gray": (87, 87, 87),
    "red": (173, 35, 35),
    "blue": (42, 75, 215),
    "green": (29, 105, 20),
    "brown": (129, 74, 25),
    "purple": (129, 38, 192),
    "cyan": (41, 208, 208),
    "yellow": (255, 238, 51),
}
SIZES = {"small": (0.14, 0.18), "large": (0.26, 0.32)}
HELD_OUT: frozenset[tuple[str, str]] = frozenset({
    ("red", "star"), ("blue", "triangle"), ("green", "circle"), ("yellow", "square"),
    ("purple", "star"), ("cyan", "circle"), ("brown", "triangle"), ("gray", "square"),
})
ALL_PAIRS = tuple((c, s) for c in COLORS for s in SHAPES)
TRAIN_PAIRS = tuple(p for p in ALL_PAIRS if p not in HELD_OUT)
TEMPLATES = _ALL_TEMPLATES[:4]
SUPERSAMPLE = 4


@dataclass(frozen=True)
class SceneObject:
    """One flat shape; ``x``, ``y``, ``size`` in normalised units (origin top-left)."""

    shape: str
    color: str
    size_name: str
    size: float
    x: float
    y: float
    rgb: tuple[int, int, int]
    angle: float = 0.0

    @property
    def pair(self) -> tuple[str, str]:
        return (self.color, self.shape)

    @property
    def key(self) -> tuple[str, str]:
        return self.pair

    def phrase(self, with_size: bool = False) -> str:
        words = ([self.size_name] if with_size else []) + [self.color, self.shape]
        return " ".join(words)


@dataclass(frozen=True)
class Scene:
    objects: tuple[SceneObject, ...]
    background: int
    noise_sigma: float
    seed: int
    split: str = "train"


class RelationScenes(World):
    """Relation Scenes: eight colours, four shapes, held-out (colour, shape) pairs."""

    name = "relation-scenes"
    summary = ("Relation Scenes v1: flat coloured shapes (8 colours, 4 shapes) in spatial "
               "relations; it knows those words only and is not a model for photos")
    n_templates = 4
    negative_kinds = ("swap", "opposite", "attribute", "distractor", "shape")
    swap_kinds = ("swap", "opposite", "attribute")

    @property
    def words(self) -> tuple[str, ...]:
        return (*COLORS, *SHAPES, *SIZES, "left", "right", "of", "above", "below", "to", "the",
                "a", "an", "is", "there")

    @property
    def attributes(self) -> dict[str, tuple[str, ...]]:
        return {"shape": SHAPES, "color": tuple(COLORS), "size": tuple(SIZES)}

    def attribute_values(self, obj: SceneObject) -> tuple[str, ...]:
        return (obj.shape, obj.color, obj.size_name)

    def noun_pattern(self, prefix: str) -> str:
        return (f"(?P<{prefix}color>{'|'.join(COLORS)}) "
                f"(?P<{prefix}shape>{'|'.join(SHAPES)})")

    def noun_key(self, match: re.Match, prefix: str) -> tuple:
        return (match[f"{prefix}color"], match[f"{prefix}shape"])

    def phrase_of(self, key: tuple, size_name: str | None = None) -> str:
        return " ".join(([size_name] if size_name else []) + list(key))

    def captionable(self, scene: Scene, a: SceneObject, b: SceneObject) -> bool:
        return a.pair in HELD_OUT or b.pair in HELD_OUT

    def absent_keys(self, scene: Scene, keep: tuple | None = None) -> list[tuple]:
        present = {o.pair for o in scene.objects}
        return [p for p in (TRAIN_PAIRS if scene.split == "train" else ALL_PAIRS)
                if p not in present]

    def extra_negatives(self, scene, a, rel, b, with_size, template, rng) -> dict[str, str]:
        """``attribute`` (colours of a and b exchanged), ``distractor`` (b replaced by an absent
        (colour, shape)) and ``shape`` (a's or b's shape changed to one that its colour has
        nowhere in the scene: a training negative)."""
        out = {"attribute": self.caption(_recolor(a, b.color, with_size), rel,
                                         _recolor(b, a.color, with_size), template)}
        distractor = self.distractor(scene, a, rel, b, with_size, template, rng)
        if distractor is not None:
            out["distractor"] = distractor
        absent = self.absent_keys(scene)
        reshaped = [(k, o, shape) for k, o in enumerate((a, b)) for shape in SHAPES
                    if (o.color, shape) in absent]
        if reshaped:
            k, o, shape = reshaped[rng.integers(len(reshaped))]
            phrases = [a.phrase(with_size), b.phrase(with_size)]
            phrases[k] = replace(o, shape=shape).phrase(with_size)
            out["shape"] = self.caption(phrases[0], rel, phrases[1], template)
        return out

    def sample_scene(self, seed: int, split: str = "train", n_objects: int | None = None
                     ) -> Scene:
        """Draw one scene of ``split`` (train, test-iid, test-comp), deterministic per seed."""
        self._check_sample(split, n_objects)
        rng = rng_for(seed, split)
        n = int(n_objects or rng.integers(2, 5))
        while True:
            pairs = _sample_pairs(rng, split, n)
            names = [str(nm) for nm in rng.choice(list(SIZES), size=n)]
            sizes = [float(rng.uniform(*SIZES[nm])) for nm in names]

            def build(i: int, x: float, y: float) -> SceneObject:
                (color, shape), jitter = pairs[i], rng.integers(-12, 13, size=3)
                rgb = tuple(int(np.clip(c + j, 0, 255)) for c, j in zip(COLORS[color], jitter))
                angle = 0.0 if shape == "circle" else float(rng.uniform(-10, 10))
                return SceneObject(shape, color, names[i], sizes[i], x, y, rgb, angle)

            objects = place(rng, sizes, build)
            if objects is not None:
                break
        return Scene(tuple(objects), background=int(rng.integers(200, 241)),
                     noise_sigma=float(rng.uniform(0, 6)), seed=int(seed), split=split)

    def render(self, scene: Scene, size: int = 128) -> Image.Image:
        """Render ``scene`` as an RGB image of ``size`` x ``size`` pixels (spec section 1)."""
        self._check_size(size)
        big = size * SUPERSAMPLE
        bg = scene.background
        canvas = Image.new("RGB", (big, big), (bg, bg, bg))
        draw = ImageDraw.Draw(canvas)
        for o in scene.objects:
            if o.shape == "circle":
                r = o.size * big / 2
                draw.ellipse([o.x * big - r, o.y * big - r, o.x * big + r, o.y * big + r],
                             fill=o.rgb)
            else:
                draw.polygon(_polygon(o, big), fill=o.rgb)
        small = _downsample(canvas, scene, size)
        return add_noise(small, scene.noise_sigma,
                         rng_for(scene.seed, scene.split, "noise", str(size)))


def _sample_pairs(rng: np.random.Generator, split: str, n: int) -> list[tuple[str, str]]:
    pool = list(TRAIN_PAIRS if split != "test-comp" else ALL_PAIRS)
    while True:
        idx = rng.choice(len(pool), size=n, replace=False)
        pairs = [pool[i] for i in idx]
        if split != "test-comp" or any(p in HELD_OUT for p in pairs):
            return pairs


def _recolor(o: SceneObject, color: str, with_size: bool) -> str:
    return replace(o, color=color).phrase(with_size)


def _polygon(o: SceneObject, scale: float) -> list[tuple[float, float]]:
    cx, cy, r = o.x * scale, o.y * scale, o.size * scale / 2
    if o.shape == "square":
        base = [(-r, -r), (r, -r), (r, r), (-r, r)]
    elif o.shape == "triangle":
        base = [(r * math.sin(a), -r * math.cos(a)) for a in (0, 2 * math.pi / 3,
                                                              4 * math.pi / 3)]
    else:  # star: one point up, inner radius 0.4 x outer
        base = [((r if k % 2 == 0 else 0.4 * r) * math.sin(k * math.pi / 5),
                 -(r if k % 2 == 0 else 0.4 * r) * math.cos(k * math.pi / 5)) for k in range(10)]
    t = math.radians(o.angle)
    c, s = math.cos(t), math.sin(t)
    return [(cx + px * c - py * s, cy + px * s + py * c) for px, py in base]


def _downsample(canvas: Image.Image, scene: Scene, size: int) -> Image.Image:
    """Lanczos downsampling of the 4x canvas, done only around the objects.

    The background is uniform, so filtering it is the identity; each object's neighbourhood
    (grid-aligned, with a margin wider than the filter's reach) is filtered and its inner part
    pasted: the same as filtering the whole canvas to within a few grey levels of rounding,
    at about half the cost.
    """
    bg = scene.background
    small = Image.new("RGB", (size, size), (bg, bg, bg))
    reach, margin = 3, 7  # Lanczos-3 reaches 3 output pixels; margin = 2 * reach + 1
    for o in scene.objects:
        half = o.size / 2
        lo = [max(0, math.floor((c - half) * size) - margin) for c in (o.x, o.y)]
        hi = [min(size, math.ceil((c + half) * size) + margin) for c in (o.x, o.y)]
        crop = canvas.crop(tuple(v * SUPERSAMPLE for v in (*lo, *hi)))
        patch = crop.resize((hi[0] - lo[0], hi[1] - lo[1]), Image.LANCZOS)
        inner = [reach if lo[i] > 0 else 0 for i in (0, 1)]
        outer = [reach if hi[i] < size else 0 for i in (0, 1)]
        box = (inner[0], inner[1], patch.width - outer[0], patch.height - outer[1])
        small.paste(patch.crop(box), (lo[0] + inner[0], lo[1] + inner[1]))
    return small


WORLD = RelationScenes()
(sample_scene, render, truth, caption, parse_caption, related_pairs, hard_negatives, swap_centres,
 pair_example) = WORLD.functions()
