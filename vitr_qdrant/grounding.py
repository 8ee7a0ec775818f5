"""Grounding: which image region each query word attended to, as a box in image pixels."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .encoders.images import crop_box_to_image


@dataclass(frozen=True)
class Grounding:
    """One query word and the region it used.

    Attributes:
        word: The query word.
        box: ``(x0, y0, x1, y1)`` in pixels of the stored image (normalised to the model
            input when the image size is unknown).
        region: Index of the region (into ``model.region_boxes``).
        weight: Attention weight of that region (fusion) or its similarity (late mode).
    """

    word: str
    box: tuple[float, float, float, float]
    region: int
    weight: float


def cut_spans(spans: Sequence[tuple[str, list[int]]], n_tokens: int) -> list[tuple[str, list[int]]]:
    """A text's words and their token positions (:meth:`~vitr_qdrant.encoders.VitrModel.word_spans`)
    cut to its first ``n_tokens`` token vectors (the ones there are)."""
    out = [(w, [i for i in members if i < n_tokens]) for w, members in spans]
    return [(w, members) for w, members in out if members]


def ground(spans: Sequence[tuple[str, list[int]]], weights: np.ndarray, boxes: np.ndarray,
           width: int | None = None, height: int | None = None) -> list[Grounding]:
    """Pick, for each word, the region of highest weight (mean over the word's tokens).

    Args:
        spans: From :func:`cut_spans`.
        weights: (m, R) attention (fusion) or token-region similarity (late).
        boxes: (R, 4) region boxes normalised to the model's centre-cropped input.
        width, height: Stored image size; boxes are mapped to its pixels when both are given.
    """
    w = np.asarray(weights, dtype=np.float64)
    spans = [(word, [i for i in idx if i < len(w)]) for word, idx in spans]
    spans = [(word, idx) for word, idx in spans if idx]
    if not spans:
        return []
    average = np.zeros((len(spans), len(w)))   # each word's mean over its tokens, as one product
    for k, (_, idx) in enumerate(spans):
        average[k, idx] = 1.0 / len(idx)
    means = average @ w   # (words, R)
    best = means.argmax(axis=1)
    picked = boxes[best]
    if width and height:
        picked = crop_box_to_image(picked, int(width), int(height))
    return [Grounding(word, tuple(round(v, 2) for v in box), int(r), float(means[k, r]))
            for k, ((word, _), box, r) in enumerate(zip(spans, picked.tolist(), best))]
