"""The service's request and response bodies (pydantic: FastAPI validates them and documents
them at ``/docs``)."""
from __future__ import annotations

from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field

from ..encoders.modes import MODES

Mode = Literal[MODES]   # a tuple subscript is the same as listing the values
ItemIdOut = Union[int, str]


class StageSizes(BaseModel):
    """How many hits, and how many candidates the first two stages keep."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(10, gt=0, le=1000, description="number of hits")
    filter: Optional[dict[str, Any]] = Field(None, description='payload filter, e.g. {"kind": "dog", '
                                             '"year": {"gte": 2020}}')
    prefetch: int = Field(200, gt=0, le=10_000, description="stage 1 size: candidates by the global vector")
    candidates: int = Field(50, gt=0, le=1000, description="stage 2 size: candidates reranked in vitr mode")


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



