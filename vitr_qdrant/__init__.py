"""vitr-qdrant: relation-aware multimodal search on Qdrant.

Heavy modules (torch, Qdrant) load on first use of a name, not at ``import vitr_qdrant``; the
error family (rooted at :class:`VitrError`) is here at once::

    import vitr_qdrant as vq
    col = vq.VitrCollection("photos", model=vq.load_model())
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import (CollectionNotFoundError, CollectionNotOpenError, FetchError, FingerprintMismatchError,
                     HeadNotTrainedError, ImageLoadError, InputError, ModelError, ModelFormatError,
                     ModelNotFoundError, StoreError, StoreLockedError, VitrError)
from .errors import __all__ as _ERRORS

if TYPE_CHECKING:
    from .collection import VitrCollection
    from .encoders import create_model, list_models, load_model
    from .results import AddReport, Hit, Record
    from .settings import Settings

_LAZY = {
    "VitrCollection": ".collection", "AddReport": ".results", "Hit": ".results", "Record": ".results",
    "Settings": ".settings", "load_model": ".encoders", "create_model": ".encoders",
    "list_models": ".encoders",
}

__all__ = ["__version__", *_ERRORS, *_LAZY]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'vitr_qdrant' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
