"""``vitr serve``: a collection behind an HTTP API (FastAPI) and a search page.

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
