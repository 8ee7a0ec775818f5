"""Exceptions raised by the storage connectors."""
from __future__ import annotations

from typing import Any, Mapping


class ConnectorError(RuntimeError):
    """Base class of every error raised by ``vitr_qdrant.connectors``."""


class CollectionNotFoundError(ConnectorError, KeyError):
    """The collection does not exist and was not asked to be created."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class CollectionNotOpenError(ConnectorError):
    """A data operation was called before ``open_collection``."""


class FingerprintMismatchError(ConnectorError):
    """The collection was built with another model (or other vector sizes)."""

    def __init__(self, collection: str, stored: Mapping[str, Any], given: Mapping[str, Any]):
        self.collection = collection
        self.stored = dict(stored)
        self.given = dict(given)
        super().__init__(
            f"collection {collection!r} was built with model {self.stored}, "
            f"but it was opened with model {self.given}. Open it with the model it was "
            f"built with, or use another collection name (or drop this one) for the new model."
        )


class StoreLockedError(ConnectorError):
    """An embedded store is already open in this or another process."""
