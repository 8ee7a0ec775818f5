"""What the RAG adapters share: the optional-import guard and a hit's text and metadata."""
from __future__ import annotations

import importlib
from typing import Any

from ..sources.fetch import url_scheme
from ..params import SearchParams
from ..results import Hit

SEARCH_OPTIONS = ("filter", "mode", "prefetch", "candidates", "score_threshold", "offset")
"""The search parameters the adapters take besides ``k`` (the library's :class:`SearchParams`)."""


def search_params(k: Any, **values: Any) -> SearchParams:
    """The library's search parameters for a retriever: ``k`` hits and ``values`` (checked once:
    a bad one is an InputError naming it)."""
    return SearchParams.create(limit=k, **values)


async def asearch(collection: Any, query: str, params: SearchParams) -> list[Hit]:
    """``collection.search`` awaited off the event loop (its shared :class:`AsyncVitrCollection`)."""
    from ..aio import AsyncVitrCollection

    face = collection if isinstance(collection, AsyncVitrCollection) else AsyncVitrCollection.of(collection)
    return await face.search(query, params=params)


def require(module: str, extra: str) -> Any:
    """Import ``module`` or raise an ImportError naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"{module} is not installed: pip install 'vitr-qdrant[{extra}]'") from exc


def hit_text(hit: Hit) -> str:
    """Text for a retrieved image: its caption or text if stored, else its uri, else its id."""
    for key in ("caption", "text"):
        if isinstance(hit.payload.get(key), str) and hit.payload[key]:
            return hit.payload[key]
    return hit.uri or str(hit.id)


def hit_metadata(hit: Hit) -> dict[str, Any]:
    """Flat metadata of a hit: id, score, probability, uri, per-stage scores, payload, grounding."""
    d = hit.to_dict()
    return {"id": d["id"], "score": d["score"], "probability": hit.probability, "uri": hit.uri, "scores": d["scores"],
            "payload": d["payload"], "grounding": d["grounding"]}


def is_url(uri: str | None) -> bool:
    """Whether a stored uri is an http(s) URL (else a local path)."""
    return bool(uri) and url_scheme(uri) in ("http", "https")
