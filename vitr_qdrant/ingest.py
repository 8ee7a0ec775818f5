"""The ingest pipeline: images (or texts) into a collection, in batches, stages overlapped.

One batch loop serves both: a reader thread loads batch k+1 (with one of the two decode
strategies of :mod:`vitr_qdrant.decoders`), the caller's thread skips what is stored already and
encodes batch k, and a writer thread upserts batch k-1. Bad items are reported, never raised;
every batch handed to the writer is durable (or its error raised) when :func:`add_images` returns.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import queue
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence, TypeVar

from tqdm.auto import tqdm

from .connectors import PointId, StoreBackend, StoredPoint, make_payload, point_id
from .decoders import Encoded, choose_decoder
from .encoders import VitrModel
from .errors import InputError
from .inputs import LoadedItem, as_inputs, iter_sources
from .results import AddReport, ItemId
from .settings import Settings

logger = logging.getLogger(__name__)
T = TypeVar("T")
EncodeFn = Callable[[VitrModel, list["Row"]], list[Encoded]]


@dataclass
class Row:
    """One item to write: its report key, point id, id shown to the user, payload and content."""

    key: str
    pid: PointId
    shown: ItemId
    payload: dict[str, Any]
    item: LoadedItem | None = None  # an image, decoded or not yet (see vitr_qdrant.decoders)
    text: str | None = None
    keep_stored: bool = False  # no metadata given: an already stored point stays as it is


def aligned(values: Any, n: int, what: str) -> list[Any] | None:
    """``values`` as a list of ``n`` (None stays None; a mapping is one value for every item)."""
    if values is None:
        return None
    if what == "metadata" and isinstance(values, Mapping):
        return [values] * n
    values = list(values)
    if len(values) != n:
        raise InputError(f"{what} has {len(values)} entries for {n} items; give one per item")
    return values


# --- images and texts ---------------------------------------------------------------------
def add_images(store: StoreBackend, model: VitrModel, items: Any, ids: Sequence[Any] | None,
               metadata: Any, settings: Settings, batch_size: int | None = None,
               progress: bool = True) -> AddReport:
    """See :meth:`VitrCollection.add_images`."""
    inputs = as_inputs(items)
    ids_l, meta_l = aligned(ids, len(inputs), "ids"), aligned(metadata, len(inputs), "metadata")
    sources = list(iter_sources(inputs))
    if ids_l is not None and [s.index for s in sources] != list(range(len(inputs))):
        raise InputError("ids= needs one image per input; a directory expands to many (or none): "
                         "pass its files instead")
    decoder, cfg, size = choose_decoder(model, settings, sources), settings.fetch_cfg(), batch_size or settings.batch_size
    report = AddReport()
    loads = (decoder.read(sources[i:i + size], cfg, settings.workers) for i in range(0, len(sources), size))

    def batches(bar: tqdm) -> Iterator[list[Row]]:
        with contextlib.closing(prefetch(loads)) as loaded_batches:
            for loaded in loaded_batches:
                yield [r for r in (image_row(it, ids_l, meta_l, report) for it in loaded) if r is not None]
                bar.update(len(loaded))

    def encode(m: VitrModel, rows: list[Row]) -> list[Encoded]:
        return decoder.encode(m, [r.item for r in rows])

    with tqdm(total=len(sources), unit="img", desc="indexing", disable=not progress) as bar, \
            contextlib.closing(batches(bar)) as rows:   # closing stops the reader thread, even on an error
        write_batches(store, model, rows, encode, report)
    logger.info("add_images (%s decoder): %s", decoder.name, str(report).splitlines()[0])
    return report


def image_row(it: LoadedItem, ids: list[Any] | None, metas: list[Any] | None, report: AddReport) -> Row | None:
    """The row to write for a loaded item, or None (the failure is reported)."""
    if not it.ok:
        report.failed.append((it.source.key, it.error or "unknown error"))
        return None
    ext = ids[it.source.index] if ids is not None else None
    meta = metas[it.source.index] if metas is not None else None
    try:
        pid = point_id(ext, it.sha256)
        width, height = it.size
        payload = make_payload(uri=it.uri, sha256=it.sha256, width=width, height=height,
                               metadata=meta, external_id=ext)
    except InputError as exc:
        report.failed.append((it.source.key, str(exc)))
        return None
    return Row(it.source.key, pid, pid if ext is None else ext, payload, item=it, keep_stored=meta is None)


def add_texts(store: StoreBackend, model: VitrModel, texts: Any, ids: Sequence[Any] | None,
              metadata: Any, batch_size: int = 256) -> AddReport:
    """See :meth:`VitrCollection.add_texts`."""
    texts = [texts] if isinstance(texts, str) else list(texts)
    ids_l, meta_l = aligned(ids, len(texts), "ids"), aligned(metadata, len(texts), "metadata")
    report, rows = AddReport(), []
    for i, text in enumerate(texts):
        key = repr(text[:80]) if isinstance(text, str) else f"<{type(text).__name__}>"
        try:
            if not isinstance(text, str) or not text.strip():
                raise InputError("a text must be a non-empty string")
            meta = dict(meta_l[i] or {}) if meta_l is not None else {}
            if "text" in meta:
                raise InputError("metadata key 'text' is reserved for the text itself")
            ext = ids_l[i] if ids_l is not None else None
            sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
            pid = point_id(ext, sha)
            payload = make_payload(sha256=sha, metadata={"text": text, **meta}, external_id=ext)
        except InputError as exc:
            report.failed.append((key, str(exc)))
            continue
        rows.append(Row(key, pid, pid if ext is None else ext, payload, text=text))
    write_batches(store, model, (rows[i:i + batch_size] for i in range(0, len(rows), batch_size)),
                  _encode_texts, report)
    return report


def _encode_texts(model: VitrModel, rows: list[Row]) -> list[Encoded]:
    emb = model.encode_texts([r.text for r in rows])
    return list(zip(emb.global_vectors, emb.token_vectors))


# --- the batch loop -----------------------------------------------------------------------
def write_batches(store: StoreBackend, model: VitrModel, batches: Iterable[list[Row]], encode: EncodeFn,
                  report: AddReport) -> None:
    """For each batch: skip rows stored unchanged (or repeated in this call), encode the rest and
    hand them to the writer thread; return when every batch is written (durable)."""
    seen: dict[PointId, Row] = {}
    lock = threading.Lock()  # one store call at a time
    writer = _Writer(store, lock)
    try:
        for rows in batches:
            with lock:
                todo = select_new(store, rows, seen)
            points, bad = to_points(todo, encode_rows(model, todo, encode), report)
            writer.put(points)
            account(report, rows, todo, len(points), bad, seen)
    finally:
        writer.close()


def account(report: AddReport, rows: list[Row], todo: list[Row], added: int, bad: set[int],
            seen: dict[PointId, Row]) -> None:
    """Count a written batch: added, skipped (each with its reason), the ids of the usable rows."""
    report.added += added
    written = {id(r) for r in todo}
    for row in rows:
        if id(row) not in written:
            first = seen[row.pid]
            reason = "already stored" if first is row else f"duplicate of {first.key} in this call"
            report.skipped_items.append((row.key, reason))
    report.ids.extend(r.shown for r in rows if id(r) not in bad)


def select_new(store: StoreBackend, rows: list[Row], seen: dict[PointId, Row]) -> list[Row]:
    """The rows to encode: not seen earlier in this call (``seen`` maps each point id to its
    first row), and not stored already with the same payload (or stored at all, for rows that
    bring no metadata: re-adding keeps what was set)."""
    fresh = []
    for row in rows:
        if row.pid not in seen:
            seen[row.pid] = row
            fresh.append(row)
    stored = {p.id: p.payload for p in store.retrieve([r.pid for r in fresh])} if fresh else {}
    return [r for r in fresh if r.pid not in stored
            or (not r.keep_stored and stored[r.pid] != r.payload)]


def to_points(rows: list[Row], vectors: list[Encoded], report: AddReport) -> tuple[list[StoredPoint], set[int]]:
    """Points for the encoded rows; rows whose encoding failed are reported (their ``id()`` returned)."""
    points, bad = [], set()
    for row, vec in zip(rows, vectors):
        if isinstance(vec, str):
            report.failed.append((row.key, vec))
            bad.add(id(row))
        else:
            points.append(StoredPoint(row.pid, vec[0], vec[1], row.payload))
    return points, bad


def encode_rows(model: VitrModel, rows: list[Row], encode: EncodeFn) -> list[Encoded]:
    """(global, regions) per row, or the reason it failed: one ``encode`` call, or if that
    fails, one call per row, so a bad item only fails itself."""
    if not rows:
        return []
    try:
        return encode(model, rows)
    except Exception:
        logger.warning("batch encoding failed; retrying item by item", exc_info=True)
    out: list[Encoded] = []
    for row in rows:
        try:
            out.extend(encode(model, [row]))
        except Exception as exc:
            out.append(f"cannot encode: {type(exc).__name__}: {exc}")
    return out


# --- the reader and writer threads --------------------------------------------------------
def prefetch(batches: Iterator[T], depth: int = 2) -> Iterator[T]:
    """Yield from ``batches`` while a thread produces up to ``depth`` items ahead."""
    q: queue.Queue = queue.Queue(depth)
    stop, end = threading.Event(), object()

    def produce() -> None:
        try:
            for item in batches:
                if not _put(q, (item, None), stop):
                    return
            _put(q, (end, None), stop)
        except BaseException as exc:  # handed to the consumer, raised there
            _put(q, (end, exc), stop)

    thread = threading.Thread(target=produce, name="vitr-reader", daemon=True)
    thread.start()
    try:
        while True:
            item, exc = q.get()
            if exc is not None:
                raise exc
            if item is end:
                return
            yield item
    finally:
        stop.set()
        thread.join()


def _put(q: queue.Queue, item: Any, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            pass
    return False


class _Writer:
    """Upserts batches on its own thread, so encoding does not wait for the store."""

    def __init__(self, store: StoreBackend, lock: threading.Lock, depth: int = 2):
        self._store, self._lock = store, lock
        self._q: queue.Queue = queue.Queue(depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="vitr-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (points := self._q.get()) is not None:
            if self._error is None:
                try:
                    with self._lock:
                        self._store.upsert(points)
                except BaseException as exc:  # raised in the caller's thread
                    self._error = exc

    def put(self, points: list[StoredPoint]) -> None:
        self._raise()
        if points:
            self._q.put(points)

    def close(self) -> None:
        """Wait until every batch handed over is written; raise the first write error."""
        self._q.put(None)
        self._thread.join()
        self._raise()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error
