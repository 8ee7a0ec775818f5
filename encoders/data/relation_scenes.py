"""Relation Scenes v1: the synthetic relation world of shared/specs/relation-scenes.md.

Everything here is deterministic per seed. Public names (``sample_scene``, ``render``,
``relation``, ``truth``) are re-exported as ``vitr_qdrant.datasets.relation_scenes``.
"""
from __future__ import annotations

import math
import re
import zlib
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

__all__ = [
    "SHAPES", "COLORS", "SIZES", "HELD_OUT", "ALL_PAIRS", "TRAIN_PAIRS", "SPLITS", "RELATIONS",
    "OPPOSITE", "TEMPLATES", "SceneObject", "Scene", "sample_scene", "render", "relation",
    "truth", "caption", "parse_caption", "related_pairs", "hard_negatives", "swap_centres",
    "pair_example", "placement_ok",
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
SPLITS = ("train", "test-iid", "test-comp")
RELATIONS = ("left of", "right of", "above", "below")
OPPOSITE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
# Surface form of each relation in templates 2-4.
LONG_REL = {"left of": "to the left of", "right of": "to the right of", "above": "above",
            "below": "below"}
TEMPLATES = ("{A} {rel} {B}", "a {A} {lrel} a {B}", "the {A} is {lrel} the {B}",
             "there is a {A} {lrel} a {B}")
MARGIN, GAP, MIN_DIST = 0.03, 0.02, 0.15
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


def _rng(seed: int, *salt: str) -> np.random.Generator:
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(seed) >> 32 & 0xFFFFFFFF,
                                  *(zlib.crc32(s.encode()) for s in salt)])


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")


def _sample_pairs(rng: np.random.Generator, split: str, n: int) -> list[tuple[str, str]]:
    pool = list(TRAIN_PAIRS if split != "test-comp" else ALL_PAIRS)
    while True:
        idx = rng.choice(len(pool), size=n, replace=False)
        pairs = [pool[i] for i in idx]
        if split != "test-comp" or any(p in HELD_OUT for p in pairs):
            return pairs


def _fits(x: float, y: float, s: float, placed: Sequence[SceneObject]) -> bool:
    for o in placed:
        need = (s + o.size) / 2 + GAP
        if abs(x - o.x) < need and abs(y - o.y) < need:
            return False
    return True


def placement_ok(objects: Sequence[SceneObject]) -> bool:
    """Spec section 2: bounding squares inside [0.03, 0.97], pairwise gap >= 0.02."""
    for i, o in enumerate(objects):
        half = o.size / 2
        if min(o.x - half, o.y - half) < MARGIN or max(o.x + half, o.y + half) > 1 - MARGIN:
            return False
        if not _fits(o.x, o.y, o.size, objects[:i]):
            return False
    return True


def _place(rng: np.random.Generator, specs: list[tuple[str, str, str, float]]
           ) -> list[SceneObject] | None:
    placed: list[SceneObject] = []
    for color, shape, size_name, size in specs:
        lo, hi = MARGIN + size / 2, 1 - MARGIN - size / 2
        for _ in range(200):
            x, y = rng.uniform(lo, hi, size=2)
            if _fits(x, y, size, placed):
                break
        else:
            return None
        jitter = rng.integers(-12, 13, size=3)
        rgb = tuple(int(np.clip(c + j, 0, 255)) for c, j in zip(COLORS[color], jitter))
        angle = 0.0 if shape == "circle" else float(rng.uniform(-10, 10))
        placed.append(SceneObject(shape, color, size_name, float(size), float(x), float(y),
                                  rgb, angle))
    return placed


def sample_scene(seed: int, split: str = "train", n_objects: int | None = None) -> Scene:
    """Draw one scene of ``split`` (train, test-iid, test-comp), deterministic per seed."""
    _check_split(split)
    if n_objects is not None and not 2 <= n_objects <= 4:
        raise ValueError("n_objects must be 2, 3 or 4")
    rng = _rng(seed, split)
    n = int(n_objects or rng.integers(2, 5))
    while True:
        pairs = _sample_pairs(rng, split, n)
        names = rng.choice(list(SIZES), size=n)
        specs = [(c, s, str(nm), float(rng.uniform(*SIZES[str(nm)])))
                 for (c, s), nm in zip(pairs, names)]
        objects = _place(rng, specs)
        if objects is not None:
            break
    return Scene(tuple(objects), background=int(rng.integers(200, 241)),
                 noise_sigma=float(rng.uniform(0, 6)), seed=int(seed), split=split)


# --- rendering ---------------------------------------------------------------------------

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


def render(scene: Scene, size: int = 128) -> Image.Image:
    """Render ``scene`` as an RGB image of ``size`` x ``size`` pixels (spec section 1)."""
    if size < 64:
        raise ValueError(f"size must be >= 64 (got {size})")
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
    if scene.noise_sigma <= 0:
        return small
    noise = _rng(scene.seed, scene.split, "noise", str(size)).standard_normal(
        (size, size, 1), dtype=np.float32) * np.float32(scene.noise_sigma)
    arr = np.asarray(small, dtype=np.float32) + noise
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "RGB")


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


# --- relations and captions ---------------------------------------------------------------

def relation(a: SceneObject, b: SceneObject) -> str | None:
    """The relation that holds for the ordered pair (a, b), or None (spec section 3)."""
    dx, dy = b.x - a.x, b.y - a.y
    if dx >= MIN_DIST and abs(dy) <= 0.5 * dx:
        return "left of"
    if -dx >= MIN_DIST and abs(dy) <= 0.5 * abs(dx):
        return "right of"
    if dy >= MIN_DIST and abs(dx) <= 0.5 * dy:
        return "above"
    if -dy >= MIN_DIST and abs(dx) <= 0.5 * abs(dy):
        return "below"
    return None


def caption(a: SceneObject | str, rel: str, b: SceneObject | str, template: int = 0,
            with_size: bool = False) -> str:
    """Build a caption from two objects (or noun phrases) in one of the four templates."""
    if rel not in RELATIONS:
        raise ValueError(f"unknown relation {rel!r}; expected one of {RELATIONS}")
    pa = a if isinstance(a, str) else a.phrase(with_size)
    pb = b if isinstance(b, str) else b.phrase(with_size)
    return TEMPLATES[template].format(A=pa, B=pb, rel=rel, lrel=LONG_REL[rel])


_NP = (r"(?:(?P<{p}size>small|large) )?(?P<{p}color>" + "|".join(COLORS) + r") (?P<{p}shape>"
       + "|".join(SHAPES) + ")")
_REL = r"(?P<rel>to the left of|to the right of|left of|right of|above|below)"
_CAPTION_RE = re.compile(r"^(?:there is a |a |the )?" + _NP.format(p="a") + r" (?:is )?" + _REL
                         + r" (?:a |the )?" + _NP.format(p="b") + r"$")


def parse_caption(text: str) -> tuple[tuple[str | None, str, str], str, tuple[str | None, str, str]]:
    """Parse a caption into ((size, color, shape), relation, (size, color, shape))."""
    norm = " ".join(text.lower().replace(".", " ").split())
    m = _CAPTION_RE.match(norm)
    if m is None:
        raise ValueError(f"cannot parse caption {text!r}")
    rel = m["rel"].removeprefix("to the ")
    return ((m["asize"], m["acolor"], m["ashape"]), rel, (m["bsize"], m["bcolor"], m["bshape"]))


def _matches(scene: Scene, np_: tuple[str | None, str, str]) -> list[SceneObject]:
    size, color, shape = np_
    return [o for o in scene.objects if o.color == color and o.shape == shape
            and (size is None or o.size_name == size)]


def truth(scene: Scene, caption_text: str) -> bool | None:
    """True / False / None (undefined) for ``caption_text`` on ``scene`` (spec section 4)."""
    np_a, rel, np_b = parse_caption(caption_text)
    ma, mb = _matches(scene, np_a), _matches(scene, np_b)
    if not ma or not mb:
        return False
    if len(ma) > 1 or len(mb) > 1 or ma[0] is mb[0]:
        return None
    held = relation(ma[0], mb[0])
    if held is None:
        return None
    return held == rel


def related_pairs(scene: Scene) -> list[tuple[SceneObject, str, SceneObject]]:
    """Ordered pairs with a relation; in test-comp only pairs with a held-out object."""
    out = []
    for a in scene.objects:
        for b in scene.objects:
            if a is b or (scene.split == "test-comp" and a.pair not in HELD_OUT
                          and b.pair not in HELD_OUT):
                continue
            rel = relation(a, b)
            if rel is not None:
                out.append((a, rel, b))
    return out


def hard_negatives(scene: Scene, a: SceneObject, rel: str, b: SceneObject,
                   with_size: bool = False, template: int = 0) -> dict[str, str]:
    """Spec section 7 negatives of the true caption ``a rel b`` that are false for ``scene``.

    Keys: ``swap`` (b rel a), ``opposite`` (a opp(rel) b), ``attribute`` (colours of a and b
    exchanged), ``distractor`` (b replaced by a (colour, shape) absent from the scene) and
    ``shape`` (a's or b's shape changed to one that its colour has nowhere in the scene).
    """
    pa, pb = a.phrase(with_size), b.phrase(with_size)
    cands = {
        "swap": caption(pb, rel, pa, template),
        "opposite": caption(pa, OPPOSITE[rel], pb, template),
        "attribute": caption(_recolor(a, b.color, with_size), rel, _recolor(b, a.color, with_size),
                             template),
    }
    present = {o.pair for o in scene.objects}
    absent = [p for p in (TRAIN_PAIRS if scene.split == "train" else ALL_PAIRS)
              if p not in present]
    rng = _rng(scene.seed, scene.split, pa, pb)
    if absent:
        color, shape = absent[rng.integers(len(absent))]
        cands["distractor"] = caption(pa, rel, f"{color} {shape}", template)
    # one phrase's shape changed to one its colour does not have here (a training negative)
    reshaped = [(k, o, shape) for k, o in enumerate((a, b)) for shape in SHAPES
                if (o.color, shape) in absent]
    if reshaped:
        k, o, shape = reshaped[rng.integers(len(reshaped))]
        phrases = [pa, pb]
        phrases[k] = replace(o, shape=shape).phrase(with_size)
        cands["shape"] = caption(phrases[0], rel, phrases[1], template)
    return {k: v for k, v in cands.items() if truth(scene, v) is False}


def _recolor(o: SceneObject, color: str, with_size: bool) -> str:
    return replace(o, color=color).phrase(with_size)


def swap_centres(scene: Scene, a: SceneObject, b: SceneObject) -> Scene | None:
    """The same scene with the centres of ``a`` and ``b`` exchanged, or None if that breaks
    the placement rules (spec section 7.3)."""
    objs = tuple(replace(o, x=b.x, y=b.y) if o is a else replace(o, x=a.x, y=a.y) if o is b
                 else o for o in scene.objects)
    return replace(scene, objects=objs) if placement_ok(objs) else None


def pair_example(seed: int, split: str) -> tuple[Scene, Scene, str, str]:
    """A pair-test example: (image 1, image 2, c = 'A rel B', c' = 'B rel A'), where image 2 is
    image 1 with the centres of A and B exchanged. Draws further scenes until one works."""
    for k in range(1000):
        scene = sample_scene(seed * 1000 + k, split)
        pairs = related_pairs(scene)
        if not pairs:
            continue
        rng = _rng(seed, split, "pair", str(k))
        a, rel, b = pairs[int(rng.integers(len(pairs)))]
        other = swap_centres(scene, a, b)
        if other is not None:
            return scene, other, caption(a, rel, b), caption(b, rel, a)
    raise RuntimeError(f"no pair-test example found for seed {seed}")
