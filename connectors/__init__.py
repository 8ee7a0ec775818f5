"""Qdrant storage for VITR embeddings: schema, backends (embedded edge, qdrant-client), staged queries.

This package sees numpy arrays only; it never imports the encoders.
"""
from __future__ import annotations

from ..errors import (CollectionNotFoundError, CollectionNotOpenError, FingerprintMismatchError, StoreError,
                      StoreLockedError)
from .base import StoreBackend
from .factory import create_backend, default_data_dir
from .filters import build_filter
from .ids import ID_NAMESPACE, PointId, point_id
from .query import RerankFn, StageCfg, search
from .schema import (COMPACT_STORAGE, GLOBAL, REGIONS, STORAGE_OPTIONS, Candidate, CollectionSpec,
                     QueryPlan, StoredPoint, make_payload)

__all__ = [
    "COMPACT_STORAGE", "GLOBAL", "ID_NAMESPACE", "REGIONS", "STORAGE_OPTIONS", "Candidate",
    "CollectionNotFoundError", "CollectionNotOpenError", "CollectionSpec", "FingerprintMismatchError",
    "PointId", "QueryPlan", "RerankFn", "StageCfg", "StoreBackend", "StoreError", "StoreLockedError",
    "StoredPoint", "build_filter", "create_backend", "default_data_dir", "make_payload", "point_id", "search",
]
