"""Relation Scenes as training data: on the fly from seeds, as arrays, or as PNG + JSONL on disk.

Item ``i`` of a dataset with ``base_seed`` is the example of seed ``base_seed + i``
(:func:`make_example`): that scene, one of its related pairs picked at random, a caption about it
in a random template (1-4 of the spec) with or without size words, and its hard negatives in the
same surface form. Everything is deterministic per seed.

Write a split to disk::

    python -m vitr_qdrant.encoders.data.scenes_dataset write --split train --n 1000 --out DIR

``DIR/captions.jsonl`` has one record per image (``image`` is a path relative to ``DIR``,
``caption``, ``negatives``, ...), so the plain JSONL loader of ``formats`` reads it too.
"""
from __future__ import annotations

import argparse
import json
import sys
import zlib
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from PIL import Image

from .relation_scenes import (SPLITS, TEMPLATES, Scene, _check_split, caption, hard_negatives,
                              related_pairs, render, sample_scene)

__all__ = ["NEGATIVE_KINDS", "make_example", "render_batch", "RelationScenesDataset",
           "SceneFolder", "write_split", "load_split", "main"]

NEGATIVE_KINDS = ("swap", "opposite", "attribute", "distractor", "shape")
SIZE_WORDS_P = 0.5
# Seed of the k-th fallback scene when a scene has no related pair: far above any real seed.
_FALLBACK_STRIDE = 1 << 40


def _scene_with_pairs(seed: int, split: str) -> Scene:
    for k in range(1000):
        scene = sample_scene(seed + k * _FALLBACK_STRIDE, split)
        if related_pairs(scene):
            return scene
    raise RuntimeError(f"no scene with a related pair for seed {seed}")  # never in practice


def _object_record(o) -> dict[str, Any]:
    return {"shape": o.shape, "color": o.color, "size_name": o.size_name,
            "size": round(o.size, 6), "x": round(o.x, 6), "y": round(o.y, 6)}


def make_example(seed: int, split: str = "train") -> tuple[Scene, dict[str, Any]]:
    """The scene of ``seed`` and its JSON-serialisable record.

    The scene is ``sample_scene(seed, split)``, or, if that scene has no related pair, the first
    of ``sample_scene(seed + k * 2**40, split)``, k = 1, 2, ... that has one.

    Record keys: ``seed``, ``scene_seed``, ``split``, ``caption`` (true), ``template`` (0-3),
    ``with_size``, ``negatives`` (one caption per kind of ``NEGATIVE_KINDS``, false for the
    scene, same template and size words; ``""`` where none exists), ``positives`` (canonical
    captions of every related pair: all true) and ``objects``.
    """
    _check_split(split)
    scene = _scene_with_pairs(seed, split)
    rng = np.random.default_rng([int(seed), zlib.crc32(split.encode()), zlib.crc32(b"caption")])
    pairs = related_pairs(scene)
    a, rel, b = pairs[int(rng.integers(len(pairs)))]
    template = int(rng.integers(len(TEMPLATES)))
    with_size = bool(rng.random() < SIZE_WORDS_P)
    negs = hard_negatives(scene, a, rel, b, with_size=with_size, template=template)
    record = {
        "seed": int(seed), "scene_seed": scene.seed, "split": split,
        "caption": caption(a, rel, b, template, with_size), "template": template,
        "with_size": with_size, "negatives": {k: negs.get(k, "") for k in NEGATIVE_KINDS},
        "positives": [caption(*p) for p in pairs],
        "objects": [_object_record(o) for o in scene.objects],
    }
    return scene, record


def render_batch(seeds: Sequence[int], split: str = "train", size: int = 128
                 ) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Render the examples of ``seeds``: uint8 images [n, size, size, 3] and their records
    (:func:`make_example`), in the order of ``seeds``. Single process: callers parallelise
    over seed ranges."""
    images = np.empty((len(seeds), size, size, 3), dtype=np.uint8)
    records = []
    for i, seed in enumerate(seeds):
        scene, record = make_example(seed, split)
        images[i] = np.asarray(render(scene, size))
        records.append(record)
    return images, records


def _to_tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(image.convert("RGB"), dtype=np.uint8)).permute(2, 0, 1)


def _item(image: Image.Image, record: dict[str, Any],
          transform: Callable[[Image.Image], Any] | None) -> dict[str, Any]:
    # Only fields that torch's default collate can batch (fixed keys, no ragged lists).
    return {"image": (transform or _to_tensor)(image), "caption": record["caption"],
            "negatives": dict(record["negatives"]), "seed": record["seed"]}


class RelationScenesDataset(torch.utils.data.Dataset):
    """Map-style dataset of ``n`` examples generated on the fly (no disk).

    Items are dicts: ``image`` (``transform(PIL image)``, default a uint8 tensor [3, S, S]),
    ``caption``, ``negatives`` (kind -> caption, ``""`` where none) and ``seed``. The full record
    of item ``i`` (positives, objects, template) is ``dataset.record(i)``.
    """

    def __init__(self, n: int, split: str = "train", base_seed: int = 0, size: int = 128,
                 transform: Callable[[Image.Image], Any] | None = None):
        _check_split(split)
        self.n, self.split, self.base_seed = n, split, base_seed
        self.size, self.transform = size, transform

    def __len__(self) -> int:
        return self.n

    def _check(self, i: int) -> int:
        if not 0 <= i < self.n:
            raise IndexError(f"index {i} out of range for {self.n} examples")
        return i

    def record(self, i: int) -> dict[str, Any]:
        return make_example(self.base_seed + self._check(i), self.split)[1]

    def __getitem__(self, i: int) -> dict[str, Any]:
        scene, record = make_example(self.base_seed + self._check(i), self.split)
        return _item(render(scene, self.size), record, self.transform)


# --- on disk --------------------------------------------------------------------------------

def write_split(out: str | Path, split: str = "train", n: int = 1000, base_seed: int = 0,
                size: int = 128) -> Path:
    """Write ``n`` examples as ``out/images/NNNNNN.png`` + ``out/captions.jsonl``; returns the
    JSONL path. Also writes ``out/info.json`` (split, n, base_seed, size)."""
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    path = out / "captions.jsonl"
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            scene, record = make_example(base_seed + i, split)
            name = f"images/{i:06d}.png"
            render(scene, size).save(out / name)
            f.write(json.dumps({"image": name, **record}) + "\n")
    info = {"dataset": "relation-scenes-v1", "split": split, "n": n, "base_seed": base_seed,
            "size": size}
    (out / "info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return path


def load_split(root: str | Path) -> list[dict[str, Any]]:
    """The records of a folder written by :func:`write_split`, ``image`` made absolute."""
    root = Path(root)
    path = root / "captions.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: write the split first (see write_split)")
    with path.open(encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    for r in records:
        r["image"] = str(root / r["image"])
    return records


class SceneFolder(torch.utils.data.Dataset):
    """Map-style dataset over a folder written by :func:`write_split`; items as
    :class:`RelationScenesDataset`."""

    def __init__(self, root: str | Path, transform: Callable[[Image.Image], Any] | None = None):
        self.records = load_split(root)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> dict[str, Any]:
        record = self.records[i]
        with Image.open(record["image"]) as im:
            return _item(im.convert("RGB"), record, self.transform)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m vitr_qdrant.encoders.data.scenes_dataset write --split S --n N --out DIR``."""
    p = argparse.ArgumentParser(description="Relation Scenes on disk (PNG + JSONL)")
    sub = p.add_subparsers(dest="command", required=True)
    w = sub.add_parser("write", help="render a split to a folder")
    w.add_argument("--split", choices=SPLITS, default="train")
    w.add_argument("--n", type=int, default=1000)
    w.add_argument("--out", required=True)
    w.add_argument("--seed", type=int, default=0, help="seed of the first example")
    w.add_argument("--size", type=int, default=128)
    args = p.parse_args(argv)
    path = write_split(args.out, args.split, args.n, args.seed, args.size)
    sys.stdout.write(json.dumps({"written": str(path), "n": args.n, "split": args.split}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
