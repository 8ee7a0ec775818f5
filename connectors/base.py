"""The one small interface every storage backend implements."""
from __future__ import annotations

import abc
import logging
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np

from ..errors import CollectionNotOpenError, InputError
from .ids import PointId
from .schema import FIRST, GLOBAL, REGIONS, Candidate, CollectionSpec, QueryPlan, StoredPoint

logger = logging.getLogger(__name__)


class StoreBackend(abc.ABC):
    """A Qdrant collection of points with a ``global`` vector and a ``regions`` multivector.

    A backend is bound to one storage location (a directory, memory, or a server) and,
    after :meth:`open_collection`, to one collection. Every write is flushed (durable)
    before it returns. Use as a context manager or call :meth:`close`.
    """

    name: str = "abstract"
    spec: CollectionSpec | None = None

    @abc.abstractmethod
    def open_collection(self, spec: CollectionSpec, create: bool = True) -> None:
        """Open ``spec.name``, creating it when missing and ``create`` is true.

        Raises:
            FingerprintMismatchError: the stored fingerprint or vector sizes differ from ``spec``.
            CollectionNotFoundError: missing and ``create`` is false.
            StoreLockedError: (embedded stores) already open elsewhere.
        """

    @abc.abstractmethod
    def list_collections(self) -> list[str]:
        """Names of the vitr-qdrant collections in this store."""

    @abc.abstractmethod
    def read_metadata(self, name: str) -> dict[str, Any] | None:
        """Return the record stored with collection ``name`` (fingerprint, schema), or None."""

    @abc.abstractmethod
    def drop_collection(self, name: str) -> None:
        """Delete collection ``name`` and its data (no error if missing)."""

    @abc.abstractmethod
    def upsert(self, points: Sequence[StoredPoint | CheckedPoint]) -> None:
        """Insert or overwrite points; durable when this returns.

        Raises:
            InputError: a point :func:`check_points` refuses (nothing of the call is written).
        """

    @abc.abstractmethod
    def delete(self, ids: Sequence[PointId]) -> None:
        """Delete points by id (missing ids are ignored); durable when this returns."""

    @abc.abstractmethod
    def set_payload(self, ids: Sequence[PointId], payload: dict[str, Any], delete_keys: Sequence[str] = ()) -> None:
        """Merge ``payload`` into the payloads of ``ids`` (keys it names are overwritten, others
        kept), after removing ``delete_keys``; vectors are untouched; missing ids are ignored;
        durable when this returns."""

    @abc.abstractmethod
    def retrieve(self, ids: Sequence[PointId], with_vectors: bool = False) -> list[StoredPoint]:
        """Return the stored points among ``ids`` (missing ids are left out), in ``ids`` order."""

    @abc.abstractmethod
    def count(self, filter: Any = None) -> int:
        """Return the exact number of points (matching a ``models.Filter`` if given)."""

    @abc.abstractmethod
    def scroll(self, limit: int = 256, offset: PointId | None = None, filter: Any = None,
               with_vectors: bool = False) -> tuple[list[StoredPoint], PointId | None]:
        """Return one page of points in id order and the offset of the next page (None at the end)."""

    @abc.abstractmethod
    def create_payload_index(self, field: str, kind: str) -> None:
        """Index payload ``field`` (kind: keyword, integer, float, bool, text, datetime, uuid).

        Filtered searches on an indexed field never read whole payloads; without an index they
        do for every candidate they visit.
        """

    @abc.abstractmethod
    def payload_indexes(self) -> dict[str, str]:
        """The indexed payload fields and their kinds."""

    def ensure_payload_indexes(self, kinds: dict[str, str]) -> None:
        """Create the missing indexes among ``{field: kind}`` (fields indexed already are left as they are)."""
        known = self.payload_indexes()
        for field_name, kind in kinds.items():
            if field_name not in known:
                logger.info("creating a %s payload index on %r", kind, field_name)
                self.create_payload_index(field_name, kind)

    @abc.abstractmethod
    def query(self, plan: QueryPlan) -> list[Candidate]:
        """Run stage 1 (and stage 2 when ``plan.token_vectors`` is set) inside Qdrant.

        Candidates carry the Qdrant score as ``score`` and ``stage_scores["late"]`` (stage 2) or
        ``stage_scores["global"]`` (stage 1 only), plus the ``global`` vector and, if asked,
        ``regions``.
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Flush and release the store (idempotent)."""

    def optimize(self) -> None:
        """Build pending indexes now (HNSW, quantization); a no-op where the engine does it itself."""

    def iter_points(self, batch_size: int = 256, filter: Any = None,
                    with_vectors: bool = False) -> Iterator[StoredPoint]:
        """Yield every point (matching ``filter``), paging with :meth:`scroll`."""
        offset: PointId | None = None
        while True:
            page, offset = self.scroll(batch_size, offset, filter, with_vectors)
            yield from page
            if offset is None:
                return

    def _require_spec(self) -> CollectionSpec:
        if self.spec is None:
            raise CollectionNotOpenError(f"{self.name} backend: call open_collection(spec) first")
        return self.spec

    def __enter__(self) -> "StoreBackend":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class CheckedPoint:
    """A point :func:`check_point` accepted: the point, its ``vectors`` by name (float32:
    ``global`` and ``regions``, and ``first`` in a collection with first-stage vectors) and the
    sizes (global, region, first) it was checked for. A backend's ``upsert`` writes it without
    checking it again, so each vector is checked once on its way to the store."""

    point: StoredPoint
    vectors: dict[str, np.ndarray]
    sizes: tuple[int, int, int | None]

    @property
    def id(self) -> PointId:
        return self.point.id

    @property
    def payload(self) -> dict[str, Any]:
        return self.point.payload


def spec_sizes(spec: CollectionSpec) -> tuple[int, int, int | None]:
    """The (global, region, first) sizes of ``spec``'s vectors: what :func:`check_point` checks."""
    return spec.global_dim, spec.region_dim, spec.first_dim


def check_points(points: Sequence[StoredPoint | CheckedPoint], spec: CollectionSpec) -> list[CheckedPoint]:
    """Validate points against ``spec`` (see :func:`check_point`); a point checked already for
    ``spec``'s sizes is taken as it is.

    Raises:
        InputError: a vector is missing, has the wrong shape, or is not finite.
    """
    sizes = spec_sizes(spec)
    return [p if isinstance(p, CheckedPoint) and p.sizes == sizes
            else check_point(p.point if isinstance(p, CheckedPoint) else p, spec) for p in points]


def check_point(p: StoredPoint, spec: CollectionSpec) -> CheckedPoint:
    """``p`` checked against ``spec``: the one check of a point's vectors on its way to the store.

    Raises:
        InputError: a vector is missing, has the wrong shape, or is not finite.
    """
    g = np.asarray(p.global_vector, dtype=np.float32) if p.global_vector is not None else None
    r = np.asarray(p.regions, dtype=np.float32) if p.regions is not None else None
    f = np.asarray(p.first_vector, dtype=np.float32) if p.first_vector is not None else None
    if g is None or g.shape != (spec.global_dim,):
        raise InputError(f"point {p.id!r}: global vector must have shape ({spec.global_dim},), "
                         f"got {None if g is None else g.shape}")
    if r is None or r.ndim != 2 or r.shape[0] < 1 or r.shape[1] != spec.region_dim:
        raise InputError(f"point {p.id!r}: regions must have shape (R>=1, {spec.region_dim}), "
                         f"got {None if r is None else r.shape}")
    vectors = {GLOBAL: g, REGIONS: r}
    if spec.first_dim is not None:
        if f is None or f.shape != (spec.first_dim,):
            raise InputError(f"point {p.id!r}: the first-stage vector must have shape ({spec.first_dim},), "
                             f"got {None if f is None else f.shape}")
        vectors[FIRST] = f
    if not all(np.isfinite(v).all() for v in vectors.values()):
        raise InputError(f"point {p.id!r}: vectors contain NaN or inf")
    return CheckedPoint(p, vectors, spec_sizes(spec))


def check_plan(plan: QueryPlan, spec: CollectionSpec) -> None:
    """Validate a query plan's shapes and limits against ``spec``."""
    if plan.limit <= 0 or (plan.prefetch_limit is not None and plan.prefetch_limit <= 0):
        raise InputError(f"limits must be positive, got limit={plan.limit}, prefetch={plan.prefetch_limit}")
    if plan.prefetch_limit is None and plan.token_vectors is None:
        raise InputError("prefetch_limit=None (no global stage) needs token vectors to rank by MaxSim")
    if np.shape(plan.global_vector) != (spec.global_dim,):
        raise InputError(f"query global vector must have shape ({spec.global_dim},), got {np.shape(plan.global_vector)}")
    if plan.first_vector is not None and np.shape(plan.first_vector) != (spec.first_dim,):
        raise InputError(f"query first-stage vector must have shape ({spec.first_dim},), got {np.shape(plan.first_vector)}")
    if plan.token_vectors is not None:
        shape = np.shape(plan.token_vectors)
        if len(shape) != 2 or shape[0] < 1 or shape[1] != spec.region_dim:
            raise InputError(f"query token vectors must have shape (m>=1, {spec.region_dim}), got {shape}")
