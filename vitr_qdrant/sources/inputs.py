"""Turn what users pass as images into decoded items or model inputs, or a reason why not (never
raises per item).

Accepted: str/Path files, directories (recursively, by image extension), http(s) URLs, encoded
bytes, ``PIL.Image`` and HxWx3 uint8 arrays (an NxHxWx3 array is N images).
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import stat
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import httpx
import numpy as np
import torch
from PIL import Image

from ..encoders.images import ModelInput, decode_image, load_image, reduce_for
from ..encoders.limits import MAX_PIXELS
from ..errors import FetchError, ImageLoadError
from .fetch import FetchCfg, fetch_url, new_client, url_scheme
from .url_policy import redact_url

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff"})
JPEG_EXTENSIONS = frozenset({".jpg", ".jpeg"})
JPEG_MAGIC = b"\xff\xd8\xff"
_SINGLE = (str, Path, bytes, bytearray, Image.Image, Mapping)
_BUFFER_RE = re.compile(r"<_io\.BytesIO object at 0x[0-9a-fA-F]+>")


@dataclass(frozen=True)
class Source:
    """One image to load: ``item`` as given (or a file found in a directory), a stable ``key``
    (path or URL as written, used for reports and sharding) and the ``index`` of the user input
    it came from."""

    item: Any
    key: str
    index: int


@dataclass(frozen=True)
class LoadCfg:
    """How sources are read: URL fetching (and the size cap of files and downloads), the cap of
    decoded pixels, ``fit``, the model's input size the images are reduced towards, and
    ``model_input``: when set, the reader also makes each image's model input tensor (resized,
    cropped, normalised; :class:`~vitr_qdrant.encoders.images.ModelInput`) and keeps only that."""

    fetch: FetchCfg = field(default_factory=FetchCfg)
    max_pixels: int = MAX_PIXELS
    fit: int | None = None
    model_input: ModelInput | None = None


@dataclass
class LoadedItem:
    """A decoded image (``image``, reduced towards the model's input size) or the reason it could
    not be used (``error``); ``size`` is the (width, height) of the original. With
    ``LoadCfg.model_input`` the image is made into the model's input (``pixels``, (3, S, S)
    float32) right away and ``image`` is None.

    The device decoder (:mod:`vitr_qdrant.ingest.decoders`) leaves a plain JPEG undecoded: ``jpeg`` holds
    its bytes and ``size`` its (width, height) from the header; the model's device decodes it later.
    """

    source: Source
    image: Image.Image | None = None
    uri: str | None = None
    sha256: str | None = None
    error: str | None = None
    jpeg: bytearray | None = None
    size: tuple[int, int] | None = None
    pixels: torch.Tensor | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def as_inputs(items: Any) -> list[Any]:
    """``items`` as a list of user inputs (one image is a list of one)."""
    if isinstance(items, _SINGLE) or (isinstance(items, np.ndarray) and items.ndim != 4):
        return [items]
    try:
        return list(items)
    except TypeError:
        return [items]


def describe(item: Any) -> str:
    """A short human-readable description of an input, for reports (a URL without its credentials)."""
    if isinstance(item, (str, Path)):
        return redact_url(str(item))
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
        if _is_dir(item):
            for path in _walk(Path(item)):
                yield Source(path, str(path), index)
        else:
            yield Source(item, describe(item), index)


def _is_dir(item: Any) -> bool:
    if not isinstance(item, (str, Path)) or str(item) == "" or url_scheme(str(item)):
        return False
    try:
        return Path(item).is_dir()
    except (OSError, ValueError):   # e.g. a name too long: its load says so
        return False


def _walk(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_EXTENSIONS:
                yield Path(dirpath) / name


def load_source(src: Source, cfg: LoadCfg = LoadCfg(), client: httpx.Client | None = None) -> LoadedItem:
    """Read, fetch and decode one source; any failure becomes ``error`` (this never raises)."""
    out = LoadedItem(src)
    try:
        _load(src.item, out, cfg, client)
        if cfg.model_input is not None:   # the encoding thread only encodes
            out.pixels, out.image = cfg.model_input(out.image), None
    except (ImageLoadError, FetchError, OSError) as exc:
        out.error = _BUFFER_RE.sub("data", str(exc)) or type(exc).__name__
    except Exception as exc:  # one bad item must never sink a batch
        logger.debug("unexpected error loading %s", src.key, exc_info=True)
        out.error = f"{type(exc).__name__}: {exc}"
    if out.error is not None:
        out.image = out.pixels = None
    return out


def load_one(item: Any, cfg: LoadCfg = LoadCfg()) -> LoadedItem:
    """One input loaded, or its error raised (``ImageLoadError``, ``FetchError``, ``URLPolicyError``)."""
    out = LoadedItem(Source(item, describe(item), 0))
    _load(item, out, cfg, None)
    return out


def _load(item: Any, out: LoadedItem, cfg: LoadCfg, client: httpx.Client | None) -> None:
    if isinstance(item, (str, Path)):
        item, out.uri = read_bytes(item, cfg.fetch, client)
    if isinstance(item, (bytes, bytearray)):
        if len(item) > cfg.fetch.max_bytes:
            raise ImageLoadError(f"{len(item)} bytes, over the {cfg.fetch.max_bytes}-byte cap")
        out.sha256 = hashlib.sha256(item).hexdigest()
        out.image, out.size = decode_image(bytes(item), cfg.max_pixels, cfg.fit)
        return
    if isinstance(item, Image.Image):
        out.uri = file_uri(getattr(item, "filename", "") or None)
    full = load_image(item, cfg.max_pixels)  # PIL, arrays; anything else is an unsupported type
    out.sha256 = pixel_sha256(full)
    out.image, out.size = reduce_for(full, cfg.fit), full.size


def pixel_sha256(image: Image.Image) -> str:
    """The sha256 of an image in memory: over its RGB pixels at full size (ids stay what they were)."""
    return hashlib.sha256(b"rgb:%dx%d:" % image.size + image.tobytes()).hexdigest()


def file_uri(name: str | None) -> str | None:
    """The uri stored for a file name: absolute and resolved (a relative name would mean another
    file to a process started elsewhere); a URL (without its credentials) as it is."""
    if not name:
        return None
    if url_scheme(name) is not None:
        return redact_url(name)
    try:
        return str(Path(name).expanduser().resolve())
    except (OSError, RuntimeError, ValueError):   # a symlink loop, a NUL: keep the absolute form
        return os.path.abspath(name)


def read_bytes(item: str | Path, cfg: FetchCfg, client: httpx.Client | None = None) -> tuple[bytes, str]:
    """The bytes of a file or http(s) URL and the uri to store (a URL without its credentials).

    Raises:
        ImageLoadError: an empty path, no such file, not a regular file, over ``cfg.max_bytes``.
        FetchError: see :func:`~vitr_qdrant.sources.fetch.fetch_url`.
    """
    text = str(item)
    if not text:
        raise ImageLoadError("an empty path")
    if url_scheme(text) is not None:
        return fetch_url(text, cfg, client), redact_url(text)
    path = Path(item).expanduser()
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            raise ImageLoadError(f"not a regular file (a {_file_kind(st.st_mode)}): {item}")
        if st.st_size > cfg.max_bytes:
            raise ImageLoadError(f"file is {st.st_size} bytes, over the {cfg.max_bytes}-byte cap")
        return path.read_bytes(), str(path.resolve())
    except FileNotFoundError:
        raise ImageLoadError(f"no such file: {item}") from None
    except (OSError, ValueError) as exc:   # a name too long, no permission, a NUL in the name...
        raise ImageLoadError(f"cannot read {item}: {getattr(exc, 'strerror', None) or exc}") from None


def _file_kind(mode: int) -> str:
    kinds = {stat.S_ISDIR: "directory", stat.S_ISFIFO: "FIFO", stat.S_ISSOCK: "socket",
             stat.S_ISCHR: "character device", stat.S_ISBLK: "block device"}
    return next((name for test, name in kinds.items() if test(mode)), "special file")


def load_sources(sources: Sequence[Source], cfg: LoadCfg = LoadCfg(), workers: int = 4) -> list[LoadedItem]:
    """Load many sources with a thread pool (I/O and decoding overlap); order is kept."""
    needs_http = any(isinstance(s.item, str) and url_scheme(s.item) for s in sources)
    client = new_client(cfg.fetch) if needs_http else None
    try:
        if workers <= 1 or len(sources) <= 1:
            return [load_source(s, cfg, client) for s in sources]
        with ThreadPoolExecutor(max_workers=min(workers, len(sources))) as pool:
            return list(pool.map(lambda s: load_source(s, cfg, client), sources))
    finally:
        if client is not None:
            client.close()
