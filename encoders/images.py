"""Image inputs: decode what users pass (paths, bytes, PIL, arrays) and preprocess for a model."""
from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from ..errors import ImageLoadError, InputError
from .limits import MAX_PIXELS

ImageInput = Union[str, Path, bytes, Image.Image, np.ndarray]
REDUCING_GAP = 2
"""Images are reduced (JPEG: decoded at a smaller scale) only while their shorter side stays at
least this many times the model's input size; the bicubic resize does the rest."""
_ORIENTATION = 0x0112
_REDUCIBLE = ("L", "LA", "RGB", "RGBA", "RGBX", "CMYK", "I", "F")


def load_image(item: Any, max_pixels: int = MAX_PIXELS, fit: int | None = None) -> Image.Image:
    """Decode one image input to an RGB ``PIL.Image`` (EXIF orientation applied); see
    :func:`decode_image` for ``max_pixels`` and ``fit``."""
    return decode_image(item, max_pixels, fit)[0]


def decode_image(item: Any, max_pixels: int = MAX_PIXELS,
                 fit: int | None = None) -> tuple[Image.Image, tuple[int, int]]:
    """Decode one image input to an RGB ``PIL.Image`` (EXIF orientation applied) and the
    (width, height) of the original, as rotated.

    Accepts a local path (str/Path), encoded bytes, a PIL image or an HxWx3 uint8 array. URLs
    are fetched by the caller (``vitr_qdrant``), not here.

    Args:
        max_pixels: The most pixels decoded for one image (a JPEG counts at the scale it is
            decoded at); more is an :class:`ImageLoadError`, checked before decoding.
        fit: The model's input size: the image is reduced while decoding (JPEG: decoded at
            1/2, 1/4 or 1/8 scale) and right after it (:func:`reduce_for`), so what is kept is
            about what the model needs, not the original. None keeps the decoded size.
    """
    if isinstance(item, Image.Image):
        img = item
    elif isinstance(item, np.ndarray):
        if item.ndim != 3 or item.shape[2] != 3 or item.dtype != np.uint8:
            raise ImageLoadError(f"arrays must be HxWx3 uint8 (got {item.shape} {item.dtype})")
        img = Image.fromarray(item, "RGB")
    elif isinstance(item, (bytes, bytearray)):
        img, size = _open(io.BytesIO(item), "bytes", max_pixels, fit)
    elif isinstance(item, (str, Path)):
        p = Path(item)
        if not p.is_file():
            raise ImageLoadError(f"no such file: {p}")
        img, size = _open(p, str(p), max_pixels, fit)
    else:
        raise ImageLoadError(f"unsupported image type {type(item).__name__}; pass a path, "
                             "bytes, PIL.Image or HxWx3 uint8 array")
    if isinstance(item, (Image.Image, np.ndarray)):
        _check_pixels(img, max_pixels)
        size = img.size
    try:
        swap = img.getexif().get(_ORIENTATION, 1) in (5, 6, 7, 8)
        img = ImageOps.exif_transpose(reduce_for(img, fit)).convert("RGB")
    except (OSError, ValueError) as e:
        raise ImageLoadError(f"cannot decode image: {e}") from e
    return img, (size[1], size[0]) if swap else size


def _open(src: Any, what: str, max_pixels: int, fit: int | None) -> tuple[Image.Image, tuple[int, int]]:
    """The decoded image (at a smaller scale where ``fit`` allows) and the size its header gives."""
    try:
        img = Image.open(src)
        size = img.size
        if fit is not None and img.format == "JPEG":
            scale = REDUCING_GAP * fit / max(1, min(img.size))
            if scale < 1:   # the decoder picks the smallest scale at least this size
                img.draft(None, (math.ceil(img.width * scale), math.ceil(img.height * scale)))
        _check_pixels(img, max_pixels)
        img.load()
        return img, size
    except ImageLoadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageLoadError(f"decompression bomb: {e}") from e
    except (OSError, ValueError, SyntaxError) as e:
        raise ImageLoadError(f"not a readable image ({what}): {e}") from e


def _check_pixels(img: Image.Image, max_pixels: int) -> None:
    if img.width == 0 or img.height == 0:
        raise ImageLoadError(f"the image has no pixels ({img.width}x{img.height})")
    if img.width * img.height > max_pixels:
        raise ImageLoadError(f"image too large ({img.width}x{img.height} = {img.width * img.height:,} pixels "
                             f"decoded, over the cap of {max_pixels:,}; Settings.max_pixels sets it): "
                             f"decompression bomb?")


def reduce_for(img: Image.Image, size: int | None) -> Image.Image:
    """``img`` reduced by the largest integer factor (box filter) that keeps its shorter side at
    least ``REDUCING_GAP * size``; ``img`` itself when there is nothing to reduce."""
    factor = min(img.size) // (REDUCING_GAP * size) if size else 0
    if factor < 2:
        return img
    if img.mode not in _REDUCIBLE:
        img = img.convert("RGBA" if "A" in img.getbands() or "transparency" in img.info else "RGB")
    return img.reduce(factor)


def cover_crop(width: int, height: int, size: int) -> tuple[int, int, int, int]:
    """The one resize-and-crop geometry (as CLIP's): the shorter side resized to ``size``, the other
    in proportion, then the centre ``size`` square. Returns (resized width, height, left, top)."""
    scale = size / min(width, height)
    nw, nh = max(size, round(width * scale)), max(size, round(height * scale))
    return nw, nh, (nw - size) // 2, (nh - size) // 2


def resize_and_crop(img: Image.Image, size: int) -> Image.Image:
    """The ``size`` x ``size`` square a model sees of ``img``: :func:`reduce_for`, then bicubic
    resize and centre crop (:func:`cover_crop`). An image reduced while decoding gives the same."""
    if img.size == (size, size):
        return img
    img = reduce_for(img, size)
    nw, nh, left, top = cover_crop(img.width, img.height, size)
    return img.resize((nw, nh), Image.BICUBIC).crop((left, top, left + size, top + size))


def preprocess(img: Image.Image, size: int, mean: tuple, std: tuple) -> torch.Tensor:
    """:func:`resize_and_crop`, then normalise: a CHW float tensor."""
    arr = torch.from_numpy(np.asarray(resize_and_crop(img, size), dtype=np.float32) / 255.0).permute(2, 0, 1)
    return (arr - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)


@dataclass(frozen=True)
class ModelInput:
    """What a model reads: ``size`` x ``size`` RGB, normalised with ``mean`` and ``std``.
    Called on a decoded image, it is :func:`preprocess` (the model's input tensor)."""

    size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __call__(self, img: Image.Image) -> torch.Tensor:
        return preprocess(img, self.size, self.mean, self.std)


def preprocess_tensors(images: Sequence[torch.Tensor], size: int, mean: tuple, std: tuple,
                       chunk: int = 64) -> torch.Tensor:
    """:func:`preprocess` for decoded uint8 CHW RGB tensors on any device (e.g. nvJPEG output on
    the GPU): antialiased bicubic resize of the shorter side, rounded to uint8 steps like PIL,
    centre crop, normalise. Images of one shape are resized together. Returns (n, 3, size, size)."""
    if not images:
        raise InputError("preprocess_tensors needs at least one image")
    device = images[0].device
    out = torch.empty(len(images), 3, size, size, device=device)
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, img in enumerate(images):
        by_shape.setdefault(tuple(img.shape), []).append(i)
    for idx in by_shape.values():
        for k in range(0, len(idx), chunk):
            part = idx[k:k + chunk]
            out[part] = _resize_crop(torch.stack([images[i] for i in part]).float(), size)
    m = torch.tensor(mean, device=device).view(1, 3, 1, 1)
    s = torch.tensor(std, device=device).view(1, 3, 1, 1)
    return (out / 255.0 - m) / s


def _resize_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    if (w, h) == (size, size):
        return x
    nw, nh, left, top = cover_crop(w, h, size)
    x = F.interpolate(x, size=(nh, nw), mode="bicubic", antialias=True, align_corners=False)
    return x[..., top:top + size, left:left + size].round().clamp(0, 255)


def crop_box_to_image(box: np.ndarray, width: int, height: int) -> np.ndarray:
    """Map boxes normalised to the centre-cropped model input back to image pixels."""
    side = min(width, height)
    x0, y0 = (width - side) / 2, (height - side) / 2
    box = np.asarray(box, dtype=np.float64)
    return box * side + np.array([x0, y0, x0, y0])
