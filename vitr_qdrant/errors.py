"""The error family: every exception the library raises on purpose derives from :class:`VitrError`.

This module imports nothing, so every layer can raise from it: the encoders and the connectors
import it (and ``_version`` and ``_lazy``) from the package above them, and nothing else.

* :class:`InputError` (also a ``ValueError``): something the caller passed is wrong.
* :class:`ModelError`: a model cannot be found, read, or asked for what it cannot do.
* :class:`StoreError`: the storage layer refuses (missing, locked, full, damaged, or another model's
  collection).
"""
from __future__ import annotations

from typing import Any, Mapping


class VitrError(Exception):
    """Root of every error vitr-qdrant raises on purpose; the message says what to do."""


# --- bad input ------------------------------------------------------------------------------
class InputError(VitrError, ValueError):
    """An argument, option, query or item the caller can correct (a ``ValueError`` too)."""


class ImageLoadError(InputError):
    """An input that is not a usable image; the message says why."""


class FetchError(InputError):
    """A URL that could not be fetched; the message says why."""


class URLPolicyError(FetchError):
    """A URL the URL policy refuses: another scheme than http(s), or a host whose address is not
    public (loopback, private, link-local, multicast...); the message names the setting that allows it."""


# --- models ---------------------------------------------------------------------------------
class ModelError(VitrError):
    """A model cannot be found or read, or cannot do what it was asked."""


class ModelNotFoundError(ModelError):
    """No model of that name or directory (the message lists what there is)."""


class ModelFormatError(ModelError):
    """A model directory this version cannot read (newer format, weights that do not fit)."""


class HeadNotTrainedError(ModelError):
    """``mode="vitr"`` asked of a model whose fusion head was never trained."""


# --- the store ------------------------------------------------------------------------------
class StoreError(VitrError):
    """The storage layer refused an operation."""


class CollectionNotFoundError(StoreError, KeyError):
    """The collection does not exist and was not asked to be created."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class CollectionNotOpenError(StoreError):
    """A data operation was called before ``open_collection``."""


class CollectionClosedError(CollectionNotOpenError):
    """The collection was closed (in this or another thread) before or while this call ran."""


class FingerprintMismatchError(StoreError):
    """The collection was built with another model (or other vector sizes)."""

    def __init__(self, collection: str, stored: Mapping[str, Any], given: Mapping[str, Any]):
        self.collection = collection
        self.stored = dict(stored)
        self.given = dict(given)
        built, opened = _model_name(self.stored), _model_name(self.given)
        how = (f" Open it with that model: VitrCollection({collection!r}, model=vitr_qdrant.load_model("
               f"{built!r})) or `--model {built}` on the command line (a model directory works too);"
               if built else " Open it with the model it was built with;")
        super().__init__(
            f"collection {collection!r} was built with model {built or '?'} ({self.stored}), but it "
            f"was opened with model {opened or '?'} ({self.given}).{how} or use another collection "
            f"name (or drop this one) for the new model."
        )


def _model_name(fingerprint: Mapping[str, Any]) -> str | None:
    inner = fingerprint.get("fingerprint")
    return fingerprint.get("name") or (inner.get("name") if isinstance(inner, Mapping) else None)


class StoreLockedError(StoreError):
    """An embedded store is already open in this or another process."""


class StoreFullError(StoreError):
    """Not enough free disk space for a write (checked before writing: nothing was written)."""


class StoreCorruptError(StoreError):
    """A collection's files cannot be read (its sidecar, or the engine's data); the message names
    the collection and the file, and how to recover."""


__all__ = [
    "CollectionClosedError", "CollectionNotFoundError", "CollectionNotOpenError", "FetchError", "FingerprintMismatchError",
    "HeadNotTrainedError", "ImageLoadError", "InputError", "ModelError", "ModelFormatError",
    "ModelNotFoundError", "StoreCorruptError", "StoreError", "StoreFullError", "StoreLockedError",
    "URLPolicyError", "VitrError",
]
