"""Writing to a collection: load, dedupe, encode and upsert images or texts in batches."""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from .connectors import PointId, StoreBackend, StoredPoint, make_payload, point_id
from .encoders import VitrModel
from .errors import InputError
from .ingest import LoadedItem, Source, as_inputs, iter_sources, load_sources, looks_like_jpeg
from .results import AddReport, ItemId
from .settings import Settings

logger = logging.getLogger(__name__)


@dataclass
class Row:
    """One item to write: its report key, point id, id shown to the user, payload and content."""

    key: str
    pid: PointId
    shown: ItemId
    payload: dict[str, Any]
    image: Image.Image | None = None
    text: str | None = None
    jpeg: bytearray | None = None  # undecoded JPEG for the batched device path
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


def add_images(backend: StoreBackend, model: VitrModel, items: Any, ids: Sequence[Any] | None,
               metadata: Any, settings: Settings, batch_size: int | None = None,
               progress: bool = True) -> AddReport:
    """See :meth:`VitrCollection.add_images`."""
    inputs = as_inputs(items)
    ids_l, meta_l = aligned(ids, len(inputs), "ids"), aligned(metadata, len(inputs), "metadata")
    sources = list(iter_sources(inputs))
    if ids_l is not None and [s.index for s in sources] != list(range(len(inputs))):
        raise InputError("ids= needs one image per input; a directory expands to many (or none): "
                         "pass its files instead")
    report, seen = AddReport(), set()
    size = batch_size or settings.batch_size
    with tqdm(total=len(sources), unit="img", desc="indexing", disable=not progress) as bar:
        if device_decode(model, settings, sources):
            from .device_ingest import add_sources

            add_sources(backend, model, sources, ids_l, meta_l, settings, size, bar, report, seen)
        else:
            for start in range(0, len(sources), size):
                loaded = load_sources(sources[start:start + size], settings.fetch_cfg(), settings.workers)
                rows = [r for r in (image_row(it, ids_l, meta_l, report) for it in loaded) if r is not None]
                _write(backend, model, rows, report, seen)
                bar.update(len(loaded))
    logger.info("add_images: %s", str(report).splitlines()[0])
    return report


def device_decode(model: VitrModel, settings: Settings, sources: Sequence[Source]) -> bool:
    """Whether to take the batched device path (see :mod:`vitr_qdrant.device_ingest`)."""
    if settings.jpeg_decoder != "auto":
        return settings.jpeg_decoder == "torchvision"
    return model.device.type == "cuda" and any(looks_like_jpeg(s.item) for s in sources)


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
    return Row(it.source.key, pid, pid if ext is None else ext, payload, image=it.image,
               jpeg=it.jpeg, keep_stored=meta is None)


def add_texts(backend: StoreBackend, model: VitrModel, texts: Any, ids: Sequence[Any] | None,
              metadata: Any, batch_size: int = 256) -> AddReport:
    """See :meth:`VitrCollection.add_texts`."""
    texts = [texts] if isinstance(texts, str) else list(texts)
    ids_l, meta_l = aligned(ids, len(texts), "ids"), aligned(metadata, len(texts), "metadata")
    report, seen, rows = AddReport(), set(), []
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
    for start in range(0, len(rows), batch_size):
        _write(backend, model, rows[start:start + batch_size], report, seen)
    return report


def _write(backend: StoreBackend, model: VitrModel, rows: list[Row], report: AddReport, seen: set) -> None:
    """Skip rows stored unchanged (or repeated in this call), encode the rest, upsert (durable)."""
    todo = select_new(backend, rows, seen)
    points, bad = to_points(todo, encode_rows(model, todo), report)
    if points:
        backend.upsert(points)
    account(report, rows, todo, len(points), bad)


def select_new(backend: StoreBackend, rows: list[Row], seen: set) -> list[Row]:
    """The rows to encode: not seen earlier in this call, and not stored already with the same
    payload (or stored at all, for rows that bring no metadata: re-adding keeps what was set)."""
    fresh = []
    for row in rows:
        if row.pid not in seen:
            seen.add(row.pid)
            fresh.append(row)
    stored = {p.id: p.payload for p in backend.retrieve([r.pid for r in fresh])} if fresh else {}
    return [r for r in fresh if r.pid not in stored
            or (not r.keep_stored and stored[r.pid] != r.payload)]


def to_points(rows: list[Row], vectors: list[tuple[np.ndarray, np.ndarray] | str],
              report: AddReport) -> tuple[list[StoredPoint], set[int]]:
    """Points for the encoded rows; rows whose encoding failed are reported (their ``id()`` returned)."""
    points, bad = [], set()
    for row, vec in zip(rows, vectors):
        if isinstance(vec, str):
            report.failed.append((row.key, vec))
            bad.add(id(row))
        else:
            points.append(StoredPoint(row.pid, vec[0], vec[1], row.payload))
    return points, bad


def account(report: AddReport, rows: list[Row], todo: list[Row], added: int, bad: set[int]) -> None:
    """Count a written batch: added, skipped (stored unchanged), and the ids of the usable rows."""
    report.added += added
    report.skipped += len(rows) - len(todo)
    report.ids.extend(r.shown for r in rows if id(r) not in bad)


def encode_rows(model: VitrModel, rows: list[Row],
                encode_batch: Callable[[VitrModel, list[Row]], list[Any]] | None = None) -> list[Any]:
    """(global, regions) per row, or the reason it failed: one ``encode_batch`` call, or if that
    fails, one call per row, so a bad item only fails itself."""
    encode_batch = encode_batch or _encode_batch
    if not rows:
        return []
    try:
        return encode_batch(model, rows)
    except Exception:
        logger.warning("batch encoding failed; retrying item by item", exc_info=True)
    out: list[tuple[np.ndarray, np.ndarray] | str] = []
    for row in rows:
        try:
            out.extend(encode_batch(model, [row]))
        except Exception as exc:
            out.append(f"cannot encode: {type(exc).__name__}: {exc}")
    return out


def _encode_batch(model: VitrModel, rows: list[Row]) -> list[tuple[np.ndarray, np.ndarray]]:
    if rows[0].text is not None:
        emb = model.encode_texts([r.text for r in rows])
        return list(zip(emb.global_vectors, emb.token_vectors))
    emb = model.encode_images([r.image for r in rows], batch_size=max(1, len(rows)))
    return list(zip(emb.global_vectors, emb.region_vectors))
