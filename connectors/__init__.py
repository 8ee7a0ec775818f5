"""Qdrant storage for VITR embeddings: schema, backends (embedded edge, qdrant-client), the staged query.

This package sees numpy arrays only: it never imports the encoders (nor torch or open_clip),
and of ``vitr_qdrant`` only the base modules (``errors``, ``_lazy``, ``_version``). Names load
on first use, so importing a light module of it (e.g. :mod:`.retry`) loads no Qdrant engine.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if __name__ != "vitr_qdrant.connectors":  # e.g. `import connectors` in a checkout: a second copy of the code
    raise ImportError(f"this folder is the package vitr_qdrant.connectors: import that, not {__name__!r}")

from .._lazy import lazy_getattr  # noqa: E402
from ..errors import (CollectionNotFoundError, CollectionNotOpenError, FingerprintMismatchError,  # noqa: E402
                      StoreCorruptError, StoreError, StoreFullError, StoreLockedError)

if TYPE_CHECKING:
    from .backends import create_backend, default_data_dir, default_store_path
    from .base import StoreBackend
    from .filters import build_filter
    from .ids import ID_NAMESPACE, PointId, point_id
    from .query import RerankFn, StageCfg, search
    from .schema import (COMPACT_STORAGE, GLOBAL, REGIONS, STORAGE_OPTIONS, Candidate, CollectionSpec, QueryPlan,
                         StoredPoint, make_payload)

_LAZY = {
    "create_backend": ".backends", "default_data_dir": ".backends",
    "default_store_path": ".backends", "StoreBackend": ".base",
    "build_filter": ".filters", "ID_NAMESPACE": ".ids", "PointId": ".ids", "point_id": ".ids",
    "RerankFn": ".query", "StageCfg": ".query", "search": ".query",
    **{name: ".schema" for name in ("COMPACT_STORAGE", "GLOBAL", "REGIONS", "STORAGE_OPTIONS", "Candidate",
                                    "CollectionSpec", "QueryPlan", "StoredPoint", "make_payload")},
}
__all__ = sorted([*_LAZY, "CollectionNotFoundError", "CollectionNotOpenError", "FingerprintMismatchError",
                  "StoreCorruptError", "StoreError", "StoreFullError", "StoreLockedError"])
__getattr__ = lazy_getattr(__name__, _LAZY, globals())


def __dir__() -> list[str]:
    return __all__
