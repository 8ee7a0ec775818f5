"""What the RAG adapters share: the optional-import guard and a hit's text and metadata."""
from __future__ import annotations

import importlib
from typing import Any

from ..fetch import url_scheme
from ..results import Hit


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
    """Flat metadata of a hit: id, score, uri, per-stage scores, payload, grounding."""
    d = hit.to_dict()
    return {"id": d["id"], "score": d["score"], "uri": hit.uri, "scores": d["scores"],
            "payload": d["payload"], "grounding": d["grounding"]}


def is_url(uri: str | None) -> bool:
    """Whether a stored uri is an http(s) URL (else a local path)."""
    return bool(uri) and url_scheme(uri) in ("http", "https")
