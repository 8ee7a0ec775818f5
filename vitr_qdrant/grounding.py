"""Grounding: which image region each query word attended to, as a box in image pixels."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Sequence

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


def word_spans(model: Any, text: str, n_tokens: int) -> list[tuple[str, list[int]]]:
    """Group a text's token vectors into words: ``[(word, [token indices])]``.

    The end-of-text token is left out. Tokenizers this does not know label each token
    ``#i`` instead of failing.
    """
    tok = getattr(getattr(model, "backbone", None), "tokenizer", None)
    inner = getattr(tok, "_tok", None)
    if inner is not None and hasattr(inner, "decoder"):
        return _bpe_spans(inner, text, n_tokens)
    if tok is not None and hasattr(tok, "vocab") and hasattr(tok, "context_length"):
        words = re.findall(r"[a-z]+", text.lower())[: tok.context_length - 1]
        return [(w, [i]) for i, w in enumerate(words) if i < n_tokens]
    return [(f"#{i}", [i]) for i in range(n_tokens)]


def _bpe_spans(inner: Any, text: str, n_tokens: int) -> list[tuple[str, list[int]]]:
    ids = [int(i) for i in inner([text])[0]]
    eot = getattr(inner, "eot_token_id", None)
    spans: list[tuple[str, list[int]]] = []
    word, members = "", []
    for pos, tid in enumerate(ids[1:n_tokens + 1]):  # token vectors start after start-of-text
        if tid == eot or tid == 0:
            break
        piece = inner.decoder.get(tid, "?")
        word, members = word + piece.replace("</w>", ""), members + [pos]
        if piece.endswith("</w>"):
            spans.append((_decode_bytes(inner, word), members))
            word, members = "", []
    if members:
        spans.append((_decode_bytes(inner, word), members))
    return spans


def _decode_bytes(inner: Any, word: str) -> str:
    table = getattr(inner, "byte_decoder", None)
    if not table:
        return word
    return bytearray(table.get(c, ord("?")) for c in word).decode("utf-8", errors="replace")


def ground(spans: Sequence[tuple[str, list[int]]], weights: np.ndarray, boxes: np.ndarray,
           width: int | None = None, height: int | None = None) -> list[Grounding]:
    """Pick, for each word, the region of highest weight (mean over the word's tokens).

    Args:
        spans: From :func:`word_spans`.
        weights: (m, R) attention (fusion) or token-region similarity (late).
        boxes: (R, 4) region boxes normalised to the model's centre-cropped input.
        width, height: Stored image size; boxes are mapped to its pixels when both are given.
    """
    out = []
    for word, idx in spans:
        idx = [i for i in idx if i < len(weights)]
        if not idx:
            continue
        w = np.asarray(weights, dtype=np.float64)[idx].mean(axis=0)
        r = int(np.argmax(w))
        box = boxes[r]
        if width and height:
            box = crop_box_to_image(box, int(width), int(height))
        out.append(Grounding(word, tuple(round(float(v), 2) for v in box), r, float(w[r])))
    return out
