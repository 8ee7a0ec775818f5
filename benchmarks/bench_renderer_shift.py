"""Quality on another renderer's scenes: the evaluation protocol with the same scenes drawn twice,
by the project's renderer and by a second rasteriser written from the spec alone (JSON out).

    python benchmarks/bench_renderer_shift.py                      # bundled model, 1,000 images
    python benchmarks/bench_renderer_shift.py --model DIR --n 200 --out shift.json
    python benchmarks/bench_renderer_shift.py --world object-scenes --model DIR --n 500 --pairs 250

The shipped models are judged on scenes from an independent renderer. The second rasterisers here
share nothing with the project's renderers but the scene description. A model that learned the
project renderer's quirks rather than the spec loses quality here.

- Relation Scenes (``relation_scenes.render`` uses Pillow polygons and Lanczos): the scene's
  objects, colours after jitter, angles, background and noise sigma; shapes are analytic
  inside-tests on a 4x supersampled grid, downsampled by area averaging, with its own noise draw.
- Object Scenes (``object_scenes.render`` uses Pillow's Lanczos resize, bicubic rotate with
  expansion and integer-pixel alpha compositing): the objects' category, size, centre, angle and
  mirroring, the background's kind, colours, angle and horizon, the noise sigma, the art set, and
  the atlas sprites (the project's rasterisation of the pinned SVGs). Everything after the atlas is
  this module's own: the background is evaluated per sample on a 4x supersampled grid from the
  spec's formulas; each sprite is placed by one inverse affine map per canvas sample (scale so its
  longer side is ``size * S``, mirror, rotate about its centre), sampled bilinearly from its
  premultiplied RGBA and composited with premultiplied alpha, all in floating point at sub-pixel
  positions; the canvas is downsampled by area averaging; the noise comes from a Philox stream.

The figures are those of the protocol for the project's renders (``project``), the second
renderer's (``other``) and their difference (``drop``), per split and score mode; in Object
Scenes also per art set (``by_art``).
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import zlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from vitr_qdrant.encoders.data.worlds import WORLD_NAMES, get_world
from vitr_qdrant.encoders.evaluation import build_eval_set, evaluate
from vitr_qdrant.encoders.model_eval import CachedScorer, model_world

from common import run_model_benchmark  # benchmarks/common.py

KEYS = ("t2i_r1", "t2i_r10", "rsum", "swap_acc", "pair_group")
# Object Scenes also reports its distractor test (object-scenes.md section 8)
WORLD_KEYS = {"relation-scenes": KEYS, "object-scenes": (*KEYS, "distractor_acc")}
SUPERSAMPLE = 4


# --- Relation Scenes ----------------------------------------------------------------------------

def _inside_polygon(px: np.ndarray, py: np.ndarray, vx: np.ndarray, vy: np.ndarray) -> np.ndarray:
    """Even-odd rule: a horizontal ray from each point crosses the polygon's edges an odd number
    of times iff the point is inside."""
    inside = np.zeros(px.shape, dtype=bool)
    for i in range(len(vx)):
        x1, y1, x2, y2 = vx[i], vy[i], vx[(i + 1) % len(vx)], vy[(i + 1) % len(vx)]
        if y1 == y2:
            continue
        crosses = (y1 > py) != (y2 > py)
        inside ^= crosses & (px < x1 + (py - y1) * (x2 - x1) / (y2 - y1))
    return inside


def _outline(obj: Any) -> tuple[np.ndarray, np.ndarray]:
    """Vertices of a square, triangle or star (spec section 2), rotated by the object's angle."""
    r = obj.size / 2
    if obj.shape == "square":
        deg, radius = 45 + 90 * np.arange(4), np.full(4, r * np.sqrt(2))
    elif obj.shape == "triangle":
        deg, radius = -90 + 120 * np.arange(3), np.full(3, r)
    else:
        deg, radius = -90 + 36 * np.arange(10), np.where(np.arange(10) % 2 == 0, r, 0.4 * r)
    rad = np.deg2rad(deg + obj.angle)
    return obj.x + radius * np.cos(rad), obj.y + radius * np.sin(rad)


def render_other_relation(scene: Any, size: int = 128) -> Image.Image:
    """A Relation Scenes scene drawn by this module's rasteriser (see the module docstring)."""
    n = size * SUPERSAMPLE
    centres = (np.arange(n) + 0.5) / n
    py, px = np.meshgrid(centres, centres, indexing="ij")
    canvas = np.full((n, n, 3), float(scene.background))
    for obj in scene.objects:
        if obj.shape == "circle":
            mask = (px - obj.x) ** 2 + (py - obj.y) ** 2 <= (obj.size / 2) ** 2
        else:
            mask = _inside_polygon(px, py, *_outline(obj))
        canvas[mask] = obj.rgb
    image = canvas.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE, 3).mean(axis=(1, 3))
    noise = np.random.default_rng([scene.seed & 0xFFFFFFFF, 7]).normal(0, scene.noise_sigma, (size, size, 1))
    return Image.fromarray(np.clip(np.round(image + noise), 0, 255).astype(np.uint8), "RGB")


# --- Object Scenes ------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _premultiplied_sprite(art: str, category: str) -> np.ndarray:
    """The atlas sprite as float32 [h + 2, w + 2, 4]: premultiplied R, G, B (0..255) and alpha
    (0..1), framed by one transparent pixel so samples off the sprite read as empty."""
    from vitr_qdrant.encoders.data.art import sprite

    rgba = np.asarray(sprite(art, category).convert("RGBA"), dtype=np.float32)
    alpha = rgba[..., 3:] / 255.0
    out = np.zeros((rgba.shape[0] + 2, rgba.shape[1] + 2, 4), np.float32)
    out[1:-1, 1:-1, :3] = rgba[..., :3] * alpha
    out[1:-1, 1:-1, 3:] = alpha
    return out


def _bilinear(img: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``img`` (framed as by :func:`_premultiplied_sprite`) at continuous sprite coordinates
    ``u`` (0 at the left edge, w at the right) and ``v`` (0 top, h bottom): [..., 4]."""
    h, w = img.shape[0] - 2, img.shape[1] - 2
    # pixel i of the sprite covers [i, i + 1) and sits at framed index i + 1
    fu = np.clip(u + 0.5, 0.0, w + 1.0)
    fv = np.clip(v + 0.5, 0.0, h + 1.0)
    iu = np.minimum(fu.astype(np.int32), w)
    iv = np.minimum(fv.astype(np.int32), h)
    tu = (fu - iu)[..., None]
    tv = (fv - iv)[..., None]
    top = img[iv, iu] * (1 - tu) + img[iv, iu + 1] * tu
    bottom = img[iv + 1, iu] * (1 - tu) + img[iv + 1, iu + 1] * tu
    return top * (1 - tv) + bottom * tv


def _background(bg: Any, n: int) -> np.ndarray:
    """float32 [n, n, 3]: the background (object-scenes.md section 3) at the centres of an
    n x n grid of samples."""
    first, second = (np.array(c, np.float32) for c in bg.colors)
    t = (np.arange(n, dtype=np.float32) + 0.5) / n
    if bg.kind == "flat":
        return np.broadcast_to(first, (n, n, 3)).copy()
    if bg.kind == "horizon":
        below = (t >= bg.horizon)[:, None, None]     # one colour above y = h, another below
        return np.broadcast_to(np.where(below, second, first), (n, n, 3)).copy()
    if bg.kind != "gradient":
        raise ValueError(f"unknown background kind {bg.kind!r}")
    # projection on the direction, from the corner furthest back (0) to the one furthest ahead (1)
    ux, uy = math.cos(math.radians(bg.angle)), math.sin(math.radians(bg.angle))
    back_x, back_y = (0.0 if ux >= 0 else 1.0), (0.0 if uy >= 0 else 1.0)
    along = ((t[None, :] - back_x) * ux + (t[:, None] - back_y) * uy) / (abs(ux) + abs(uy))
    return first + along[..., None] * (second - first)


def _draw_sprite(canvas: np.ndarray, sprite: np.ndarray, obj: Any) -> None:
    """Composite one object onto ``canvas`` (float [n, n, 3], premultiplied "over") in place."""
    n = canvas.shape[0]
    h, w = sprite.shape[0] - 2, sprite.shape[1] - 2
    longer = obj.size * n                    # canvas samples along the sprite's longer side
    per_sample = max(w, h) / longer          # sprite pixels per canvas sample
    cx, cy = obj.x * n, obj.y * n
    reach = 0.5 * longer * math.sqrt(2) + 2  # the rotated sprite lies within this of its centre
    x0, x1 = max(0, int(cx - reach)), min(n, int(cx + reach) + 1)
    y0, y1 = max(0, int(cy - reach)), min(n, int(cy + reach) + 1)
    if x0 >= x1 or y0 >= y1:
        return
    dx = (np.arange(x0, x1, dtype=np.float32) + 0.5 - cx)[None, :]
    dy = (np.arange(y0, y1, dtype=np.float32) + 0.5 - cy)[:, None]
    # The sprite is turned by ``angle`` degrees counter-clockwise as seen on screen (y down);
    # the inverse map turns each canvas offset back, undoes the mirror, then the scale.
    c, s = math.cos(math.radians(obj.angle)), math.sin(math.radians(obj.angle))
    a = dx * c - dy * s
    b = dx * s + dy * c
    if obj.mirrored:
        a = -a
    texel = _bilinear(sprite, a * per_sample + w / 2, b * per_sample + h / 2)
    region = canvas[y0:y1, x0:x1]
    region *= 1.0 - texel[..., 3:]
    region += texel[..., :3]


def render_other_objects(scene: Any, size: int = 128) -> Image.Image:
    """An Object Scenes scene drawn by this module's rasteriser (see the module docstring)."""
    n = size * SUPERSAMPLE
    canvas = _background(scene.background, n)
    for obj in scene.objects:
        _draw_sprite(canvas, _premultiplied_sprite(scene.art, obj.category), obj)
    image = canvas.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE, 3).mean(axis=(1, 3))
    if scene.noise_sigma > 0:
        key = [scene.seed & 0xFFFFFFFF, scene.seed >> 32 & 0xFFFFFFFF, zlib.adler32(scene.split.encode()),
               size]
        gen = np.random.Generator(np.random.Philox(np.random.SeedSequence(key)))
        image = image + scene.noise_sigma * gen.standard_normal((size, size))[..., None]
    return Image.fromarray(np.clip(np.round(image), 0, 255).astype(np.uint8), "RGB")


def render_other(scene: Any, size: int = 128) -> Image.Image:
    """``scene`` (of either world) drawn by this module's rasteriser."""
    return (render_other_objects if hasattr(scene, "art") else render_other_relation)(scene, size)


# --- the benchmark ------------------------------------------------------------------------------

def _redrawn(image: Image.Image) -> Image.Image:
    other = render_other(image.info["scene"], image.width)
    other.info.update(scene=image.info["scene"], world=image.info.get("world"))
    return other


def _figures(metrics: dict[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    """The figures of ``keys`` rounded (None where the protocol had nothing to count); per art
    set too where the world has them."""
    out: dict[str, Any] = {k: None if metrics.get(k) is None else round(float(metrics[k]), 2) for k in keys}
    if "by_art" in metrics:
        out["by_art"] = {art: _figures(m, keys) for art, m in metrics["by_art"].items()}
    return out


def _drop(ours: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in ours.items():
        if k == "by_art":
            out[k] = {art: _drop(v[art], other["by_art"][art]) for art in v if art in other.get("by_art", {})}
        else:
            out[k] = None if v is None or other.get(k) is None else round(v - other[k], 2)
    return out


def run(model: Any, n: int = 1000, n_pairs: int = 500, splits: Sequence[str] = ("test-iid", "test-comp"),
        modes: Sequence[str] = ("vitr", "global"), world: str | None = None) -> dict[str, Any]:
    """``{split: {renderer: {mode: metrics}}}`` and the drop from the project's renderer.

    ``world`` defaults to the model's own (:func:`model_world`); Object Scenes results also
    carry ``by_art`` (the same figures per art set) and name their world."""
    world = get_world(world or model_world(model)).name
    keys = WORLD_KEYS.get(world, KEYS)
    out: dict[str, Any] = {"benchmark": "renderer_shift", "model": model.cfg.name, "n": n, "n_pairs": n_pairs}
    if world != "relation-scenes":
        out["world"] = world
    out["splits"] = {}
    for split in splits:
        ours = build_eval_set(split, n_images=n, n_pairs=n_pairs, world=world)
        other = dataclasses.replace(ours, images=[_redrawn(im) for im in ours.images],
                                    pair_images=[(_redrawn(a), _redrawn(b)) for a, b in ours.pair_images])
        res: dict[str, Any] = {}
        for name, eval_set in (("project", ours), ("other", other)):
            cache = CachedScorer(model)
            res[name] = {mode: _figures(evaluate(cache.scorer(mode), eval_set), keys) for mode in modes}
        res["drop"] = {mode: _drop(res["project"][mode], res["other"][mode]) for mode in modes}
        out["splits"][split] = res
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="model name or directory (default: the bundled default model)")
    ap.add_argument("--world", choices=WORLD_NAMES, default=None,
                    help="the world whose scenes are drawn twice (default: the model's own)")
    ap.add_argument("--n", type=int, default=1000, help="gallery images per split")
    ap.add_argument("--pairs", type=int, default=500, help="pair-test examples per split")
    ap.add_argument("--device", help="cpu, cuda, ... (default: CUDA when available)")
    ap.add_argument("--out", type=Path, help="also write the JSON here")
    a = ap.parse_args(argv)
    return run_model_benchmark("bench_renderer_shift", a.model, a.device,
                               lambda model: run(model, a.n, a.pairs, world=a.world), a.out)


if __name__ == "__main__":
    raise SystemExit(main())
