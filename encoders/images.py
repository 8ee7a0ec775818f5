"""Image inputs: decode what users pass (paths, bytes, PIL, arrays) and preprocess for a model."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from ..errors import ImageLoadError, InputError

ImageInput = Union[str, Path, bytes, Image.Image, np.ndarray]
MAX_PIXELS = 89_478_485  # PIL's own decompression-bomb threshold


def load_image(item: Any) -> Image.Image:
    """Decode one image input to an RGB ``PIL.Image`` (EXIF orientation applied).

    Accepts a local path (str/Path), encoded bytes, a PIL image or an HxWx3 uint8 array. URLs
    are fetched by the caller (``vitr_qdrant``), not here.
    """
    if isinstance(item, Image.Image):
        img = item
    elif isinstance(item, np.ndarray):
        if item.ndim != 3 or item.shape[2] != 3 or item.dtype != np.uint8:
            raise ImageLoadError(f"arrays must be HxWx3 uint8 (got {item.shape} {item.dtype})")
        return Image.fromarray(item, "RGB")
    elif isinstance(item, (bytes, bytearray)):
        img = _open(io.BytesIO(item), "bytes")
    elif isinstance(item, (str, Path)):
        p = Path(item)
        if not p.is_file():
            raise ImageLoadError(f"no such file: {p}")
        img = _open(p, str(p))
    else:
        raise ImageLoadError(f"unsupported image type {type(item).__name__}; pass a path, "
                             "bytes, PIL.Image or HxWx3 uint8 array")
    if img.width * img.height > MAX_PIXELS:
        raise ImageLoadError(f"image too large ({img.width}x{img.height}): decompression bomb?")
    try:
        img = ImageOps.exif_transpose(img)
        return img.convert("RGB")
    except (OSError, ValueError) as e:
        raise ImageLoadError(f"cannot decode image: {e}") from e


def _open(src: Any, what: str) -> Image.Image:
    try:
        img = Image.open(src)
        if img.width * img.height > MAX_PIXELS:
            raise ImageLoadError(f"image too large ({img.width}x{img.height}): decompression bomb?")
        img.load()
        return img
    except ImageLoadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageLoadError(f"decompression bomb: {e}") from e
    except (OSError, ValueError, SyntaxError) as e:
        raise ImageLoadError(f"not a readable image ({what}): {e}") from e


def cover_crop(width: int, height: int, size: int) -> tuple[int, int, int, int]:
    """The one resize-and-crop geometry (as CLIP's): the shorter side resized to ``size``, the other
    in proportion, then the centre ``size`` square. Returns (resized width, height, left, top)."""
    scale = size / min(width, height)
    nw, nh = max(size, round(width * scale)), max(size, round(height * scale))
    return nw, nh, (nw - size) // 2, (nh - size) // 2


def resize_and_crop(img: Image.Image, size: int) -> Image.Image:
    """The ``size`` x ``size`` square a model sees of ``img`` (bicubic, :func:`cover_crop`)."""
    if img.size == (size, size):
        return img
    nw, nh, left, top = cover_crop(img.width, img.height, size)
    return img.resize((nw, nh), Image.BICUBIC).crop((left, top, left + size, top + size))


def preprocess(img: Image.Image, size: int, mean: tuple, std: tuple) -> torch.Tensor:
    """:func:`resize_and_crop`, then normalise: a CHW float tensor."""
    arr = torch.from_numpy(np.asarray(resize_and_crop(img, size), dtype=np.float32) / 255.0).permute(2, 0, 1)
    return (arr - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)


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
