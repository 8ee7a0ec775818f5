"""Staged search over a backend: stage 1 global HNSW, stage 2 MaxSim in Qdrant, stage 3 client-side."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence, Union

import numpy as np
from qdrant_client import models

from ..errors import InputError
from .base import StoreBackend
from .filters import build_filter, index_kinds
from .ids import PointId
from .schema import Candidate, QueryPlan

logger = logging.getLogger(__name__)

RerankFn = Callable[[np.ndarray, np.ndarray], Union[np.ndarray, Sequence[Any]]]
"""``rerank(global_vectors[k, D], region_vectors[k, R, d]) -> scores[k]`` (or a tuple whose
first item is the scores, e.g. ``(scores, attention)``; the rest is ignored here). Regions of
candidates with fewer rows are padded by repeating their first row, which leaves MaxSim unchanged."""
FilterLike = Union[Mapping[str, Any], models.Filter, None]


@dataclass(frozen=True)
class StageCfg:
    """Stage sizes and engine knobs of a staged query.

    Attributes:
        prefetch_limit: Stage 1 keeps the top N by ``global`` cosine (filters apply here).
        late_limit: Stage 2 keeps the top M by MaxSim; these go to the rerank.
        hnsw_ef: HNSW beam width of stage 1 (None: engine default, at least N).
        rescore: With quantized regions, rescore stage 2 with the original vectors.
    """

    prefetch_limit: int = 200
    late_limit: int = 50
    hnsw_ef: int | None = None
    rescore: bool = True

    def __post_init__(self) -> None:
        if self.prefetch_limit <= 0 or self.late_limit <= 0:
            raise InputError(f"stage sizes must be positive, got N={self.prefetch_limit}, M={self.late_limit}")


def fetch_candidates(backend: StoreBackend, global_query: np.ndarray, token_vectors: np.ndarray, *,
                     filter: FilterLike = None, stages: StageCfg = StageCfg(), limit: int | None = None,
                     with_regions: bool = True) -> list[Candidate]:
    """Run stages 1 and 2; return up to ``limit`` (default ``stages.late_limit``) candidates.

    Each candidate has ``stage_scores`` ``{"global", "late"}``, its payload, and its stored
    ``global`` vector (plus ``regions`` when ``with_regions``) for a client-side stage 3.

    Raises:
        InputError: empty or mis-shaped query vectors, or ``limit <= 0``.
    """
    g = _unit(np.asarray(global_query, dtype=np.float32), "global query vector")
    tokens = np.asarray(token_vectors, dtype=np.float32)
    if tokens.ndim != 2 or tokens.shape[0] == 0:
        raise InputError(f"token vectors must be a non-empty (m, d) array, got shape {tokens.shape}")
    m = stages.late_limit if limit is None else _positive(limit)
    plan = QueryPlan(global_vector=g, token_vectors=tokens, limit=m, prefetch_limit=max(stages.prefetch_limit, m),
                     filter=_indexed_filter(backend, filter), with_regions=with_regions, hnsw_ef=stages.hnsw_ef,
                     rescore=stages.rescore)
    return _with_global_scores(backend.query(plan), g)


def staged_search(backend: StoreBackend, global_query: np.ndarray, token_vectors: np.ndarray, *,
                  limit: int = 10, filter: FilterLike = None, stages: StageCfg = StageCfg(),
                  rerank: RerankFn | None = None, with_vectors: bool = False) -> list[Candidate]:
    """Text-to-image search: stages 1-2 in Qdrant, then ``rerank`` (if given) on the top M.

    Returns the top ``limit`` candidates. With ``rerank``, ``score`` is the rerank score and
    ``stage_scores`` holds ``global``, ``late`` and ``rerank``; without it, ``score`` is MaxSim.

    Raises:
        InputError: ``limit <= 0``, empty or mis-shaped query vectors, or a bad rerank output.
    """
    _positive(limit)
    if rerank is None:
        return fetch_candidates(backend, global_query, token_vectors, filter=filter, stages=stages,
                                limit=limit, with_regions=with_vectors)
    cands = fetch_candidates(backend, global_query, token_vectors, filter=filter, stages=stages,
                             limit=max(stages.late_limit, limit), with_regions=True)
    return apply_rerank(cands, rerank)[:limit]


def global_search(backend: StoreBackend, global_query: np.ndarray, *, limit: int = 10,
                  filter: FilterLike = None, hnsw_ef: int | None = None,
                  with_vectors: bool = False) -> list[Candidate]:
    """Search by the ``global`` vector only (``mode="global"``, the CLIP baseline)."""
    g = _unit(np.asarray(global_query, dtype=np.float32), "global query vector")
    plan = QueryPlan(global_vector=g, token_vectors=None, limit=_positive(limit), prefetch_limit=limit,
                     filter=_indexed_filter(backend, filter), with_regions=with_vectors, hnsw_ef=hnsw_ef)
    return backend.query(plan)


def image_search(backend: StoreBackend, global_vector: np.ndarray, regions: np.ndarray, *, limit: int = 10,
                 filter: FilterLike = None, stages: StageCfg = StageCfg(), rerank: RerankFn | None = None,
                 exclude_ids: Sequence[PointId] = (), with_vectors: bool = False) -> list[Candidate]:
    """Image-to-image search: the image's own ``global`` for stage 1 and its ``regions`` for MaxSim.

    ``exclude_ids`` drops points (typically the query image itself) from the results.
    """
    flt = build_filter(filter)
    backend.ensure_payload_indexes(index_kinds(filter))
    if exclude_ids:
        not_these = models.HasIdCondition(has_id=list(exclude_ids))
        flt = models.Filter(must=[flt] if flt else None, must_not=[not_these])
    return staged_search(backend, global_vector, regions, limit=limit, filter=flt, stages=stages,
                         rerank=rerank, with_vectors=with_vectors)


def apply_rerank(cands: list[Candidate], rerank: RerankFn) -> list[Candidate]:
    """Score candidates with ``rerank`` on their stored vectors; return them sorted by it."""
    if not cands:
        return []
    if any(c.global_vector is None or c.regions is None for c in cands):
        raise InputError("rerank needs candidates fetched with their global and regions vectors")
    out = rerank(np.stack([c.global_vector for c in cands]), _stack_regions([c.regions for c in cands]))
    scores = np.asarray(out[0] if isinstance(out, tuple) else out, dtype=np.float64).reshape(-1)
    if scores.shape != (len(cands),) or not np.isfinite(scores).all():
        raise InputError(f"rerank must return {len(cands)} finite scores, got shape {scores.shape}")
    for c, s in zip(cands, scores):
        c.stage_scores["rerank"] = c.score = float(s)
    return sorted(cands, key=lambda c: -c.score)


def _stack_regions(regions: list[np.ndarray]) -> np.ndarray:
    """Stack (R_i, d) arrays; pads short ones by repeating their first row (MaxSim unchanged)."""
    r_max = max(r.shape[0] for r in regions)
    padded = [r if r.shape[0] == r_max else np.concatenate([r, np.repeat(r[:1], r_max - r.shape[0], 0)])
              for r in regions]
    return np.stack(padded)


def _indexed_filter(backend: StoreBackend, filter: FilterLike) -> models.Filter | None:
    """The Qdrant filter; the keys of a simple dict filter get payload indexes on first use."""
    flt = build_filter(filter)
    backend.ensure_payload_indexes(index_kinds(filter))
    return flt


def _with_global_scores(cands: list[Candidate], g: np.ndarray) -> list[Candidate]:
    """Stage 1 scores: cosine of the query with the stored (unit-norm) global vectors."""
    have = [c for c in cands if c.global_vector is not None]
    if have:
        for c, s in zip(have, np.stack([c.global_vector for c in have]) @ g):
            c.stage_scores["global"] = float(s)
    return cands


def _unit(v: np.ndarray, what: str) -> np.ndarray:
    if v.ndim != 1 or v.size == 0 or not np.isfinite(v).all():
        raise InputError(f"{what} must be a finite 1-D vector, got shape {v.shape}")
    n = float(np.linalg.norm(v))
    if n == 0.0:
        raise InputError(f"{what} is all zeros")
    return v / n


def _positive(limit: int) -> int:
    if int(limit) <= 0:
        raise InputError(f"limit must be positive, got {limit}")
    return int(limit)
