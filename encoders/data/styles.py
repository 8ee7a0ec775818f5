"""Drawing-style perturbations of Object Scenes sprites: training augmentation only.

A model trained on four emoji designers is judged on others' drawings of the same objects. To
make it read shapes rather than one designer's palette and shading, some training scenes are
drawn with every sprite restyled the same way (a scene has one look, as a photo has): outlined,
reduced to line art, flattened to a few colours, greyed, hue-shifted or blurred. The geometry
of the scene is untouched, so its captions and truth stay exact. Nothing here uses art beyond
the four sets of the atlas.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageChops, ImageFilter

from .art import sprite
from .world import World, rng_for

# style -> probability of a training scene being drawn in it ("plain": the atlas as it is)
STYLES = {"plain": 0.4, "outline": 0.12, "lineart": 0.08, "flat": 0.12, "grey": 0.08,
          "hue": 0.1, "blur": 0.1}


def _alpha(im: Image.Image) -> Image.Image:
    return im.getchannel("A")


def _outline(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A dark contour around the silhouette (and the shapes inside it), as many sets draw."""
    width = int(rng.integers(2, 5))
    ink = tuple(int(v) for v in rng.integers(0, 60, 3))
    grown = _alpha(im).filter(ImageFilter.MaxFilter(2 * width + 1))
    base = Image.new("RGBA", im.size, (*ink, 255))
    base.putalpha(grown)
    edges = im.convert("L").filter(ImageFilter.FIND_EDGES).point(lambda v: 255 if v > 40 else 0)
    inner = Image.composite(Image.new("RGBA", im.size, (*ink, 255)), im, edges)
    return Image.alpha_composite(base, inner)


def _lineart(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Black lines on a light fill: the silhouette's contour and the drawing's inner edges."""
    alpha = _alpha(im)
    fill = int(rng.integers(200, 256))
    lum = im.convert("L")
    edges = ImageChops.lighter(lum.filter(ImageFilter.FIND_EDGES),
                               alpha.filter(ImageFilter.FIND_EDGES))
    lines = edges.point(lambda v: 255 if v > 50 else 0).filter(ImageFilter.MaxFilter(3))
    out = Image.new("RGBA", im.size, (fill, fill, fill, 255))
    out = Image.composite(Image.new("RGBA", im.size, (0, 0, 0, 255)), out, lines)
    out.putalpha(alpha)
    return out


def _flat(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A few flat colours: gradients and shading gone."""
    colours = int(rng.integers(3, 7))
    rgb = im.convert("RGB").quantize(colours, method=Image.Quantize.MEDIANCUT).convert("RGB")
    rgb.putalpha(_alpha(im))
    return rgb


def _grey(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    out = im.convert("L").convert("RGB")
    out.putalpha(_alpha(im))
    return out


def _hue(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A small hue rotation and a saturation change (designers' palettes differ)."""
    shift, sat = float(rng.uniform(-0.08, 0.08)), float(rng.uniform(0.6, 1.3))
    hsv = np.asarray(im.convert("RGB").convert("HSV"), dtype=np.float32)
    hsv[..., 0] = (hsv[..., 0] + shift * 255) % 256
    hsv[..., 1] = np.clip(hsv[..., 1] * sat, 0, 255)
    out = Image.fromarray(hsv.astype(np.uint8), "HSV").convert("RGB")
    out.putalpha(_alpha(im))
    return out


def _blur(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    return im.filter(ImageFilter.GaussianBlur(float(rng.uniform(1.0, 2.5))))


_STYLE_FNS = {"outline": _outline, "lineart": _lineart, "flat": _flat, "grey": _grey,
              "hue": _hue, "blur": _blur}


def scene_style(scene: Any) -> str:
    """The style a training scene is drawn in (deterministic per scene seed)."""
    names, probs = list(STYLES), np.array(list(STYLES.values()))
    return names[int(rng_for(scene.seed, scene.split, "style").choice(len(names),
                                                                         p=probs / probs.sum()))]


@dataclass(frozen=True)
class StyledRenderer:
    """A picklable pool renderer (:func:`~.scene_pool.build_pool`): each scene in its style."""

    def __call__(self, world: World, scene: Any, size: int) -> Image.Image:
        style = scene_style(scene)
        if style == "plain":
            return world.render(scene, size)
        rng = rng_for(scene.seed, scene.split, "style-params")
        # one draw of parameters per scene: every sprite restyled alike
        params = rng.integers(1 << 31)

        def restyled(art: str, category: str) -> Image.Image:
            return _STYLE_FNS[style](sprite(art, category), np.random.default_rng(params))

        return world.render(scene, size, sprites=restyled)
