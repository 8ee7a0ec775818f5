"""The ingest pipeline: images (or texts) into a collection, in batches, stages overlapped.

One batch loop serves both: a reader thread loads batch k+1 (with one of the two decode
strategies of :mod:`vitr_qdrant.ingest.decoders`; its worker threads decode, reduce and normalise, so
each image arrives as the model's input), the caller's thread skips what is stored already,
only encodes batch k and checks each vector (once: the store takes the checked points as they
are), and a writer thread upserts batch k-1. Bad items are reported, never raised; every batch
handed to the writer is durable (or its error raised) when :func:`add_images` returns.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import queue
import threading
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence, TypeVar

from tqdm.auto import tqdm

from ..connectors import CollectionSpec, PointId, StoreBackend, StoredPoint, make_payload, point_id
from ..connectors.base import CheckedPoint, check_point
from ..connectors.ids import user_key
from .decoders import Encoded, choose_decoder, embedding_rows, model_input
from ..encoders import VitrModel
from ..errors import InputError
from ..sources.inputs import LoadedItem, as_inputs, iter_sources
from ..results import AddReport, ItemId
from ..settings import Settings

logger = logging.getLogger(__name__)
T = TypeVar("T")
EncodeFn = Callable[[VitrModel, list["Row"]], list[Encoded]]


@dataclass
class Row:
    """One item to write: its report key, input position, point id, the caller's id (if given),
    payload and content."""

    key: str
    index: int
    pid: PointId
    ext: ItemId | None
    payload: dict[str, Any]
    item: LoadedItem | None = None  # an image: its model input, or JPEG bytes (see vitr_qdrant.ingest.decoders)
    text: str | None = None
    keep_stored: bool = False  # no metadata given: the same item stored already stays as it is

    @property
    def shown(self) -> ItemId:
        """The id the caller sees: theirs, else the point id."""
        return self.pid if self.ext is None else self.ext


def aligned(values: Any, n: int, what: str) -> list[Any] | None:
    """``values`` as a list of ``n`` (None stays None). One id (int, str, UUID) is a list of
    one; one metadata mapping is the metadata of every item.

    Raises:
        InputError: not one value per item.
    """
    if values is None:
        return None
    if what == "metadata" and isinstance(values, Mapping):
        return [values] * n
    if what == "ids" and isinstance(values, (int, str, uuid.UUID)):
        values = [values]
    if isinstance(values, (str, bytes, Mapping)):
        raise InputError(f"{what} must be one per item (a list), or one dict for every item; "
                         f"got a {type(values).__name__}")
    try:
        values = list(values)
    except TypeError:
        raise InputError(f"{what} must be one per item (a list), got a {type(values).__name__}") from None
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
    decoder, size = choose_decoder(model, settings, sources), batch_size or settings.batch_size
    cfg = dataclasses.replace(settings.load_cfg(model.backbone.image_size), model_input=model_input(model))
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
    logger.info("add_images (%s decoder): %s", decoder.name, report.summary)
    return report


def image_row(it: LoadedItem, ids: list[Any] | None, metas: list[Any] | None, report: AddReport) -> Row | None:
    """The row to write for a loaded item, or None (the failure is reported)."""
    index = it.source.index
    if not it.ok:
        report.fail(it.source.key, it.error or "unknown error", index)
        return None
    meta = metas[index] if metas is not None else None
    try:
        ext = user_key(ids[index]) if ids is not None and ids[index] is not None else None
        pid = point_id(ext, it.sha256)
        width, height = it.size
        payload = make_payload(uri=it.uri, sha256=it.sha256, width=width, height=height,
                               metadata=meta, external_id=ext)
    except InputError as exc:
        report.fail(it.source.key, str(exc), index)
        return None
    return Row(it.source.key, index, pid, ext, payload, item=it, keep_stored=meta is None)


def add_texts(store: StoreBackend, model: VitrModel, texts: Any, ids: Sequence[Any] | None,
              metadata: Any, batch_size: int = 256) -> AddReport:
    """See :meth:`VitrCollection.add_texts`."""
    if not isinstance(texts, (str, Iterable)) or isinstance(texts, (bytes, Mapping)):
        raise InputError(f"texts must be a string or a list of strings, got {type(texts).__name__}")
    texts = [texts] if isinstance(texts, str) else list(texts)
    ids_l, meta_l = aligned(ids, len(texts), "ids"), aligned(metadata, len(texts), "metadata")
    report, rows = AddReport(), []
    for i, text in enumerate(texts):
        key = repr(text[:80]) if isinstance(text, str) else f"<{type(text).__name__}>"
        try:
            if not isinstance(text, str) or not text.strip():
                raise InputError("a text must be a non-empty string")
            meta = meta_l[i] if meta_l is not None else None
            if meta is not None and not isinstance(meta, Mapping):
                raise InputError(f"metadata must be a dict (or None), got {type(meta).__name__}")
            if "text" in (meta or {}):
                raise InputError("metadata key 'text' is reserved for the text itself")
            ext = user_key(ids_l[i]) if ids_l is not None and ids_l[i] is not None else None
            sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
            payload = make_payload(sha256=sha, metadata={"text": text, **(meta or {})}, external_id=ext)
        except InputError as exc:
            report.fail(key, str(exc), i)
            continue
        rows.append(Row(key, i, point_id(ext, sha), ext, payload, text=text))
    write_batches(store, model, (rows[i:i + batch_size] for i in range(0, len(rows), batch_size)),
                  _encode_texts, report)
    return report


def _encode_texts(model: VitrModel, rows: list[Row]) -> list[Encoded]:
    return embedding_rows(model.encode_texts([r.text for r in rows]))


# --- the batch loop -----------------------------------------------------------------------
def write_batches(store: StoreBackend, model: VitrModel, batches: Iterable[list[Row]], encode: EncodeFn,
                  report: AddReport) -> None:
    """For each batch: sort out what is stored unchanged or repeated in this call, encode the
    rest and hand it to the writer thread; return when every batch is written (durable)."""
    seen: dict[PointId, Row] = {}
    lock = threading.Lock()  # one store call at a time
    writer = _Writer(store, lock)
    try:
        for rows in batches:
            with lock:
                plan, dropped = plan_batch(store, rows, seen, report)
            todo = [row for row, _ in plan]
            points, bad = to_points(store.spec, todo, encode_rows(model, todo, encode), report)
            writer.put(points)
            for row, outcome in plan:
                if id(row) in bad:
                    continue
                if outcome == REPLACED:
                    report.replaced_items.append((row.key, f"replaced what was stored under id {row.ext!r}"))
                else:
                    report.added += 1
            report.ids.extend(r.shown for r in rows if id(r) not in bad | dropped)
    finally:
        writer.close()


ADDED, REPLACED = "added", "replaced"


def plan_batch(store: StoreBackend, rows: list[Row], seen: dict[PointId, Row],
               report: AddReport) -> tuple[list[tuple[Row, str]], set[int]]:
    """The rows to encode, each with its outcome (:data:`ADDED` or :data:`REPLACED`), and the
    ``id()`` of the rows that failed. ``seen`` maps each point id of this call to its first row.

    * An id given again in the same call fails; the same image again without an id is skipped.
    * Stored already with another image (or text): replaced.
    * Stored already with the same one: skipped when the row brings no metadata (re-adding keeps
      what was set) or the same payload, else rewritten (counted as added).
    """
    fresh, dropped = [], set()
    for row in rows:
        first = seen.setdefault(row.pid, row)
        if first is row:
            fresh.append(row)
        elif row.ext is not None:
            report.fail(row.key, f"id {row.ext!r} was given to an earlier item of this call ({first.key}); "
                        f"an id names one item", row.index)
            dropped.add(id(row))
        else:
            report.skipped_items.append((row.key, f"duplicate of {first.key} in this call"))
    stored = {p.id: p.payload for p in store.retrieve([r.pid for r in fresh])} if fresh else {}
    plan = []
    for row in fresh:
        old = stored.get(row.pid)
        if old is None:
            plan.append((row, ADDED))
        elif old.get("sha256") != row.payload.get("sha256"):
            plan.append((row, REPLACED))
        elif row.keep_stored or old == row.payload:
            report.skipped_items.append((row.key, "already stored"))
        else:
            plan.append((row, ADDED))
    return plan, dropped


def to_points(spec: CollectionSpec, rows: list[Row], vectors: list[Encoded],
              report: AddReport) -> tuple[list[CheckedPoint], set[int]]:
    """Points for the encoded rows, checked (the store takes them without checking them again);
    rows whose encoding failed, or gave vectors the store would refuse, are reported (their
    ``id()`` returned), so a bad item fails alone."""
    points, bad = [], set()
    for row, vec in zip(rows, vectors):
        reason = vec if isinstance(vec, str) else None
        if reason is None:
            g, regions, first = vec
            try:
                point = check_point(StoredPoint(row.pid, g, regions, row.payload, first if spec.first_dim else None),
                                    spec)
            except InputError as exc:
                reason = f"the model gave vectors the store refuses: {exc}"
        if reason is None:
            points.append(point)
        else:
            report.fail(row.key, reason, row.index)
            bad.add(id(row))
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

    def put(self, points: list[CheckedPoint]) -> None:
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
