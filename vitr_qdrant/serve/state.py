"""The service's state: one open collection, what the service lets clients do, and one lock."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Request

from ..collection import VitrCollection

DEFAULT_MAX_BODY = 10 * 2**20


@dataclass
class Service:
    """A collection served over HTTP.

    Attributes:
        collection: The open collection (the service does not close it).
        uploads: Directory that keeps uploaded images (``POST /items``); None: adding is off.
        allow_delete: Whether ``DELETE /items/{id}`` is on.
        max_body_bytes: Largest request body (uploads included).
        allow_updates: Whether an upload may rewrite an item stored already.
        lock: Requests run in a thread pool; the model and the embedded store see one at a time.
    """

    collection: VitrCollection
    uploads: Path | None = None
    allow_delete: bool = False
    max_body_bytes: int = DEFAULT_MAX_BODY
    allow_updates: bool = False
    lock: Any = field(default_factory=threading.Lock)

    def face(self) -> Any:
        """The collection's :class:`~vitr_qdrant.aio.AsyncVitrCollection` (searches await it, off
        the event loop), holding :attr:`lock` as the request threads do."""
        from ..aio import AsyncVitrCollection

        return AsyncVitrCollection.of(self.collection, self.lock)


def get_service(request: Request) -> Service:
    """The :class:`Service` of the app handling ``request`` (a FastAPI dependency)."""
    return request.app.state.service
