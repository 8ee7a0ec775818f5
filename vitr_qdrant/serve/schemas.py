"""The service's request and response bodies (pydantic: FastAPI validates them and documents
them at ``/docs``)."""
from __future__ import annotations

from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field

from ..encoders.modes import MODES
from ..params import CANDIDATES, MAX_CANDIDATES, MAX_LIMIT, MAX_OFFSET, MAX_PREFETCH, PREFETCH, SearchParams

Mode = Literal[MODES]   # a tuple subscript is the same as listing the values
ItemIdOut = Union[int, str]


class StageSizes(BaseModel):
    """How many hits, from where, and how many candidates the first two stages keep; checked by
    :class:`~vitr_qdrant.params.SearchParams`, as every search of the library is."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(10, description=f"number of hits (1..{MAX_LIMIT})")
    offset: int = Field(0, description=f"hits to skip first, for paging (0..{MAX_OFFSET})")
    filter: Optional[dict[str, Any]] = Field(None, description='payload filter, e.g. {"kind": "dog", '
                                             '"year": {"gte": 2020}}')
    prefetch: Optional[int] = Field(PREFETCH, description=f"stage 1 size: candidates by the first-stage vector "
                                    f"(1..{MAX_PREFETCH}); null: no global stage, every image ranked by MaxSim")
    candidates: int = Field(CANDIDATES, description=f"stage 2 size: candidates reranked in vitr mode (1..{MAX_CANDIDATES})")
    score_threshold: Optional[float] = Field(None, description="leave out hits scoring below this")

    def params(self) -> SearchParams:
        """These values as the library's :class:`~vitr_qdrant.params.SearchParams` (the one
        validation: a bad value is an InputError, answered 400 with its message)."""
        values = self.model_dump()
        return SearchParams(mode=values.pop("mode", None), **{k: values[k] for k in (
            "limit", "offset", "filter", "prefetch", "candidates", "score_threshold")})


class SearchRequest(StageSizes):
    """``POST /search``: images for a text."""

    text: str = Field(..., min_length=1, max_length=1000, description="the query, e.g. 'dog left of cat'")
    mode: Optional[Mode] = Field(None, description="vitr (fused score), late (MaxSim) or global (the CLIP "
                                 "baseline); null: vitr, or global for a model without a trained head")


class GroundingOut(BaseModel):
    """A word and the region it attended to, as a box in the stored image's pixels."""

    word: str
    box: list[float] = Field(..., description="x0, y0, x1, y1")
    region: int
    weight: float


class HitOut(BaseModel):
    """One hit: the ids, scores and payload of ``VitrCollection.search``."""

    id: ItemIdOut
    score: float
    probability: Optional[float] = Field(None, description="the model's calibrated probability that the query "
                                         "holds (below 0.5: it thinks not); null without a calibration")
    scores: dict[str, float] = Field(..., description="the score of every stage that ran: global, late, vitr")
    payload: dict[str, Any]
    grounding: list[GroundingOut]


class SearchResponse(BaseModel):
    """Hits best first, and the query words the model does not know (they carry no meaning)."""

    hits: list[HitOut]
    unknown_words: list[str] = Field(default_factory=list)


class RecordOut(BaseModel):
    """A stored item."""

    id: ItemIdOut
    payload: dict[str, Any]


class ItemReport(BaseModel):
    """An item that was skipped or failed, and why."""

    item: str
    reason: str


class AddResponse(BaseModel):
    """What ``POST /items`` did with each upload."""

    added: int
    skipped: list[ItemReport]
    failed: list[ItemReport]
    ids: list[ItemIdOut]



