"""Quality on another renderer's scenes: the evaluation protocol with the same scenes drawn twice,
by the project's renderer and by a second rasteriser written from the spec alone (JSON out).

    python benchmarks/bench_renderer_shift.py                      # bundled model, 1,000 images
    python benchmarks/bench_renderer_shift.py --model DIR --n 200 --out shift.json

The shipped model is judged on scenes from an independent renderer. The second rasteriser here
shares nothing with ``relation_scenes.render`` but the scene (objects, colours after jitter,
angles, background, noise sigma): shapes are analytic inside-tests on a 4x supersampled grid,
downsampled by area averaging instead of Lanczos, with its own noise draw. A model that learned
the project renderer's quirks rather than the spec loses quality here.
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from vitr_qdrant.encoders.evaluation import build_eval_set, evaluate
from vitr_qdrant.encoders.model_eval import CachedScorer

from common import run_model_benchmark  # benchmarks/common.py

KEYS = ("t2i_r1", "t2i_r10", "rsum", "swap_acc", "pair_group")
SUPERSAMPLE = 4


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


def render_other(scene: Any, size: int = 128) -> Image.Image:
    """The scene drawn by this module's rasteriser (see the module docstring)."""
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


def _redrawn(image: Image.Image) -> Image.Image:
    return render_other(image.info["scene"], image.width)


def run(model: Any, n: int = 1000, n_pairs: int = 500, splits: Sequence[str] = ("test-iid", "test-comp"),
        modes: Sequence[str] = ("vitr", "global")) -> dict[str, Any]:
    """``{split: {renderer: {mode: metrics}}}`` and the drop from the project's renderer."""
    out: dict[str, Any] = {"benchmark": "renderer_shift", "model": model.cfg.name, "n": n, "n_pairs": n_pairs,
                           "splits": {}}
    for split in splits:
        ours = build_eval_set(split, n_images=n, n_pairs=n_pairs)
        other = dataclasses.replace(ours, images=[_redrawn(im) for im in ours.images],
                                    pair_images=[(_redrawn(a), _redrawn(b)) for a, b in ours.pair_images])
        res: dict[str, Any] = {}
        for name, eval_set in (("project", ours), ("other", other)):
            cache = CachedScorer(model)
            res[name] = {mode: {k: round(float(evaluate(cache.scorer(mode), eval_set)[k]), 2) for k in KEYS}
                         for mode in modes}
        res["drop"] = {mode: {k: round(res["project"][mode][k] - res["other"][mode][k], 2) for k in KEYS}
                       for mode in modes}
        out["splits"][split] = res
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="model name or directory (default: the bundled vitr-scenes-s)")
    ap.add_argument("--n", type=int, default=1000, help="gallery images per split")
    ap.add_argument("--pairs", type=int, default=500, help="pair-test examples per split")
    ap.add_argument("--device", help="cpu, cuda, ... (default: CUDA when available)")
    ap.add_argument("--out", type=Path, help="also write the JSON here")
    a = ap.parse_args(argv)
    return run_model_benchmark("bench_renderer_shift", a.model, a.device,
                               lambda model: run(model, a.n, a.pairs), a.out)


if __name__ == "__main__":
    raise SystemExit(main())
