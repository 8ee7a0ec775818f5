"""Turn engine records (qdrant-edge or qdrant-client) into connector dataclasses."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pybase64

from .ids import normalize_id
from .schema import FIRST, GLOBAL, REGIONS, REGIONS_PAYLOAD_KEY, Candidate, StoredPoint


def encode_regions(regions: np.ndarray) -> str:
    """A multivector as the compact payload string (float16, base64)."""
    return pybase64.b64encode(np.ascontiguousarray(regions, dtype="<f2").tobytes()).decode("ascii")


def decode_regions(text: str, dim: int) -> np.ndarray:
    """The inverse of :func:`encode_regions`, as float32 (R, dim)."""
    return _float16_rows(_b64decode(text), dim).astype(np.float32)


def _b64decode(text: str) -> bytes:
    """Base64 text as bytes (SIMD; ``validate`` is pybase64's fast path, and a damaged copy raises)."""
    return pybase64.b64decode(text, validate=True)


def _float16_rows(raw: bytes, dim: int) -> np.ndarray:
    """Packed little-endian float16 bytes as rows of ``dim`` (a view, no copy)."""
    return np.frombuffer(raw, dtype="<f2").reshape(-1, dim)


def payload_with_regions(payload: dict[str, Any] | None, regions: np.ndarray | None) -> dict[str, Any]:
    """The payload to store: the user's, plus the regions copy when ``regions`` is given."""
    out = dict(payload or {})
    if regions is not None:
        out[REGIONS_PAYLOAD_KEY] = encode_regions(regions)
    return out


def _vectors(raw: Any) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """(global, regions, first) of an engine record's vectors, each None when not returned."""
    raw = raw if isinstance(raw, dict) else {}
    return tuple(None if raw.get(k) is None else np.asarray(raw[k], dtype=np.float32)  # type: ignore[return-value]
                 for k in (GLOBAL, REGIONS, FIRST))


def stored_point_from(rec: Any) -> StoredPoint:
    """A ``Record`` (either engine) as a :class:`StoredPoint` (the regions copy left out)."""
    g, r, first = _vectors(rec.vector)
    payload = dict(rec.payload or {})
    payload.pop(REGIONS_PAYLOAD_KEY, None)
    return StoredPoint(id=normalize_id(rec.id), global_vector=g, regions=r, payload=payload, first_vector=first)


def candidates_from(points: Sequence[Any], stage: str, region_dim: int) -> list[Candidate]:
    """``ScoredPoint``s (either engine) as :class:`Candidate`s scored by ``stage``.

    Regions come from the vector when returned (float32), else from the payload copy when
    present, as stored: float16 (views of one buffer; a reranker converts them, a model in
    torch much faster than numpy does).
    """
    out, copies = [], []
    for point in points:
        g, r, _ = _vectors(point.vector)
        payload = dict(point.payload or {})
        copy = payload.pop(REGIONS_PAYLOAD_KEY, None)
        if r is None and copy is not None:
            copies.append((len(out), copy))
        score = float(point.score)
        out.append(Candidate(id=normalize_id(point.id), score=score, stage_scores={stage: score},
                             payload=payload, global_vector=g, regions=r))
    if copies:
        raw = [_b64decode(text) for _, text in copies]
        flat = _float16_rows(b"".join(raw), region_dim)
        bounds = np.cumsum([0] + [len(b) // (2 * region_dim) for b in raw])
        for (i, _), a, b in zip(copies, bounds[:-1], bounds[1:]):
            out[i].regions = flat[a:b]
    return out
