"""Turn engine records (qdrant-edge or qdrant-client) into connector dataclasses."""
from __future__ import annotations

from typing import Any

import numpy as np

from .ids import normalize_id
from .schema import GLOBAL, REGIONS, Candidate, StoredPoint


def _vectors(raw: Any) -> tuple[np.ndarray | None, np.ndarray | None]:
    if not isinstance(raw, dict):
        return None, None
    g, r = raw.get(GLOBAL), raw.get(REGIONS)
    return (None if g is None else np.asarray(g, dtype=np.float32),
            None if r is None else np.asarray(r, dtype=np.float32))


def stored_point_from(rec: Any) -> StoredPoint:
    """A ``Record`` (either engine) as a :class:`StoredPoint`."""
    g, r = _vectors(rec.vector)
    return StoredPoint(id=normalize_id(rec.id), global_vector=g, regions=r, payload=dict(rec.payload or {}))


def candidate_from(point: Any, stage: str) -> Candidate:
    """A ``ScoredPoint`` (either engine) as a :class:`Candidate` scored by ``stage``."""
    g, r = _vectors(point.vector)
    score = float(point.score)
    return Candidate(id=normalize_id(point.id), score=score, stage_scores={stage: score},
                     payload=dict(point.payload or {}), global_vector=g, regions=r)
