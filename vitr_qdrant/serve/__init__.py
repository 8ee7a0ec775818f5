"""``vitr serve``: a collection behind an HTTP API (FastAPI) and a search page: ``app`` (the
routes), ``items`` (uploads and URLs into images), ``schemas``, ``guards`` (hosts, origins,
keys, limits), ``access`` (the access log) and ``state``, with the page's files in ``page/``.
It may import the collection and its search, the values at the top, ``sources``, the encoders
and the connectors; never ``ingest`` (it adds through the collection), ``demo``,
``integrations`` or ``cli``. Only ``cli`` imports it.

Needs the ``serve`` extra: ``pip install 'vitr-qdrant[serve]'``.
"""
from __future__ import annotations

try:
    import fastapi  # noqa: F401
    import python_multipart  # noqa: F401  (uploads)
except ImportError as exc:   # pragma: no cover - the extra is part of dev
    raise ImportError(f"the search service needs the serve extra: pip install 'vitr-qdrant[serve]' ({exc})") from exc

from .app import create_app

__all__ = ["create_app"]
