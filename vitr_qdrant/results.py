"""What a VitrCollection returns: ingest reports, search hits and stored records."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Union

from .grounding import Grounding

ItemId = Union[int, str]
"""An id as users see it: the id they gave (int or str), else the point's UUID string."""


@dataclass
class AddReport:
    """Outcome of ``add_images`` / ``add_texts``.

    Attributes:
        added: Items encoded and written (new, or changed payload).
        replaced_items: ``(item description, reason)`` for every item written under an id that
            held another image (or text): the new one replaced it.
        skipped_items: ``(item description, reason)`` for every item not written: stored
            already unchanged, or a duplicate of an earlier item of the same call.
        failed: ``(item description, reason)`` for every item that could not be used.
        failed_inputs: For each entry of ``failed``, the position in ``items`` of the input it
            came from (the files found in a directory share the directory's position).
        ids: Ids of the added, replaced and skipped items, in input order.
    """

    added: int = 0
    replaced_items: list[tuple[str, str]] = field(default_factory=list)
    skipped_items: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    failed_inputs: list[int] = field(default_factory=list)
    ids: list[ItemId] = field(default_factory=list)

    @property
    def replaced(self) -> int:
        """How many items replaced another item under their id (see ``replaced_items``)."""
        return len(self.replaced_items)

    @property
    def skipped(self) -> int:
        """How many items were skipped (see ``skipped_items`` for which and why)."""
        return len(self.skipped_items)

    def fail(self, item: str, reason: str, index: int) -> None:
        """Report that ``item`` (of input ``index``) could not be used, and why."""
        self.failed.append((item, reason))
        self.failed_inputs.append(index)

    @property
    def summary(self) -> str:
        """``added 3, skipped 1, failed 0`` (and how many replaced, if any)."""
        replaced = f", replaced {self.replaced}" if self.replaced else ""
        return f"added {self.added}{replaced}, skipped {self.skipped}, failed {len(self.failed)}"

    def __str__(self) -> str:
        lines = [self.summary]
        lines += [f"  failed: {item}: {reason}" for item, reason in self.failed]
        return "\n".join(lines)


@dataclass
class Hit:
    """One search result.

    Attributes:
        id: The item's id (the caller's id if one was given when adding, else the point UUID).
        score: Final score of the search's mode (higher is better).
        scores: Score of every stage that ran: ``global`` (cosine), ``late`` (MaxSim),
            ``vitr`` (fusion rerank).
        payload: Stored payload: ``uri``, ``sha256``, ``width``, ``height`` (images) or
            ``text`` (texts), plus user metadata.
        grounding: Per query word, the region it attended to (text-to-image), or per word of
            the hit's text, the query-image region it attended to (image-to-text).
        probability: The model's calibrated probability that the query holds for this image
            (below 0.5: the model thinks it does not); None where the model has no calibration
            for the search's mode (image-to-image search, an uncalibrated model).
    """

    id: ItemId
    score: float
    scores: dict[str, float]
    payload: dict[str, Any]
    grounding: list[Grounding] = field(default_factory=list)
    probability: float | None = None

    @property
    def uri(self) -> str | None:
        """The stored image's path or URL, if it had one."""
        return self.payload.get("uri")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict: id, score, probability, scores, payload, grounding (word, box, region, weight)."""
        return {"id": self.id, "score": self.score, "probability": self.probability, "scores": dict(self.scores),
                "payload": dict(self.payload), "grounding": [asdict(g) | {"box": list(g.box)} for g in self.grounding]}

    @property
    def text(self) -> str | None:
        """The stored text (image-to-text hits)."""
        return self.payload.get("text")


@dataclass
class Record:
    """A stored item returned by ``get``: its id and payload."""

    id: ItemId
    payload: dict[str, Any]

    @property
    def uri(self) -> str | None:
        """The stored image's path or URL, if it had one."""
        return self.payload.get("uri")


def user_id(point_id: Any, payload: dict[str, Any]) -> ItemId:
    """The id to show users: the caller's ``external_id`` if stored, else the point id."""
    ext = payload.get("external_id")
    return ext if ext is not None else point_id
