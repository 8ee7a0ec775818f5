"""The two ways the ingest pipeline turns a batch of sources into embeddings (its decode strategies).

* :data:`PIL_DECODER` (the default on CPU): the reader threads read, fetch and decode every source
  with PIL and make its model input (reduce, resize, crop, normalise: ``LoadCfg.model_input``);
  the encoding thread only runs ``model.encode_pixels`` on the batch.
* :data:`DEVICE_DECODER` (``Settings.jpeg_decoder``: ``"auto"`` with a model on CUDA, or
  ``"torchvision"``): plain JPEGs (a ``.jpg``/``.jpeg`` file or JPEG bytes: RGB or grey, no EXIF
  rotation, an end marker) are only read and hashed by the reader threads and decoded on the
  model's device (nvJPEG on CUDA), then resized there. Everything else (other formats, URLs,
  PIL images, arrays, CMYK or EXIF-rotated JPEGs, truncated files) is read, decoded and made
  into model inputs by the reader threads as by the PIL decoder, and a JPEG the device decoder
  refuses gets a second chance with PIL, so failures are reported with the same reasons. Ids
  and payloads do not depend on the decoder, so either skips what the other stored.
"""
from __future__ import annotations

import hashlib
import io
import logging
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch
from PIL import Image

from ..encoders import ImageEmbeddings, TextEmbeddings, VitrModel
from ..encoders.images import ModelInput, load_image, preprocess_tensors
from ..errors import ImageLoadError
from ..sources.inputs import JPEG_MAGIC, LoadCfg, LoadedItem, Source, load_sources, looks_like_jpeg
from ..settings import Settings

logger = logging.getLogger(__name__)
_EXIF_ORIENTATION = 0x0112
Encoded = Union[tuple[np.ndarray, np.ndarray, Optional[np.ndarray]], str]
"""(global, regions, first-stage vector or None) of one item, or the reason it could not be encoded."""


@dataclass(frozen=True)
class Decoder:
    """A decode strategy: ``read`` runs in the reader thread (a batch of sources to loaded items,
    with ``workers`` threads), ``encode`` in the pipeline's thread (loaded items to embeddings)."""

    name: str
    read: Callable[[Sequence[Source], LoadCfg, int], list[LoadedItem]]
    encode: Callable[[VitrModel, list[LoadedItem]], list[Encoded]]


def choose_decoder(model: VitrModel, settings: Settings, sources: Sequence[Source]) -> Decoder:
    """The device decoder where ``settings.jpeg_decoder`` asks for it (``"auto"``: a model on CUDA
    and some JPEG among ``sources``), else the PIL decoder."""
    if settings.jpeg_decoder != "auto":
        return DEVICE_DECODER if settings.jpeg_decoder == "torchvision" else PIL_DECODER
    on_gpu = model.device.type == "cuda" and any(looks_like_jpeg(s.item) for s in sources)
    return DEVICE_DECODER if on_gpu else PIL_DECODER


def model_input(model: VitrModel) -> ModelInput:
    """What ``model`` reads (its input size, mean and std): the reader threads make it."""
    bb = model.backbone
    return ModelInput(bb.image_size, bb.image_mean, bb.image_std)


def encode_decoded(model: VitrModel, items: list[LoadedItem]) -> list[Encoded]:
    """(global, regions) of items whose model inputs the reader threads made (``pixels``)."""
    return embedding_rows(model.encode_pixels(torch.stack([it.pixels for it in items])))


def embedding_rows(emb: ImageEmbeddings | TextEmbeddings) -> list[Encoded]:
    """One (global, regions or tokens, first-stage vector or None) per embedded item."""
    many = emb.region_vectors if isinstance(emb, ImageEmbeddings) else emb.token_vectors
    first = emb.first_vectors if emb.first_vectors is not None else [None] * len(many)
    return list(zip(emb.global_vectors, many, first))


# --- the device decoder: reading ----------------------------------------------------------
def read_for_device(batch: Sequence[Source], cfg: LoadCfg, workers: int) -> list[LoadedItem]:
    """Plain JPEGs read and hashed (left undecoded); the other sources loaded as by the PIL decoder."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        probed = list(pool.map(lambda s: probe_jpeg(s, cfg), batch))
    rest = iter(load_sources([s for s, p in zip(batch, probed) if p is None], cfg, workers))
    return [p if p is not None else next(rest) for p in probed]


def probe_jpeg(src: Source, cfg: LoadCfg) -> LoadedItem | None:
    """A :class:`LoadedItem` holding a plain JPEG's bytes, or None for PIL (never raises)."""
    item = src.item
    if not looks_like_jpeg(item):
        return None
    try:
        if isinstance(item, (bytes, bytearray)):
            data, uri = bytearray(item), None
        else:
            path = Path(item).expanduser()
            if not path.is_file() or path.stat().st_size > cfg.fetch.max_bytes:
                return None
            data, uri = _read(path), str(path.resolve())
    except (OSError, ValueError):
        return None
    size = plain_jpeg_size(data, cfg.max_pixels)
    if size is None or len(data) > cfg.fetch.max_bytes:
        return None
    return LoadedItem(src, uri=uri, sha256=hashlib.sha256(data).hexdigest(), jpeg=data, size=size)


def _read(path: Path) -> bytearray:
    with open(path, "rb") as f:
        data = bytearray(f.read())  # writable: torch.frombuffer takes it without a copy or a warning
    return data


def plain_jpeg_size(data: bytearray, max_pixels: int) -> tuple[int, int] | None:
    """(width, height) of a JPEG the device may decode as is (at full size, so at most
    ``max_pixels``), else None (PIL decides)."""
    if bytes(data[:3]) != JPEG_MAGIC or not bytes(data[-32:]).rstrip(b"\x00\r\n ").endswith(b"\xff\xd9"):
        return None  # no end marker: truncated, and PIL reports that
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.format != "JPEG" or im.mode not in ("RGB", "L") or im.width * im.height > max_pixels:
                return None
            if im.getexif().get(_EXIF_ORIENTATION, 1) != 1:
                return None  # EXIF rotation: applied by PIL only
            return im.size
    except Exception:  # anything odd: PIL decodes it and reports why not
        return None


# --- the device decoder: encoding ---------------------------------------------------------
def encode_on_device(model: VitrModel, items: list[LoadedItem]) -> list[Encoded]:
    """(global, regions) per item, or the reason no decoder could read it."""
    pixels, errors = model_inputs(model, items)
    if pixels is None:
        return [errors[i] for i in range(len(items))]
    vectors = iter(embedding_rows(model.encode_pixels(pixels)))
    return [errors[i] if i in errors else next(vectors) for i in range(len(items))]


def model_inputs(model: VitrModel, items: list[LoadedItem]) -> tuple[torch.Tensor | None, dict[int, str]]:
    """Model inputs (n_ok, 3, S, S) on the device for ``items`` in order, and the reason for each
    item (by position) that no decoder could read."""
    want, dev = model_input(model), model.device
    at = [i for i, it in enumerate(items) if it.jpeg is not None and it.pixels is None]
    frames = dict(zip(at, decode_jpegs([items[i].jpeg for i in at], dev)))
    errors: dict[int, str] = {}
    for i, frame in list(frames.items()):
        if frame is None:  # refused by the device decoder: PIL has the last word
            del frames[i]
            try:
                items[i].pixels = want(load_image(bytes(items[i].jpeg), fit=want.size))
            except ImageLoadError as exc:
                errors[i] = str(exc)
    parts: dict[int, torch.Tensor] = {}
    if frames:
        parts.update(zip(frames, preprocess_tensors(list(frames.values()), want.size, want.mean, want.std)))
    for i, it in enumerate(items):
        if i not in frames and i not in errors:
            parts[i] = it.pixels.to(dev)   # made by the reader threads
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


PIL_DECODER = Decoder("pil", load_sources, encode_decoded)
DEVICE_DECODER = Decoder("device", read_for_device, encode_on_device)
