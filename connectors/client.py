"""qdrant-client backend: local mode (``:memory:`` or ``path=``) or a server/cluster (``url=``)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

import grpc  # ships with qdrant-client
import httpx
from qdrant_client import QdrantClient, models
from qdrant_client.common.client_exceptions import ResourceExhaustedResponse
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from ..errors import CollectionNotFoundError, InputError, StoreError, StoreLockedError
from .base import CheckedPoint, StoreBackend, check_plan, check_points
from .disk import GROWTH, MARGIN, point_bytes, require_free
from .ids import PointId, normalize_id
from .records import candidates_from, payload_with_regions, stored_point_from
from .retry import TRANSIENT_STATUS, RetryPolicy, call_with_retry
from .schema import (FIRST, GLOBAL, METADATA_KEY, REGIONS, REGIONS_PAYLOAD_KEY, RESCORE, Candidate, CollectionSpec,
                     QueryPlan, StoredPoint, check_metadata)

logger = logging.getLogger(__name__)
T = TypeVar("T")
_BATCH = 256


class QdrantClientBackend(StoreBackend):
    """A collection reached through ``qdrant_client.QdrantClient``.

    Args:
        location: ``":memory:"`` for an in-process, non-persistent store.
        path: Directory of a persistent local-mode store.
        url, api_key, timeout: A Qdrant server or cluster; network calls retry on transient errors.
        client: An existing client to share (e.g. two collections in one local ``path``); not closed here.
        shard_number, replication_factor, write_consistency_factor: Cluster options used when
            the collection is created.
        retries: Attempts per network call (remote only).
        **client_kwargs: Passed to ``QdrantClient`` (e.g. ``prefer_grpc``, ``https``, ``port``).
    """

    def __init__(self, *, location: str | None = None, path: str | None = None, url: str | None = None,
                 api_key: str | None = None, timeout: int | None = None, client: QdrantClient | None = None,
                 shard_number: int | None = None, replication_factor: int | None = None,
                 write_consistency_factor: int | None = None, retries: int = 4, **client_kwargs: Any):
        self._owns_client = client is None
        if client is None:
            kwargs = {k: v for k, v in dict(location=location, path=path, url=url, api_key=api_key,
                                                timeout=timeout, **client_kwargs).items() if v is not None}
            try:
                client = QdrantClient(**kwargs)
            except RuntimeError as exc:
                if "already accessed" in str(exc):
                    raise StoreLockedError(f"the local store at {path} is already open by another "
                                           f"QdrantClient; close it, pass client= to share it, or use a "
                                           f"Qdrant server (url=...)") from exc
                raise
        self.client = client
        opts = getattr(client, "init_options", {}) or {}
        self.remote = not (opts.get("location") == ":memory:" or opts.get("path"))
        self.path = Path(opts["path"]) if opts.get("path") else None
        self.name = "qdrant-remote" if self.remote else "qdrant-local"
        self.cluster = {k: v for k, v in dict(shard_number=shard_number, replication_factor=replication_factor,
                                              write_consistency_factor=write_consistency_factor).items()
                        if v is not None}
        self.retry = RetryPolicy(attempts=retries)
        self.spec: CollectionSpec | None = None
        self._indexes: dict[str, str] | None = None

    def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if not self.remote:
            return fn(*args, **kwargs)
        try:
            return call_with_retry(lambda: fn(*args, **kwargs), self.retry, is_transient, f"Qdrant ({fn.__name__})")
        except (UnexpectedResponse, ResponseHandlingException, ResourceExhaustedResponse, httpx.HTTPError,
                grpc.RpcError, ConnectionError, TimeoutError) as exc:
            raise server_error(exc, fn.__name__) from exc

    def open_collection(self, spec: CollectionSpec, create: bool = True) -> None:
        stored = self.read_metadata(spec.name)
        if stored is None:
            if not create:
                raise CollectionNotFoundError(f"no collection {spec.name!r} on this {self.name} store")
            try:
                self._call(self.client.create_collection, spec.name, vectors_config=_vectors_config(spec),
                           metadata={METADATA_KEY: spec.metadata()}, **self.cluster)
                logger.info("created collection %s (%s)", spec.name, self.name)
            except StoreError as exc:
                cause = exc.__cause__
                if not (isinstance(cause, UnexpectedResponse) and cause.status_code == 409):
                    raise   # 409: a concurrent ingest job created it first
            stored = self.read_metadata(spec.name) or spec.metadata()
        check_metadata(spec.name, stored, spec)
        self.spec, self._indexes = spec.with_stored_options(stored), None

    def list_collections(self) -> list[str]:
        """Names of the collections created by vitr-qdrant (others are left out)."""
        names = [c.name for c in self._call(self.client.get_collections).collections]
        return sorted(n for n in names if METADATA_KEY in (self._call(self.client.get_collection, n).config.metadata or {}))

    def read_metadata(self, name: str) -> dict[str, Any] | None:
        if not self._call(self.client.collection_exists, name):
            return None
        meta = self._call(self.client.get_collection, name).config.metadata or {}
        if METADATA_KEY not in meta:
            raise StoreError(f"collection {name!r} exists but was not created by vitr-qdrant "
                                 f"(no {METADATA_KEY!r} metadata); choose another name")
        return dict(meta[METADATA_KEY])

    def drop_collection(self, name: str) -> None:
        self._call(self.client.delete_collection, name)
        if self.spec is not None and self.spec.name == name:
            self.spec = None

    def upsert(self, points: Sequence[StoredPoint | CheckedPoint]) -> None:
        spec = self._require_spec()
        rows = check_points(points, spec)
        structs = [models.PointStruct(id=c.id, vector={k: v.tolist() for k, v in c.vectors.items()},
                                      payload=payload_with_regions(c.payload, c.vectors[REGIONS]
                                                                   if spec.regions_in_payload else None))
                   for c in rows]
        if self.path is not None:   # local mode on disk: refuse before writing when there is no room
            needed = GROWTH * point_bytes([v for c in rows for v in c.vectors.values()], [s.payload for s in structs])
            require_free(self.path, needed + MARGIN, f"writing {len(rows)} points in collection {spec.name!r}")
        for start in range(0, len(structs), _BATCH):
            self._call(self.client.upsert, spec.name, structs[start:start + _BATCH], wait=True)

    def delete(self, ids: Sequence[PointId]) -> None:
        spec = self._require_spec()
        if ids:
            self._call(self.client.delete, spec.name, models.PointIdsList(points=list(ids)), wait=True)

    def set_payload(self, ids: Sequence[PointId], payload: dict[str, Any], delete_keys: Sequence[str] = ()) -> None:
        spec = self._require_spec()
        ids = [p.id for p in self.retrieve(ids)]   # local mode refuses a missing id: ignore it, as delete does
        if not ids:
            return
        if delete_keys:
            self._call(self.client.delete_payload, spec.name, list(delete_keys), list(ids), wait=True)
        if payload:
            self._call(self.client.set_payload, spec.name, payload, list(ids), wait=True)

    def retrieve(self, ids: Sequence[PointId], with_vectors: bool = False) -> list[StoredPoint]:
        spec = self._require_spec()
        if not ids:
            return []
        recs = self._call(self.client.retrieve, spec.name, list(ids), with_payload=self._user_payload(),
                          with_vectors=self._stored_vectors() if with_vectors else False)
        found = {normalize_id(r.id): stored_point_from(r) for r in recs}
        return [found[i] for i in map(normalize_id, ids) if i in found]

    def count(self, filter: Any = None) -> int:
        spec = self._require_spec()
        return self._call(self.client.count, spec.name, count_filter=filter, exact=True).count

    def scroll(self, limit: int = 256, offset: PointId | None = None, filter: Any = None,
               with_vectors: bool = False) -> tuple[list[StoredPoint], PointId | None]:
        spec = self._require_spec()
        recs, nxt = self._call(self.client.scroll, spec.name, scroll_filter=filter, limit=limit, offset=offset,
                               with_payload=self._user_payload(),
                               with_vectors=self._stored_vectors() if with_vectors else False)
        return [stored_point_from(r) for r in recs], None if nxt is None else normalize_id(nxt)

    def query(self, plan: QueryPlan) -> list[Candidate]:
        spec = self._require_spec()
        check_plan(plan, spec)
        copy = spec.regions_in_payload  # compact base64 instead of JSON floats over the wire
        vectors = [GLOBAL, REGIONS] if plan.with_regions and not copy else [GLOBAL]
        payload = True if plan.with_regions else self._user_payload()
        common = dict(limit=plan.limit, with_payload=payload, with_vectors=vectors)
        if plan.token_vectors is None:
            res = self._call(self.client.query_points, spec.name, query=plan.global_vector.tolist(), using=GLOBAL,
                             query_filter=plan.filter, **common)
            return candidates_from(res.points, "global", spec.region_dim)
        everything = plan.prefetch_limit is None   # MaxSim over every point the filter lets through
        first = plan.first_vector is not None   # stage 1 by the first-stage vector where the query has one
        prefetch = None if everything else [models.Prefetch(
            query=(plan.first_vector if first else plan.global_vector).tolist(), using=FIRST if first else GLOBAL,
            limit=plan.prefetch_limit, filter=plan.filter)]
        quant = models.SearchParams(quantization=models.QuantizationSearchParams(rescore=RESCORE)) \
            if spec.quantize_regions and self.remote else None  # local mode is exact: no params
        res = self._call(self.client.query_points, spec.name, prefetch=prefetch, query=plan.token_vectors.tolist(),
                         using=REGIONS, query_filter=plan.filter if everything else None, search_params=quant,
                         **common)
        return candidates_from(res.points, "late", spec.region_dim)

    def _stored_vectors(self) -> list[str]:
        """The named vectors a point is read back with (``first`` where the collection has it)."""
        return [GLOBAL, REGIONS] + ([FIRST] if self._require_spec().first_dim is not None else [])

    def _user_payload(self) -> Any:
        if self._require_spec().regions_in_payload:
            return models.PayloadSelectorExclude(exclude=[REGIONS_PAYLOAD_KEY])
        return True

    def create_payload_index(self, field: str, kind: str) -> None:
        spec = self._require_spec()
        try:
            schema = models.PayloadSchemaType(kind)
        except ValueError:
            raise InputError(f"unknown payload index kind {kind!r}; choose one of "
                             f"{sorted(k.value for k in models.PayloadSchemaType)}") from None
        if self.remote:  # local mode scans payloads anyway: an index there only warns
            self._call(self.client.create_payload_index, spec.name, field, field_schema=schema, wait=True)
        self.payload_indexes()[field] = schema.value

    def payload_indexes(self) -> dict[str, str]:
        spec = self._require_spec()
        if self._indexes is None:
            schema = self._call(self.client.get_collection, spec.name).payload_schema or {}
            self._indexes = {k: str(getattr(v.data_type, "value", v.data_type)) for k, v in schema.items()}
        return self._indexes

    def close(self) -> None:
        if self._owns_client:
            self.client.close()
        self.spec = None


def server_error(exc: BaseException, call: str) -> StoreError:
    """A qdrant-client, httpx or gRPC error (after any retries) as the library's :class:`StoreError`."""
    text = " ".join(str(exc).split())[:300] or type(exc).__name__
    if isinstance(exc, UnexpectedResponse):
        if exc.status_code in (401, 403):
            return StoreError(f"the Qdrant server refused {call} (HTTP {exc.status_code}): check the API key "
                              f"(api_key= or $QDRANT_API_KEY)")
        return StoreError(f"the Qdrant server answered {call} with HTTP {exc.status_code}: {text}")
    if is_transient(exc):
        return StoreError(f"cannot reach the Qdrant server ({call}: {text}); check the URL and that the "
                          f"server runs (transient errors were retried)")
    return StoreError(f"the Qdrant server failed {call}: {text}")


def is_transient(exc: BaseException) -> bool:
    """True for Qdrant errors worth retrying: timeouts, refused connections, 408/425/429/5xx, gRPC
    UNAVAILABLE, DEADLINE_EXCEEDED and RESOURCE_EXHAUSTED."""
    if isinstance(exc, (ResourceExhaustedResponse, ResponseHandlingException, ConnectionError, TimeoutError,
                        httpx.TransportError)):
        return True
    if isinstance(exc, UnexpectedResponse):
        return exc.status_code in TRANSIENT_STATUS
    return isinstance(exc, grpc.RpcError) and hasattr(exc, "code") and exc.code() in _GRPC_TRANSIENT


_GRPC_TRANSIENT = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED}


def _vectors_config(spec: CollectionSpec) -> dict[str, models.VectorParams]:
    quant = models.ScalarQuantization(scalar=models.ScalarQuantizationConfig(
        type=models.ScalarType.INT8, quantile=0.99, always_ram=True)) if spec.quantize_regions else None
    dtype = {"float16": models.Datatype.FLOAT16, "turbo8": models.Datatype.TURBO8}.get(spec.regions_datatype)
    def dense(size: int) -> models.VectorParams:
        return models.VectorParams(size=size, distance=models.Distance.COSINE,
                                   hnsw_config=models.HnswConfigDiff(m=spec.hnsw_m, ef_construct=spec.hnsw_ef_construct))

    first = {} if spec.first_dim is None else {FIRST: dense(spec.first_dim)}
    return {
        GLOBAL: dense(spec.global_dim), **first,
        REGIONS: models.VectorParams(size=spec.region_dim, distance=models.Distance.COSINE, datatype=dtype,
                                     multivector_config=models.MultiVectorConfig(
                                         comparator=models.MultiVectorComparator.MAX_SIM),
                                     hnsw_config=models.HnswConfigDiff(m=0), quantization_config=quant),
    }
