"""Object Scenes v1: 118 everyday objects by four emoji designers (shared/specs/object-scenes.md).

What the worlds share (relations, captions, truth, negatives, splits, the pair test) is
:mod:`.world`; this module is the vocabulary, the held-out category pairs, the scene sampler and
the renderer. Deterministic per seed. Re-exported as ``vitr_qdrant.datasets.object_scenes``::

    scene = sample_scene(7, "test-iid")
    image = render(scene, 128)
    truth(scene, "a cat with a dog to its left")
"""
from __future__ import annotations

import colorsys
import math
import re
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from PIL import Image

from .art import check_art, sprite
from .object_categories import ART_PACKAGES, CATEGORIES
from .world import (OPPOSITE, RELATIONS, SIZE_WORDS, SPLITS, TEMPLATES, World, add_noise,
                    check_split, place, placement_ok, relation, rng_for)

__all__ = [
    "CATEGORIES", "ART_SETS", "SIZES", "BACKGROUNDS", "SPLITS", "RELATIONS", "OPPOSITE",
    "TEMPLATES", "WORLD", "SceneObject", "Background", "Scene", "held_out", "sample_scene",
    "render", "relation", "truth", "caption", "parse_caption", "related_pairs",
    "hard_negatives", "swap_centres", "pair_example", "placement_ok",
]

ART_SETS: tuple[str, ...] = tuple(ART_PACKAGES)
SIZES = {"small": (0.16, 0.22), "large": (0.28, 0.34)}
BACKGROUNDS = ("flat", "gradient", "horizon")
_INDEX = {noun: i for i, noun in enumerate(CATEGORIES)}
SpriteSource = Callable[[str, str], Image.Image]


def held_out(a: str, b: str) -> bool:
    """Whether the unordered category pair {a, b} is held out: ``(i + j) mod 9 == 4`` (spec 6)."""
    i, j = _category_index(a), _category_index(b)
    return i != j and (i + j) % 9 == 4


def _category_index(noun: str) -> int:
    try:
        return _INDEX[noun]
    except KeyError:
        raise ValueError(f"unknown category {noun!r}; Object Scenes has {len(CATEGORIES)} "
                         "nouns (CATEGORIES)") from None


@dataclass(frozen=True)
class SceneObject:
    """One drawn object; ``x``, ``y`` (its centre), ``size`` normalised (origin top-left)."""

    category: str
    size_name: str
    size: float
    x: float
    y: float
    angle: float = 0.0  # degrees, about the centre
    mirrored: bool = False

    @property
    def key(self) -> tuple[str]:
        return (self.category,)

    def phrase(self, with_size: bool = False) -> str:
        return f"{self.size_name} {self.category}" if with_size else self.category


@dataclass(frozen=True)
class Background:
    """``flat`` (``colors[0]``), ``gradient`` (``colors[0]`` to ``colors[1]`` along ``angle``
    degrees, y down) or ``horizon`` (``colors[0]`` above y = ``horizon``, ``colors[1]`` below)."""

    kind: str
    colors: tuple[tuple[float, float, float], tuple[float, float, float]]
    angle: float = 0.0
    horizon: float = 0.5


@dataclass(frozen=True)
class Scene:
    objects: tuple[SceneObject, ...]
    background: Background
    noise_sigma: float
    seed: int
    split: str = "train"
    art: str = ART_SETS[0]


class ObjectScenes(World):
    """Object Scenes: 118 nouns, four art sets, held-out category pairs, five templates."""

    name = "object-scenes"
    summary = ("Object Scenes v1: 118 everyday objects drawn as emoji by four designers, in "
               "spatial relations; it knows those 118 nouns and the relation words only, and is "
               "not a model for photos")
    n_templates = 5
    negative_kinds = ("swap", "opposite", "distractor", "reversed")
    swap_kinds = ("swap", "opposite", "distractor")
    art_sets = ART_SETS
    min_render_size = 96

    @property
    def words(self) -> tuple[str, ...]:
        nouns = dict.fromkeys(w for noun in CATEGORIES for w in noun.split())
        return (*nouns, *SIZE_WORDS, "left", "right", "of", "above", "below", "to", "the", "a",
                "an", "is", "there", "with", "its", "it")

    @property
    def attributes(self) -> dict[str, tuple[str, ...]]:
        return {"category": CATEGORIES, "size": tuple(SIZES)}

    def attribute_values(self, obj: SceneObject) -> tuple[str, ...]:
        return (obj.category, obj.size_name)

    def noun_pattern(self, prefix: str) -> str:
        nouns = sorted(CATEGORIES, key=len, reverse=True)  # "hot dog" before "dog"
        return f"(?P<{prefix}noun>{'|'.join(nouns)})"

    def noun_key(self, match: re.Match, prefix: str) -> tuple:
        return (match[f"{prefix}noun"],)

    def phrase_of(self, key: tuple, size_name: str | None = None) -> str:
        return f"{size_name} {key[0]}" if size_name else key[0]

    def captionable(self, scene: Scene, a: SceneObject, b: SceneObject) -> bool:
        return held_out(a.category, b.category)

    def absent_keys(self, scene: Scene, keep: tuple | None = None) -> list[tuple]:
        present = {o.category for o in scene.objects}
        # a training caption never names a held-out pair, not even as a negative
        banned = keep[0] if keep is not None and scene.split == "train" else None
        return [(c,) for c in CATEGORIES if c not in present
                and (banned is None or not held_out(c, banned))]

    def extra_negatives(self, scene, a, rel, b, with_size, template, rng) -> dict[str, str]:
        """``distractor`` (one noun, a or b at random, replaced by an absent category) and
        ``reversed`` (b rel a said with the caption's own mention order: in template 5 when
        the caption is in 1-4, in template 1 when it is in 5)."""
        pa, pb = a.phrase(with_size), b.phrase(with_size)
        out = {"reversed": self.caption(pb, rel, pa, 4 if template != 4 else 0)}
        distractor = self.distractor(scene, a, rel, b, with_size, template, rng,
                                     which=int(rng.integers(2)))
        if distractor is not None:
            out["distractor"] = distractor
        return out

    def sample_scene(self, seed: int, split: str = "train", n_objects: int | None = None,
                     art: str | Sequence[str] | None = None) -> Scene:
        """Draw one scene of ``split``, deterministic per seed.

        Args:
            seed: any integer.
            split: ``train``, ``test-iid`` or ``test-comp`` (spec section 7).
            n_objects: 2, 3 or 4 (default uniform).
            art: the scene's art set; a sequence of sets to draw from uniformly; default
                uniform over :data:`ART_SETS`. The layout does not depend on the art.
        """
        self._check_sample(split, n_objects)
        sets = list(ART_SETS) if art is None else [art] if isinstance(art, str) else list(art)
        if not sets:
            raise ValueError(f"art names no set; expected some of {ART_SETS}")
        for s in sets:
            check_art(s)
        chosen = sets[int(rng_for(seed, split, "art").integers(len(sets)))]
        rng = rng_for(seed, split)
        n = int(n_objects or rng.integers(2, 5))
        while (objects := _draw_objects(rng, split, n)) is None:
            pass
        background = _draw_background(rng)
        return Scene(tuple(objects), background, noise_sigma=float(rng.uniform(0, 6)),
                     seed=int(seed), split=split, art=chosen)

    def render(self, scene: Scene, size: int = 128, sprites: SpriteSource = sprite
               ) -> Image.Image:
        """Render ``scene`` as an RGB image of ``size`` x ``size`` pixels (spec sections 3-4).

        ``sprites(art, category)`` supplies the RGBA sprites (the atlas; training augmentation
        may pass altered ones)."""
        self._check_size(size)
        canvas = Image.fromarray(_background_pixels(scene.background, size), "RGB")
        canvas = canvas.convert("RGBA")
        for o in scene.objects:
            _composite(canvas, _placed_sprite(sprites(scene.art, o.category), o, size), o, size)
        return add_noise(canvas.convert("RGB"), scene.noise_sigma,
                         rng_for(scene.seed, scene.split, "noise", str(size)))


def _pair_ok(categories: Sequence[str], split: str) -> bool:
    has = any(held_out(a, b) for i, a in enumerate(categories) for b in categories[i + 1:])
    return has if split == "test-comp" else not has


def _draw_objects(rng: np.random.Generator, split: str, n: int) -> list[SceneObject] | None:
    """Categories, sizes, poses and places of ``n`` objects; None to draw again (a test-comp
    scene must hold a held-out pair that has a relation, spec section 7)."""
    while not _pair_ok(cats := [CATEGORIES[i] for i in rng.choice(len(CATEGORIES), n,
                                                                   replace=False)], split):
        pass
    names = [str(nm) for nm in rng.choice(list(SIZES), size=n)]
    sizes = [float(rng.uniform(*SIZES[nm])) for nm in names]
    poses = [(bool(rng.random() < 0.5), float(rng.uniform(-10, 10))) for _ in range(n)]

    def build(i: int, x: float, y: float) -> SceneObject:
        return SceneObject(cats[i], names[i], sizes[i], x, y, poses[i][1], poses[i][0])

    objects = place(rng, sizes, build)
    if objects is None:
        return None
    if split == "test-comp" and not any(held_out(a.category, b.category)
                                        and relation(a, b) is not None
                                        for a in objects for b in objects):
        return None
    return objects


def _hsv(rng: np.random.Generator) -> tuple[float, float, float]:
    h, s, v = rng.uniform(0, 1), rng.uniform(0, 0.35), rng.uniform(0.55, 0.95)
    return tuple(255.0 * c for c in colorsys.hsv_to_rgb(h, s, v))


def _draw_background(rng: np.random.Generator) -> Background:
    kind = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    first, second = _hsv(rng), _hsv(rng)
    return Background(kind, (first, second), angle=float(rng.uniform(0, 360)),
                      horizon=float(rng.uniform(0.45, 0.75)))


def _background_pixels(bg: Background, size: int) -> np.ndarray:
    """uint8 (size, size, 3): the background evaluated at pixel centres."""
    c0, c1 = (np.asarray(c, np.float32) for c in bg.colors)
    out = np.empty((size, size, 3), np.float32)
    centres = (np.arange(size, dtype=np.float32) + 0.5) / size
    if bg.kind == "flat":
        out[:] = c0
    elif bg.kind == "horizon":
        above = centres < bg.horizon
        out[above], out[~above] = c0, c1
    else:  # gradient: 0 at the corner furthest back along the direction, 1 furthest ahead
        dx, dy = math.cos(math.radians(bg.angle)), math.sin(math.radians(bg.angle))
        corners = [cx * dx + cy * dy for cx in (0, 1) for cy in (0, 1)]
        lo, span = min(corners), max(corners) - min(corners)
        t = (centres[None, :] * dx + centres[:, None] * dy - lo) / span
        np.multiply(t[..., None], c1 - c0, out=out)
        out += c0
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _placed_sprite(src: Image.Image, o: SceneObject, size: int) -> Image.Image:
    """The sprite scaled so its longer side is the object's size, mirrored, rotated."""
    scale = o.size * size / max(src.size)
    w, h = (max(1, round(v * scale)) for v in src.size)
    im = src.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if o.mirrored else src
    im = im.resize((w, h), Image.Resampling.LANCZOS)  # Pillow filters RGBA with premultiplied alpha
    return im.rotate(o.angle, resample=Image.Resampling.BICUBIC, expand=True) if o.angle else im


def _composite(canvas: Image.Image, im: Image.Image, o: SceneObject, size: int) -> None:
    """Alpha-composite ``im`` centred on the object's centre (clipped to the canvas)."""
    left, top = round(o.x * size - im.width / 2), round(o.y * size - im.height / 2)
    crop = (max(0, -left), max(0, -top), min(im.width, size - left), min(im.height, size - top))
    canvas.alpha_composite(im.crop(crop), (left + crop[0], top + crop[1]))


WORLD = ObjectScenes()
(sample_scene, render, truth, caption, parse_caption, related_pairs, hard_negatives, swap_centres,
 pair_example) = WORLD.functions()
