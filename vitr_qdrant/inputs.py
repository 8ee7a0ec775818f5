"""Turn what users pass as images into decoded items, or a reason why not (never raises per item).

Accepted: str/Path files, directories (recursively, by image extension), http(s) URLs, encoded
bytes, ``PIL.Image`` and HxWx3 uint8 arrays (an NxHxWx3 array is N images).
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import httpx
import numpy as np
from PIL import Image

from .encoders.images import load_image
from .errors import FetchError, ImageLoadError, InputError
from .fetch import ALLOWED_SCHEMES, FetchCfg, fetch_url, new_client, url_scheme

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff"})
JPEG_EXTENSIONS = frozenset({".jpg", ".jpeg"})
JPEG_MAGIC = b"\xff\xd8\xff"
_SINGLE = (str, Path, bytes, bytearray, Image.Image)
_BUFFER_RE = re.compile(r"<_io\.BytesIO object at 0x[0-9a-fA-F]+>")


@dataclass(frozen=True)
class Source:
    """One image to load: ``item`` as given (or a file found in a directory), a stable ``key``
    (path or URL as written, used for reports and sharding) and the ``index`` of the user input
    it came from."""

    item: Any
    key: str
    index: int


@dataclass
class LoadedItem:
    """A decoded image (``image``) or the reason it could not be used (``error``).

    The device decoder (:mod:`vitr_qdrant.decoders`) leaves a plain JPEG undecoded: ``jpeg`` holds its bytes and
    ``jpeg_size`` its (width, height) from the header; the model's device decodes it later.
    """

    source: Source
    image: Image.Image | None = None
    uri: str | None = None
    sha256: str | None = None
    error: str | None = None
    jpeg: bytearray | None = None
    jpeg_size: tuple[int, int] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the image, decoded or not."""
        if self.image is not None:
            return self.image.size
        if self.jpeg_size is None:
            raise InputError(f"{self.source.key}: no image")
        return self.jpeg_size


def as_inputs(items: Any) -> list[Any]:
    """``items`` as a list of user inputs (one image is a list of one)."""
    if isinstance(items, _SINGLE) or (isinstance(items, np.ndarray) and items.ndim != 4):
        return [items]
    try:
        return list(items)
    except TypeError:
        return [items]


def describe(item: Any) -> str:
    """A short human-readable description of an input, for reports."""
    if isinstance(item, (str, Path)):
        return str(item)
    if isinstance(item, (bytes, bytearray)):
        return f"<bytes: {len(item)} bytes>"
    if isinstance(item, Image.Image):
        return getattr(item, "filename", "") or f"<PIL.Image {item.width}x{item.height} {item.mode}>"
    if isinstance(item, np.ndarray):
        return f"<array {'x'.join(map(str, item.shape))} {item.dtype}>"
    return f"<{type(item).__name__}>"


def looks_like_jpeg(item: Any) -> bool:
    """A local ``.jpg``/``.jpeg`` file name or JPEG bytes (by name and magic only; nothing is read)."""
    if isinstance(item, (bytes, bytearray)):
        return bytes(item[:3]) == JPEG_MAGIC
    if isinstance(item, (str, Path)) and not url_scheme(str(item)):
        return Path(item).suffix.lower() in JPEG_EXTENSIONS
    return False


def iter_sources(items: Iterable[Any]) -> Iterator[Source]:
    """Expand directories (recursively, sorted, hidden entries skipped) into image files."""
    for index, item in enumerate(items):
        if isinstance(item, (str, Path)) and not url_scheme(str(item)) and Path(item).is_dir():
            for path in _walk(Path(item)):
                yield Source(path, str(path), index)
        else:
            yield Source(item, describe(item), index)


def _walk(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_EXTENSIONS:
                yield Path(dirpath) / name


def load_source(src: Source, cfg: FetchCfg = FetchCfg(), client: httpx.Client | None = None) -> LoadedItem:
    """Read, fetch and decode one source; any failure becomes ``error`` (this never raises)."""
    out = LoadedItem(src)
    try:
        _load(src.item, out, cfg, client)
    except (ImageLoadError, FetchError, OSError) as exc:
        out.error = _BUFFER_RE.sub("data", str(exc)) or type(exc).__name__
    except Exception as exc:  # one bad item must never sink a batch
        logger.debug("unexpected error loading %s", src.key, exc_info=True)
        out.error = f"{type(exc).__name__}: {exc}"
    if out.error is not None:
        out.image = None
    return out


def _load(item: Any, out: LoadedItem, cfg: FetchCfg, client: httpx.Client | None) -> None:
    if isinstance(item, (str, Path)):
        scheme = url_scheme(str(item))
        if scheme is not None:
            if scheme not in ALLOWED_SCHEMES:
                raise FetchError(f"unsupported URL scheme {scheme!r}: only http and https are fetched")
            out.uri = str(item)
            data = fetch_url(str(item), cfg, client)
        else:
            path = Path(item).expanduser()
            if not path.is_file():
                raise ImageLoadError(f"no such file: {item}")
            if path.stat().st_size > cfg.max_bytes:
                raise ImageLoadError(f"file is {path.stat().st_size} bytes, over the {cfg.max_bytes}-byte cap")
            out.uri = str(path.resolve())
            data = path.read_bytes()
        item = data
    if isinstance(item, (bytes, bytearray)):
        if len(item) > cfg.max_bytes:
            raise ImageLoadError(f"{len(item)} bytes, over the {cfg.max_bytes}-byte cap")
        out.sha256 = hashlib.sha256(item).hexdigest()
        out.image = load_image(bytes(item))
        return
    if isinstance(item, Image.Image):
        out.uri = getattr(item, "filename", "") or None
    out.image = load_image(item)  # PIL, arrays; anything else is an unsupported type
    out.sha256 = hashlib.sha256(b"rgb:%dx%d:" % out.image.size + out.image.tobytes()).hexdigest()


def load_sources(sources: Sequence[Source], cfg: FetchCfg = FetchCfg(), workers: int = 4) -> list[LoadedItem]:
    """Load many sources with a thread pool (I/O and decoding overlap); order is kept."""
    needs_http = any(isinstance(s.item, str) and url_scheme(s.item) for s in sources)
    client = new_client(cfg) if needs_http else None
    try:
        if workers <= 1 or len(sources) <= 1:
            return [load_source(s, cfg, client) for s in sources]
        with ThreadPoolExecutor(max_workers=min(workers, len(sources))) as pool:
            return list(pool.map(lambda s: load_source(s, cfg, client), sources))
    finally:
        if client is not None:
            client.close()
