"""The one staged query over a backend: stage 1 global HNSW, stage 2 MaxSim in Qdrant, stage 3 client-side.

Every search of the library (text to image, image to image, image to text, in every mode) is a
call of :func:`search`, and the conformance suite runs it on every backend.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence, Union

import numpy as np
from qdrant_client import models

from ..errors import InputError
from .base import StoreBackend
from .filters import build_filter
from .schema import Candidate, QueryPlan

RerankFn = Callable[[np.ndarray, list[np.ndarray]], Union[np.ndarray, Sequence[Any]]]
"""``rerank(global_vectors[k, D], regions: k arrays (R_i, d)) -> scores[k]``, or ``(scores, details)``
with one detail per candidate (e.g. the fusion head's attention), kept as ``Candidate.detail``."""
FilterLike = Union[Mapping[str, Any], models.Filter, None]


@dataclass(frozen=True)
class StageCfg:
    """Stage sizes of a staged query.

    Attributes:
        prefetch_limit: Stage 1 keeps the top N by ``global`` cosine (filters apply here; N is
            widened to the stage 2 size where that is larger); None:
            no global stage, stage 2 ranks every point by MaxSim (exact; its cost grows with
            the collection, for models whose global vector is a weak prefetch).
        late_limit: Stage 2 keeps the top M by MaxSim for the rerank (at least ``limit``).
    """

    prefetch_limit: int | None = 200
    late_limit: int = 50

    def __post_init__(self) -> None:
        if (self.prefetch_limit is not None and self.prefetch_limit <= 0) or self.late_limit <= 0:
            raise InputError(f"stage sizes must be positive, got N={self.prefetch_limit}, M={self.late_limit}")


def search(backend: StoreBackend, global_query: np.ndarray, token_vectors: np.ndarray | None = None, *,
           limit: int = 10, filter: FilterLike = None, stages: StageCfg = StageCfg(),
           rerank: RerankFn | None = None, with_vectors: bool = False,
           first_vector: np.ndarray | None = None) -> list[Candidate]:
    """The top ``limit`` points for a query, best first.

    * ``token_vectors`` None: stage 1 only, scored by cosine of the ``global`` vectors.
    * ``token_vectors`` (m, d): stage 1 keeps the top N (``stages.prefetch_limit``) by the global
      vector, stage 2 ranks them by MaxSim of the tokens over each point's ``regions``.
    * ``rerank`` as well: stage 2 keeps the top M (``stages.late_limit``), ``rerank`` scores them
      on their stored vectors, and the best ``limit`` of those are returned.
    * ``first_vector`` (F,) with token vectors, in a collection with first-stage vectors: stage 1
      keeps the top N by ``first`` instead (``global`` then only scores stage 1's candidates).

    Candidates carry ``stage_scores`` of every stage that ran (``global``, ``late``, ``rerank``),
    their payload, their stored ``global`` vector and, with ``with_vectors`` or ``rerank``, their
    ``regions``. A search writes nothing: a filter on a key without a payload index works, by
    reading the payloads of the candidates it visits.

    Raises:
        InputError: ``limit <= 0``, empty or mis-shaped query vectors, a bad filter or rerank output.
    """
    g, limit = _unit(np.asarray(global_query, dtype=np.float32)), _positive(limit)
    flt = build_filter(filter)
    if token_vectors is None:
        return backend.query(QueryPlan(g, None, limit=limit, prefetch_limit=limit, filter=flt,
                                       with_regions=with_vectors))
    tokens = np.asarray(token_vectors, dtype=np.float32)
    if tokens.ndim != 2 or tokens.shape[0] == 0:
        raise InputError(f"token vectors must be a non-empty (m, d) array, got shape {tokens.shape}")
    keep = max(stages.late_limit, limit) if rerank is not None else limit
    n = None if stages.prefetch_limit is None else max(stages.prefetch_limit, keep)
    first = None if first_vector is None else _unit(np.asarray(first_vector, dtype=np.float32))
    plan = QueryPlan(g, tokens, limit=keep, prefetch_limit=n, filter=flt,
                     with_regions=with_vectors or rerank is not None, first_vector=first)
    cands = _with_global_scores(backend.query(plan), g)
    return cands if rerank is None else _rerank(cands, rerank)[:limit]


def _rerank(cands: list[Candidate], rerank: RerankFn) -> list[Candidate]:
    """Score candidates with ``rerank`` on their stored vectors; return them sorted by it."""
    if not cands:
        return []
    out = rerank(np.stack([c.global_vector for c in cands]), [c.regions for c in cands])
    scores, details = out if isinstance(out, tuple) else (out, None)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if scores.shape != (len(cands),) or not np.isfinite(scores).all():
        raise InputError(f"rerank must return {len(cands)} finite scores, got shape {scores.shape}")
    if details is not None and len(details) != len(cands):
        raise InputError(f"rerank must return one detail per candidate, got {len(details)} for {len(cands)}")
    for i, (c, s) in enumerate(zip(cands, scores)):
        c.stage_scores["rerank"] = c.score = float(s)
        c.detail = None if details is None else details[i]
    return sorted(cands, key=lambda c: -c.score)


def _with_global_scores(cands: list[Candidate], g: np.ndarray) -> list[Candidate]:
    """Stage 1 scores: cosine of the query with the stored (unit-norm) global vectors."""
    have = [c for c in cands if c.global_vector is not None]
    if have:
        for c, s in zip(have, np.stack([c.global_vector for c in have]) @ g):
            c.stage_scores["global"] = float(s)
    return cands


def _unit(v: np.ndarray) -> np.ndarray:
    if v.ndim != 1 or v.size == 0 or not np.isfinite(v).all():
        raise InputError(f"a query vector must be a finite 1-D vector, got shape {v.shape}")
    n = float(np.linalg.norm(v))
    if n == 0.0:
        raise InputError("a query vector is all zeros")
    return v / n


def _positive(limit: int) -> int:
    if int(limit) <= 0:
        raise InputError(f"limit must be positive, got {limit}")
    return int(limit)
