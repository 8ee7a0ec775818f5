"""Batched ingest on the model's device: JPEGs decoded there (nvJPEG on CUDA), stages overlapped.

Chosen by ``Settings.jpeg_decoder`` (see :func:`vitr_qdrant.indexing.device_decode`). Three
stages run at once: a reader thread (with a pool of ``settings.workers``) reads and hashes batch
k+1, the caller's thread decodes, resizes and encodes batch k on the device, and a writer thread
upserts batch k-1. Plain JPEGs (a ``.jpg``/``.jpeg`` file or JPEG bytes: RGB or grey, no EXIF
rotation, an end marker) are decoded on the device; everything else (other formats,
URLs, PIL images, arrays, CMYK or EXIF-rotated JPEGs, truncated files) is read and decoded with
PIL as on the CPU path, and a JPEG the device decoder refuses gets a second chance with PIL, so
failures are reported with the CPU path's reasons. Ids and payloads are the CPU path's, so
either path skips what the other stored.
"""
from __future__ import annotations

import hashlib
import io
import logging
import queue
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator, Sequence, TypeVar

import torch
from PIL import Image

from .connectors import StoredPoint, StoreBackend
from .encoders import VitrModel
from .encoders.images import MAX_PIXELS, load_image, preprocess, preprocess_tensors
from .errors import ImageLoadError
from .fetch import FetchCfg
from .indexing import Row, account, encode_rows, image_row, select_new, to_points
from .ingest import JPEG_MAGIC, LoadedItem, Source, load_sources, looks_like_jpeg
from .results import AddReport
from .settings import Settings

logger = logging.getLogger(__name__)
T = TypeVar("T")
_EXIF_ORIENTATION = 0x0112


def add_sources(backend: StoreBackend, model: VitrModel, sources: Sequence[Source], ids: list[Any] | None,
                metas: list[Any] | None, settings: Settings, size: int, bar: Any, report: AddReport,
                seen: set) -> None:
    """Load, encode and write ``sources`` in batches of ``size``; see the module docstring."""
    cfg, lock = settings.fetch_cfg(), threading.Lock()  # the lock: one store call at a time
    with ThreadPoolExecutor(max_workers=settings.workers) as pool:
        batches = (read_batch(sources[i:i + size], cfg, pool, settings.workers)
                   for i in range(0, len(sources), size))
        reader, writer = prefetch(batches, depth=2), _Writer(backend, lock)
        try:
            for loaded in reader:
                rows = [r for r in (image_row(it, ids, metas, report) for it in loaded) if r is not None]
                with lock:
                    todo = select_new(backend, rows, seen)
                points, bad = to_points(todo, encode_rows(model, todo, encode_batch), report)
                writer.put(points)
                account(report, rows, todo, len(points), bad)
                bar.update(len(loaded))
        finally:
            reader.close()
            writer.close()  # everything handed over is durable (or its error raised) on return


# --- reading ------------------------------------------------------------------------------
def read_batch(batch: Sequence[Source], cfg: FetchCfg, pool: ThreadPoolExecutor, workers: int) -> list[LoadedItem]:
    """Plain JPEGs read and hashed (left undecoded); the other sources loaded as on the CPU path."""
    probed = list(pool.map(lambda s: probe_jpeg(s, cfg), batch))
    rest = iter(load_sources([s for s, p in zip(batch, probed) if p is None], cfg, workers))
    return [p if p is not None else next(rest) for p in probed]


def probe_jpeg(src: Source, cfg: FetchCfg) -> LoadedItem | None:
    """A :class:`LoadedItem` holding a plain JPEG's bytes, or None for the CPU path (never raises)."""
    item = src.item
    if not looks_like_jpeg(item):
        return None
    try:
        if isinstance(item, (bytes, bytearray)):
            data, uri = bytearray(item), None
        else:
            path = Path(item).expanduser()
            if not path.is_file() or path.stat().st_size > cfg.max_bytes:
                return None
            data, uri = _read(path), str(path.resolve())
    except OSError:
        return None
    size = plain_jpeg_size(data)
    if size is None or len(data) > cfg.max_bytes:
        return None
    return LoadedItem(src, uri=uri, sha256=hashlib.sha256(data).hexdigest(), jpeg=data, jpeg_size=size)


def _read(path: Path) -> bytearray:
    with open(path, "rb") as f:
        data = bytearray(f.read())  # writable: torch.frombuffer takes it without a copy or a warning
    return data


def plain_jpeg_size(data: bytearray) -> tuple[int, int] | None:
    """(width, height) of a JPEG the device may decode as is, else None (PIL decides)."""
    if bytes(data[:3]) != JPEG_MAGIC or not bytes(data[-32:]).rstrip(b"\x00\r\n ").endswith(b"\xff\xd9"):
        return None  # no end marker: truncated, and PIL reports that
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.format != "JPEG" or im.mode not in ("RGB", "L") or im.width * im.height > MAX_PIXELS:
                return None
            if im.getexif().get(_EXIF_ORIENTATION, 1) != 1:
                return None  # EXIF rotation: applied by the PIL path only
            return im.size
    except Exception:  # anything odd: the CPU path decodes it and reports why not
        return None


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


# --- encoding -----------------------------------------------------------------------------
def encode_batch(model: VitrModel, rows: list[Row]) -> list[Any]:
    """(global, regions) per row, or the reason no decoder could read it."""
    pixels, errors = model_inputs(model, rows)
    if pixels is None:
        return [errors[i] for i in range(len(rows))]
    emb = model.encode_pixels(pixels)
    vectors = iter(zip(emb.global_vectors, emb.region_vectors))
    return [errors[i] if i in errors else next(vectors) for i in range(len(rows))]


def model_inputs(model: VitrModel, rows: list[Row]) -> tuple[torch.Tensor | None, dict[int, str]]:
    """Model inputs (n_ok, 3, S, S) on the device for ``rows`` in order, and the reason for each
    row (by position) that no decoder could read."""
    bb, dev = model.backbone, model.device
    at = [i for i, r in enumerate(rows) if r.jpeg is not None and r.image is None]
    frames = dict(zip(at, decode_jpegs([rows[i].jpeg for i in at], dev)))
    errors: dict[int, str] = {}
    for i, frame in list(frames.items()):
        if frame is None:  # refused by the device decoder: PIL has the last word
            del frames[i]
            try:
                rows[i].image = load_image(bytes(rows[i].jpeg))
            except ImageLoadError as exc:
                errors[i] = str(exc)
    parts: dict[int, torch.Tensor] = {}
    if frames:
        done = preprocess_tensors(list(frames.values()), bb.image_size, bb.image_mean, bb.image_std)
        parts.update(zip(frames, done))
    for i, row in enumerate(rows):
        if i not in frames and i not in errors:
            parts[i] = preprocess(row.image, bb.image_size, bb.image_mean, bb.image_std).to(dev)
    if not parts:
        return None, errors
    return torch.stack([parts[i] for i in sorted(parts)]), errors


def decode_jpegs(data: list[bytearray], device: torch.device) -> list[torch.Tensor | None]:
    """uint8 RGB CHW tensors on ``device`` (None where the decoder refused the item)."""
    if not data:
        return []
    from torchvision.io import ImageReadMode, decode_jpeg

    tensors = [torch.frombuffer(d, dtype=torch.uint8) for d in data]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchvision 0.29 deprecates its image io in favour of torchcodec
        try:
            return list(decode_jpeg(tensors, mode=ImageReadMode.RGB, device=device))
        except RuntimeError:
            logger.debug("batched JPEG decode failed; decoding one by one", exc_info=True)
        out: list[torch.Tensor | None] = []
        for t in tensors:
            try:
                out.append(decode_jpeg(t, mode=ImageReadMode.RGB, device=device))
            except RuntimeError:
                out.append(None)
    return out


# --- writing ------------------------------------------------------------------------------
class _Writer:
    """Upserts batches on its own thread, so the device does not wait for the store."""

    def __init__(self, backend: StoreBackend, lock: threading.Lock, depth: int = 2):
        self._backend, self._lock = backend, lock
        self._q: queue.Queue = queue.Queue(depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="vitr-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (points := self._q.get()) is not None:
            if self._error is None:
                try:
                    with self._lock:
                        self._backend.upsert(points)
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
