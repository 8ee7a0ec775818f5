"""The one set of search parameters: built and checked once, by the library, the CLI, the service
and the RAG adapters alike, before any model loads; the layers below trust it."""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, fields, replace
from typing import Any

from .encoders.modes import MODES
from .errors import InputError

MAX_LIMIT = 1000
"""Most hits one search returns."""
MAX_OFFSET = 10_000
"""Deepest page start: ``offset`` hits are ranked and skipped, so paging far is as costly as a large limit."""
MAX_PREFETCH = 100_000
"""Largest stage 1 (global vector) size; ``prefetch=None`` ranks every image instead."""
MAX_CANDIDATES = 10_000
"""Largest stage 2 size (candidates the fusion head reranks in ``vitr`` mode)."""
PREFETCH = 300
"""Default stage 1 size N (every face's default: the library, CLI, service and RAG adapters; 300:
success within a point of ``prefetch=None`` at 100k images, where 200 was a point short; see the
README's first-stage section)."""
CANDIDATES = 30
"""Default stage 2 size M (30: success within a point of 50 at 10k and 100k images, and a
third less to read and rerank; see the README's first-stage section)."""


@dataclass(frozen=True)
class SearchParams:
    """How one search runs; invalid values raise :class:`~vitr_qdrant.InputError` on construction.

    Attributes:
        limit: Number of hits (1..1000).
        offset: Hits to skip first, for paging (0..10000): page ``p`` of size ``k`` is
            ``limit=k, offset=p*k``. Pages are consistent while ``limit + offset <= candidates``
            (the rerank then sees the same candidates on every page).
        filter: A payload filter dict (``{"album": "x", "year": {"gte": 2020}}``) or a Qdrant
            ``models.Filter``; None: every item.
        mode: ``"vitr"``, ``"late"``, ``"global"``; None: the model's best.
        prefetch: Stage 1 size (candidates by the first-stage vector, filters applied), or None:
            no global stage, every image the filter lets through is ranked by MaxSim.
        candidates: Stage 2 size (top M by MaxSim, reranked by the fusion head in ``vitr`` mode).
        score_threshold: Leave out hits whose ``score`` is below this (None: keep all). Scores are
            in the search mode's own scale (see ``Hit.probability`` for a calibrated one).
    """

    limit: int = 10
    offset: int = 0
    filter: Any = None
    mode: str | None = None
    prefetch: int | None = PREFETCH
    candidates: int = CANDIDATES
    score_threshold: float | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__.__get__(self)   # frozen: normalise once, here
        set_("limit", _int_in("limit", self.limit, 1, MAX_LIMIT))
        set_("offset", _int_in("offset", self.offset, 0, MAX_OFFSET))
        if self.prefetch is not None:
            set_("prefetch", _int_in("prefetch", self.prefetch, 1, MAX_PREFETCH, " (or None: no global stage)"))
        set_("candidates", _int_in("candidates", self.candidates, 1, MAX_CANDIDATES))
        if self.mode is not None and self.mode not in MODES:
            raise InputError(f"unknown mode {self.mode!r}; expected one of {MODES} (or None: the model's best)")
        if self.score_threshold is not None:
            t = self.score_threshold
            if isinstance(t, bool) or not isinstance(t, numbers.Real) or not math.isfinite(t):
                raise InputError(f"score_threshold must be a finite number (or None), got {t!r}")
            set_("score_threshold", float(t))
        from .connectors import build_filter

        build_filter(self.filter)   # a bad filter is reported now, not after the model loads

    @classmethod
    def create(cls, params: "SearchParams | None" = None, **values: Any) -> "SearchParams":
        """``params`` (or the defaults) with ``values`` applied; unknown names are an InputError
        naming the valid ones."""
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise InputError(f"unknown search parameter(s) {unknown}; valid: {names}")
        return replace(params, **values) if params is not None else cls(**values)

    @property
    def window(self) -> int:
        """How many ranked hits a search needs: ``offset + limit``."""
        return self.offset + self.limit

    def page(self, hits: list) -> list:
        """The page of ranked ``hits`` these parameters ask for: the threshold, then the offset and limit."""
        if self.score_threshold is not None:
            hits = [h for h in hits if h.score >= self.score_threshold]
        return hits[self.offset:self.window]


def _int_in(name: str, value: Any, low: int, high: int, extra: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not low <= value <= high:
        raise InputError(f"{name} must be an int from {low} to {high}{extra}, got {value!r}")
    return int(value)
