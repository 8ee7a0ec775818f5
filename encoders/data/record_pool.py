"""Training pools from real image-caption datasets (any format of :mod:`.formats`).

Images are decoded, resized and centre-cropped to the model input once, as inference does;
captions are sampled per step. Real datasets bring no relation hard negatives: the head stage
then learns from in-batch negatives only.
"""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from ..images import ImageLoadError, load_image, resize_and_crop
from .formats import ImageCaptions, load_captions

log = logging.getLogger(__name__)


def _square(path: str, size: int) -> np.ndarray | None:
    try:
        img = load_image(path)
    except ImageLoadError as e:
        log.warning("skipping %s: %s", path, e)
        return None
    return np.asarray(resize_and_crop(img, size))


@dataclass
class RecordPool:
    images: np.ndarray
    captions: list[list[str]]
    partner: np.ndarray

    def __len__(self) -> int:
        return len(self.captions)


def build_record_pool(path: str, model_size: int, fmt: str | None = None,
                      split: str | None = None, workers: int = 2, **kwargs) -> RecordPool:
    """Load a dataset file (Karpathy JSON, COCO captions, CLEVR, CSV, JSONL) as a pool."""
    if split is not None:
        kwargs["split"] = split
    records: list[ImageCaptions] = [r for r in load_captions(path, fmt, **kwargs) if r.captions]
    with ThreadPoolExecutor(max(1, workers)) as ex:
        arrays = list(tqdm(ex.map(lambda r: _square(r.image, model_size), records),
                           total=len(records), desc="load images"))
    kept = [(a, r.captions) for a, r in zip(arrays, records) if a is not None]
    if not kept:
        raise ValueError(f"no readable images with captions in {path}")
    return RecordPool(np.stack([a for a, _ in kept]), [c for _, c in kept],
                      np.full(len(kept), -1))


class RecordSampler:
    """A random caption of the image; no hard negatives; true iff among its captions.
    Stateless like :class:`~.scene_pool.CaptionSampler`: a draw depends on (seed, i, salt)."""

    def __init__(self, pool: RecordPool, seed: int = 0):
        self.pool, self.seed = pool, int(seed)
        self._sets = [set(c) for c in pool.captions]

    def sample(self, i: int, salt: int = 0) -> tuple[str, list[str], None]:
        captions = self.pool.captions[i]
        pick = np.random.default_rng([self.seed, int(i), int(salt)]).integers(len(captions))
        return captions[int(pick)], [], None

    def is_true(self, i: int, text: str) -> bool:
        return text in self._sets[i]
