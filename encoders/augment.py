"""Pixel augmentation for training: per-image brightness, contrast, saturation, greyscale, blur
and posterisation, on a batch of images in [0, 1]. Deterministic for a given generator.

Style perturbations of the drawings themselves (outlines, line art, flat colours) happen when
a pool is rendered (:mod:`.data.styles`); these are the cheap per-step ones on top.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

_LUMA = (0.299, 0.587, 0.114)


def _blur(x: torch.Tensor) -> torch.Tensor:
    k = torch.tensor([1.0, 2.0, 1.0], device=x.device)
    k = (k[:, None] * k[None, :]) / 16
    w = k.expand(x.shape[1], 1, 3, 3)
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), w, groups=x.shape[1])


def augment_pixels(x: torch.Tensor, strength: float, gen: torch.Generator) -> torch.Tensor:
    """Augment ``x`` (B, 3, H, W) in [0, 1]; ``strength`` in [0, 1] scales every probability
    and range (0 returns ``x``)."""
    if strength <= 0:
        return x
    b = x.shape[0]

    def draw(*shape: int) -> torch.Tensor:
        return torch.rand(b, *shape, generator=gen).to(x.device)

    def chosen(p: float) -> torch.Tensor:
        return (draw() < p * strength).view(b, 1, 1, 1)

    luma = torch.tensor(_LUMA, device=x.device).view(1, 3, 1, 1)
    grey = (x * luma).sum(1, keepdim=True)
    sat = 1 + (draw(1, 1, 1) * 2 - 1) * 0.4 * strength
    x = grey + (x - grey) * sat
    x = torch.where(chosen(0.15), grey.expand_as(x), x)
    contrast = 1 + (draw(1, 1, 1) * 2 - 1) * 0.3 * strength
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * contrast + mean + (draw(1, 1, 1) * 2 - 1) * 0.15 * strength
    x = torch.where(chosen(0.2), _blur(x), x)
    levels = 3 + (draw(1, 1, 1) * 5).floor()
    x = torch.where(chosen(0.1), torch.round(x.clamp(0, 1) * levels) / levels, x)
    return x.clamp(0, 1)
