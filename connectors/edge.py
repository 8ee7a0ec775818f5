"""Embedded backend: the Qdrant engine in process via ``qdrant-edge-py``."""
from __future__ import annotations

import errno
import json
import logging
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import qdrant_edge as qe

from ..errors import CollectionNotFoundError, InputError, StoreCorruptError, StoreFullError
from .base import CheckedPoint, StoreBackend, check_plan, check_points
from .disk import GROWTH, headroom, point_bytes, require_free, usage
from .edge_errors import GuardedShard, guarded
from .edge_filters import to_edge_filter
from .ids import PointId, normalize_id
from .locking import DirLock
from .records import candidates_from, payload_with_regions, stored_point_from
from .schema import (FIRST, GLOBAL, REGIONS, REGIONS_PAYLOAD_KEY, RESCORE, Candidate, CollectionSpec, QueryPlan,
                     StoredPoint, check_metadata)

logger = logging.getLogger(__name__)
META_FILE = "vitr_collection.json"
POINTS_KEY = "points"
"""The sidecar's record of how many points the collection holds (``{"min": n, "max": n}``)."""
SHARD_DIR = "shard"
TEMP_SEGMENTS = "temp_segments"
SEGMENT_KB = 256 * 1024
"""The largest segment the engine builds (of vector data), so that one index rebuild never
grows with the collection: the rebuilds of a growing collection add up to about linear work."""
_BATCH = 256
_INDEX_KINDS = {"keyword": qe.PayloadSchemaType.Keyword, "integer": qe.PayloadSchemaType.Integer,
                "float": qe.PayloadSchemaType.Float, "bool": qe.PayloadSchemaType.Bool,
                "text": qe.PayloadSchemaType.Text, "datetime": qe.PayloadSchemaType.Datetime,
                "uuid": qe.PayloadSchemaType.Uuid}


class EdgeBackend(StoreBackend):
    """Collections as directories ``<path>/<name>/`` holding an Edge shard, a sidecar and a lock.

    Args:
        path: Data directory; one sub-directory per collection.
        max_search_threads: Search threads of the engine (None: one per CPU).
        optimize_every: Build indexes (HNSW, quantization) of the points written since the
            last build automatically once there are this many; 0 leaves it to :meth:`optimize`.
            A build takes time in proportion to those points (segments are capped at
            :data:`SEGMENT_KB`), not to the collection: a bounded pause of the upsert that runs it.
        wal: Keep the engine's write-ahead log (new collections only). Every upsert is flushed
            before it returns either way; without the WAL bulk loads write ~2x faster and use
            ~100 MB less disk, but a crash during a flush has no log to replay.
    """

    name = "edge"

    def __init__(self, path: str | os.PathLike[str], max_search_threads: int | None = None,
                 optimize_every: int = 20_000, wal: bool = True):
        self.path = Path(path).expanduser()
        self.max_search_threads = max_search_threads
        self.optimize_every = optimize_every
        self.wal = wal
        self.spec: CollectionSpec | None = None
        self._shard: GuardedShard | None = None
        self._lock: DirLock | None = None
        self._pending = 0
        self._indexes: dict[str, str] | None = None

    def open_collection(self, spec: CollectionSpec, create: bool = True) -> None:
        """See :meth:`StoreBackend.open_collection`; also raises :class:`StoreCorruptError` (a
        damaged store, a missing or unreadable sidecar) and :class:`StoreFullError` (no room for
        what the engine writes when it opens a store)."""
        self.close()
        cdir = self.path / spec.name
        stored = self.read_metadata(spec.name)
        if stored is None and not create:
            raise CollectionNotFoundError(f"no collection {spec.name!r} in {self.path}; "
                                          f"found: {self.list_collections()}")
        require_free(cdir, headroom(cdir, write=False), f"opening collection {spec.name!r}")
        lock = DirLock(cdir)
        lock.acquire()
        try:
            stored = self.read_metadata(spec.name)  # re-read under the lock
            if stored is not None:
                check_metadata(spec.name, stored, spec)
                spec = spec.with_stored_options(stored)
                _remove_optimize_leftovers(cdir / SHARD_DIR)
            else:
                _write_json(cdir / META_FILE, {**spec.metadata(), POINTS_KEY: {"min": 0, "max": 0}})
            shard = self._open_shard(cdir / SHARD_DIR, spec)
            if stored is None:
                _keep_if_reopenable(cdir, shard)
            else:
                _check_points(spec.name, cdir, shard, stored.get(POINTS_KEY))
                _check_vectors(spec.name, cdir, shard)
        except BaseException:
            lock.release()
            raise
        self._shard = GuardedShard(shard, spec.name, cdir)
        self._lock, self.spec, self._indexes, self._pending = lock, spec, None, 0
        logger.info("opened edge collection %s at %s", spec.name, cdir)

    def _open_shard(self, sdir: Path, spec: CollectionSpec) -> qe.EdgeShard:
        if (sdir / "edge_config.json").exists():
            return guarded(qe.EdgeShard.load, spec.name, sdir.parent, True, str(sdir))
        sdir.mkdir(parents=True, exist_ok=True)
        config = _edge_config(spec, self.max_search_threads, self.wal)
        return guarded(qe.EdgeShard.create, spec.name, sdir.parent, True, str(sdir), config)

    def list_collections(self) -> list[str]:
        """Names of the collections in this data directory (those whose sidecar is missing too:
        opening one says so)."""
        if not self.path.is_dir():
            return []
        return sorted(p.name for p in self.path.iterdir()
                      if (p / META_FILE).is_file() or (p / SHARD_DIR / "edge_config.json").is_file())

    def read_metadata(self, name: str) -> dict[str, Any] | None:
        """The collection's sidecar (its model fingerprint and schema), or None if there is no
        collection ``name``.

        Raises:
            StoreCorruptError: the collection has data but no sidecar, or the sidecar is unreadable:
                never guessed, so that another model cannot adopt its vectors.
        """
        cdir = self.path / name
        meta = cdir / META_FILE
        if not meta.is_file():
            if (cdir / SHARD_DIR / "edge_config.json").is_file():
                raise StoreCorruptError(
                    f"collection {name!r} at {cdir} has data but no {META_FILE}, so the model it was built "
                    f"with is unknown and it is not opened. Restore {meta} from a backup, or move {cdir} "
                    f"away and rebuild the collection with `vitr index`.")
            return None
        try:
            data = json.loads(meta.read_text())
            if not isinstance(data, dict) or not isinstance(data.get("schema"), dict):
                raise ValueError("not the record of a vitr-qdrant collection")
        except (OSError, ValueError) as exc:
            raise StoreCorruptError(
                f"collection {name!r}: its sidecar {meta} cannot be read ({exc}). Restore it from a backup, "
                f"or move {cdir} away and rebuild the collection with `vitr index`.") from exc
        return data

    def drop_collection(self, name: str) -> None:
        if self.spec is not None and self.spec.name == name:
            self.close()
        cdir = self.path / name
        if not cdir.exists():
            return
        lock = DirLock(cdir)
        lock.acquire()
        try:
            shutil.rmtree(cdir)
        finally:
            lock.release()

    def upsert(self, points: Sequence[StoredPoint | CheckedPoint]) -> None:
        """See :meth:`StoreBackend.upsert`; raises :class:`StoreFullError`, before writing
        anything, when the disk has no room for the points."""
        shard, spec = self._shard_or_raise(), self._require_spec()
        rows = check_points(points, spec)
        payloads = [payload_with_regions(c.payload, c.vectors[REGIONS] if spec.regions_in_payload else None)
                    for c in rows]
        self._require_room(GROWTH * point_bytes([v for c in rows for v in c.vectors.values()], payloads),
                           f"writing {len(rows)} points")
        with self._counted(added=len(rows)):
            for start in range(0, len(rows), _BATCH):
                batch = [qe.Point(c.id, {k: v.tolist() for k, v in c.vectors.items()}, payload)
                         for c, payload in zip(rows[start:start + _BATCH], payloads[start:start + _BATCH])]
                shard.update(qe.UpdateOperation.upsert_points(batch))
            shard.flush()
        self._pending += len(rows)
        if self.optimize_every and self._pending >= self.optimize_every:
            try:
                self.optimize()
            except StoreFullError as exc:   # the points are stored: searches stay exact, only slower
                logger.warning("indexes not rebuilt: %s", exc)

    def delete(self, ids: Sequence[PointId]) -> None:
        shard = self._shard_or_raise()
        if ids:
            self._require_room(0, f"deleting {len(ids)} points")
            with self._counted(removed=len(ids)):
                shard.update(qe.UpdateOperation.delete_points(list(ids)))
                shard.flush()

    def set_payload(self, ids: Sequence[PointId], payload: dict[str, Any], delete_keys: Sequence[str] = ()) -> None:
        shard = self._shard_or_raise()
        ids = [p.id for p in self.retrieve(ids)]   # the engine refuses a missing id: ignore it, as delete does
        if ids:
            self._require_room(point_bytes([], [payload]) * len(ids), f"updating {len(ids)} payloads")
            if delete_keys:
                shard.update(qe.UpdateOperation.delete_payload(list(ids), list(delete_keys)))
            if payload:
                shard.update(qe.UpdateOperation.set_payload(list(ids), payload))
            shard.flush()

    def retrieve(self, ids: Sequence[PointId], with_vectors: bool = False) -> list[StoredPoint]:
        if not ids:
            return []
        recs = self._shard_or_raise().retrieve(list(ids), self._user_payload(),
                                               self._stored_vectors() if with_vectors else False)
        found = {normalize_id(r.id): stored_point_from(r) for r in recs}
        return [found[i] for i in map(normalize_id, ids) if i in found]

    def count(self, filter: Any = None) -> int:
        return self._shard_or_raise().count(qe.CountRequest(exact=True, filter=to_edge_filter(filter)))

    def scroll(self, limit: int = 256, offset: PointId | None = None, filter: Any = None,
               with_vectors: bool = False) -> tuple[list[StoredPoint], PointId | None]:
        req = qe.ScrollRequest(offset=offset, limit=limit, filter=to_edge_filter(filter),
                               with_payload=self._user_payload(),
                               with_vector=self._stored_vectors() if with_vectors else False)
        recs, nxt = self._shard_or_raise().scroll(req)
        return [stored_point_from(r) for r in recs], None if nxt is None else normalize_id(nxt)

    def query(self, plan: QueryPlan) -> list[Candidate]:
        shard, spec = self._shard_or_raise(), self._require_spec()
        check_plan(plan, spec)
        flt = to_edge_filter(plan.filter)
        copy = spec.regions_in_payload  # the payload copy is ~20x faster to hand back than the vector
        vectors = [GLOBAL, REGIONS] if plan.with_regions and not copy else [GLOBAL]
        payload = True if plan.with_regions else self._user_payload()
        g_query = qe.Query.Nearest(plan.global_vector.tolist(), using=GLOBAL)
        if plan.token_vectors is None:
            req = qe.QueryRequest(limit=plan.limit, query=g_query, filter=flt, with_payload=payload,
                                  with_vector=vectors)
            return candidates_from(shard.query(req), "global", spec.region_dim)
        quant = qe.QuantizationSearchParams(rescore=RESCORE) if spec.quantize_regions else None
        everything = plan.prefetch_limit is None   # MaxSim over every point the filter lets through
        req = qe.QueryRequest(
            limit=plan.limit,
            prefetches=None if everything else self._stage1(plan, g_query, flt),
            filter=flt if everything else None,
            query=qe.Query.Nearest(plan.token_vectors.tolist(), using=REGIONS),
            params=qe.SearchParams(quantization=quant) if quant else None,
            with_payload=payload, with_vector=vectors)
        return candidates_from(shard.query(req), "late", spec.region_dim)

    @staticmethod
    def _stage1(plan: QueryPlan, g_query: Any, flt: Any) -> list[Any]:
        """The top N by ``first`` where the query has a first-stage vector, else by ``global``:
        stage 2 ranks them."""
        if plan.first_vector is None:
            return [qe.Prefetch(limit=plan.prefetch_limit, query=g_query, filter=flt)]
        return [qe.Prefetch(limit=plan.prefetch_limit, filter=flt,
                            query=qe.Query.Nearest(plan.first_vector.tolist(), using=FIRST))]

    def _stored_vectors(self) -> list[str]:
        """The named vectors a point is read back with (``first`` where the collection has it)."""
        return [GLOBAL, REGIONS] + ([FIRST] if self._require_spec().first_dim is not None else [])

    def _user_payload(self) -> Any:
        return qe.PayloadSelector.Exclude([REGIONS_PAYLOAD_KEY]) if self._require_spec().regions_in_payload else True

    def create_payload_index(self, field: str, kind: str) -> None:
        shard = self._shard_or_raise()
        if kind not in _INDEX_KINDS:
            raise InputError(f"unknown payload index kind {kind!r}; choose one of {sorted(_INDEX_KINDS)}")
        self._require_room(256 * self.count(), f"indexing payload key {field!r}")
        shard.update(qe.UpdateOperation.create_field_index(field, _INDEX_KINDS[kind]))
        shard.flush()
        self._indexes = None

    def payload_indexes(self) -> dict[str, str]:
        if self._indexes is None:
            schema = self._shard_or_raise().info().payload_schema
            self._indexes = {k: str(v.data_type).rsplit(".", 1)[-1].lower() for k, v in schema.items()}
        return self._indexes

    def optimize(self) -> None:
        """Build HNSW and quantized storage for everything written so far (blocks); raises
        :class:`StoreFullError` when the disk has no room for the segments it rebuilds."""
        shard = self._shard_or_raise()
        segments = usage(self._cdir() / SHARD_DIR / "segments")[0]
        self._require_room(min(segments, 2 * SEGMENT_KB * 1024), "rebuilding the indexes")
        shard.optimize()
        shard.flush()
        self._pending = 0

    @contextmanager
    def _counted(self, added: int = 0, removed: int = 0) -> Iterator[None]:
        """Record in the sidecar the point counts a write may leave (a crash leaves one of them),
        then the count it left: an open that finds another count finds a damaged store."""
        meta = self._cdir() / META_FILE
        before = self.count()
        _record_points(meta, before - removed, before + added)
        yield
        after = self.count()
        _record_points(meta, after, after)

    def _require_room(self, needed: int, what: str) -> None:
        """:func:`~.disk.require_free` for ``needed`` bytes and the :func:`~.disk.headroom` of a
        write: whatever the write does, the store can be opened again."""
        cdir = self._cdir()
        require_free(cdir, needed + headroom(cdir, write=True), f"{what} in collection {cdir.name!r}")

    def _cdir(self) -> Path:
        return self.path / self._require_spec().name

    def close(self) -> None:
        shard, self._shard = self._shard, None
        try:
            if shard is not None:
                shard.flush()
                shard.close()
        finally:
            if self._lock is not None:
                self._lock.release()
                self._lock = None
            self.spec = None

    def _shard_or_raise(self) -> GuardedShard:
        self._require_spec()
        assert self._shard is not None  # set together with spec
        return self._shard


def _edge_config(spec: CollectionSpec, threads: int | None, wal: bool) -> qe.EdgeConfig:
    quant = qe.ScalarQuantizationConfig(qe.ScalarType.Int8, quantile=0.99, always_ram=True) \
        if spec.quantize_regions else None
    dtype = {"float16": qe.VectorStorageDatatype.Float16,
             "turbo8": qe.VectorStorageDatatype.Turbo8}.get(spec.regions_datatype)
    def dense(size: int) -> qe.EdgeVectorParams:
        return qe.EdgeVectorParams(size=size, distance=qe.Distance.Cosine, hnsw_config=qe.HnswIndexConfig(
            m=spec.hnsw_m, ef_construct=spec.hnsw_ef_construct, full_scan_threshold=10_000))

    vectors = {
        GLOBAL: dense(spec.global_dim),
        REGIONS: qe.EdgeVectorParams(
            size=spec.region_dim, distance=qe.Distance.Cosine, datatype=dtype, quantization_config=quant,
            multivector_config=qe.MultiVectorConfig(qe.MultiVectorComparator.MaxSim),
            hnsw_config=qe.HnswIndexConfig(m=0, ef_construct=spec.hnsw_ef_construct, full_scan_threshold=10_000)),
    }
    if spec.first_dim is not None:
        vectors[FIRST] = dense(spec.first_dim)
    # payload in RAM: a search reads its candidates' payloads (the regions copy stage 3 reranks
    # with) at random; on disk each is a page fault (at 100k images 45 ms a search against 27 ms)
    return qe.EdgeConfig(vectors=vectors, max_search_threads=threads, wal_enabled=wal, payload_memory=qe.Memory.Cached,
                         optimizers=qe.EdgeOptimizersConfig(max_segment_size=SEGMENT_KB))


def _remove_optimize_leftovers(sdir: Path) -> None:
    """Remove the segments a killed optimize was building (``temp_segments``; the engine leaves
    them, as large as the segments they rebuild): under the lock nothing can be using them."""
    temp = sdir / TEMP_SEGMENTS
    if not temp.is_dir():
        return
    for leftover in temp.iterdir():
        logger.warning("removing %s, left by an optimize that did not finish", leftover)
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)


def _record_points(meta: Path, low: int, high: int) -> None:
    data = json.loads(meta.read_text())
    data[POINTS_KEY] = {"min": max(0, low), "max": high}
    _write_json(meta, data)


def _check_points(name: str, cdir: Path, shard: Any, recorded: Any) -> None:
    """Raise :class:`StoreCorruptError` when the shard holds another number of points than the
    sidecar records (lost segments; a store written before counts were recorded is not checked)."""
    if not isinstance(recorded, dict) or not {"min", "max"} <= set(recorded):
        return
    found = guarded(shard.count, name, cdir, True, qe.CountRequest(exact=True))
    if recorded["min"] <= found <= recorded["max"]:
        return
    shard.close()
    expected = recorded["min"] if recorded["min"] == recorded["max"] else f"{recorded['min']}-{recorded['max']}"
    raise StoreCorruptError(
        f"collection {name!r} at {cdir} holds {found} points, but {expected} were stored: files of the store were "
        f"lost or damaged. Restore {cdir} from a backup, or move it away and rebuild the collection with `vitr "
        f"index`; to keep the {found} points left, delete the {POINTS_KEY!r} entry of {cdir / META_FILE}.")


def _check_vectors(name: str, cdir: Path, shard: Any, sample: int = 8) -> None:
    """Raise :class:`StoreCorruptError` when the first stored points' vectors are missing or are
    not unit vectors (the engine normalises cosine vectors): zeroed or overwritten vector files."""
    req = qe.ScrollRequest(limit=sample, with_payload=False, with_vector=[GLOBAL, REGIONS])
    records, _ = guarded(shard.scroll, name, cdir, True, req)
    for record in records:
        point = stored_point_from(record)
        vec = None if point.global_vector is None else np.asarray(point.global_vector, dtype=np.float64)
        if vec is None or point.regions is None or not np.isfinite(vec).all() or \
                abs(float(np.linalg.norm(vec)) - 1.0) > 1e-2:
            shard.close()
            raise StoreCorruptError(
                f"collection {name!r} at {cdir}: the vectors of point {point.id} are missing or damaged, so the "
                f"vector files of the store are. Restore {cdir} from a backup, or move it away and rebuild the "
                f"collection with `vitr index`.")


def _keep_if_reopenable(cdir: Path, shard: Any) -> None:
    """A new store is kept only where it can be opened again (on a memory file system opening
    fills its holes); else it is removed and :class:`StoreFullError` says why."""
    try:
        require_free(cdir, headroom(cdir, write=False), f"collection {cdir.name!r} (to be opened again)")
    except StoreFullError:
        shard.close()
        shutil.rmtree(cdir / SHARD_DIR, ignore_errors=True)
        (cdir / META_FILE).unlink(missing_ok=True)
        raise


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Write atomically: a crash leaves the old file or the new one, never half of one."""
    tmp = path.with_suffix(".tmp")
    try:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno == errno.ENOSPC:
            raise StoreFullError(f"no room on the disk to write {path}: nothing was created") from exc
        raise
