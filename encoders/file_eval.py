"""Recall of a model on a captions file (JSONL, CSV, Karpathy, COCO, CLEVR): what ``vitr eval
--data`` prints and what the trainer records at the end of a run with ``eval_data``."""
from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from .data.formats import load_captions
from .evaluation import evaluate_retrieval, relevant_by_counts


def evaluate_file(model, path: str | Path, fmt: str | None = None, image_root: str | None = None,
                  split: str | None = None, max_images: int | None = None,
                  mode: str | None = None) -> dict:
    """``{"data", "mode", "images", "texts", "metrics"}``: Recall@K both ways (and ``rsum``) of
    ``model`` scoring every image against every caption of the file in ``mode`` (default: the
    model's best).

    Raises:
        InputError: no images in the file (or in ``split``).
    """
    kwargs = {"image_root": image_root} if image_root else {}
    records = [r for r in load_captions(path, fmt, **kwargs) if split is None or r.split == split]
    records = [r for r in records if r.captions][:max_images]
    if not records:
        raise InputError(f"no images with captions in {path}" + (f" (split {split})" if split else ""))
    texts = [c for r in records for c in r.captions]
    mode = model.resolve_mode(mode)
    scores = model.score([r.image for r in records], texts, mode=mode)
    metrics = evaluate_retrieval(scores, relevant_by_counts([len(r.captions) for r in records]))
    return {"data": str(path), "mode": mode, "images": len(records), "texts": len(texts),
            "metrics": metrics}
