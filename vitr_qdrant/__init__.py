"""vitr-qdrant: relation-aware multimodal search on Qdrant.

Heavy modules (torch, Qdrant) load on first use of a name, not at ``import vitr_qdrant``; the
error family (rooted at :class:`VitrError`) is here at once::

    import vitr_qdrant as vq
    col = vq.VitrCollection("photos", model=vq.load_model())
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_getattr
from ._version import __version__
from .errors import (CollectionClosedError, CollectionNotFoundError, CollectionNotOpenError, FetchError,
                     FingerprintMismatchError, HeadNotTrainedError, ImageLoadError, InputError, ModelError,
                     ModelFormatError, ModelNotFoundError, StoreCorruptError, StoreError, StoreFullError, StoreLockedError,
                     URLPolicyError, VitrError)
from .errors import __all__ as _ERRORS

if TYPE_CHECKING:
    from .aio import AsyncVitrCollection
    from .collection import VitrCollection
    from .params import SearchParams
    from .store_info import list_collections
    from .encoders import create_model, list_models, load_model
    from .results import AddReport, Hit, Record
    from .settings import Settings

_LAZY = {
    "VitrCollection": ".collection", "AsyncVitrCollection": ".aio", "SearchParams": ".params",
    "list_collections": ".store_info", "AddReport": ".results", "Hit": ".results", "Record": ".results",
    "Settings": ".settings", "load_model": ".encoders", "create_model": ".encoders",
    "list_models": ".encoders",
}

__all__ = ["__version__", *_ERRORS, *_LAZY]


__getattr__ = lazy_getattr(__name__, _LAZY, globals())


def __dir__() -> list[str]:
    return sorted(__all__)
