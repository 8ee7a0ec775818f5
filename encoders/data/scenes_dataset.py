"""Scenes of either world as training data: on the fly from seeds, as arrays, or as PNG + JSONL.

Item ``i`` of a dataset with ``base_seed`` is the example of seed ``base_seed + i``
(:func:`make_example`): the first scene of that seed's stream with a related pair, one of its
pairs picked at random, a caption about it (the world's one caption sampler: random template,
size words sometimes), and its hard negatives in the same surface form. Deterministic per seed.

Write a split to disk::

    python -m vitr_qdrant.encoders.data.scenes_dataset write --world object-scenes \
        --split train --n 1000 --out DIR

``DIR/captions.jsonl`` has one record per image (``image`` is a path relative to ``DIR``,
``caption``, ``negatives``, ...), so the plain JSONL loader of ``formats`` reads it too.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from PIL import Image

from .relation_scenes import WORLD as RELATION_SCENES
from .world import SPLITS, World, check_split, split_rng
from .worlds import WORLD_NAMES, get_world

__all__ = ["make_example", "render_batch", "ScenesDataset",
           "RelationScenesDataset", "ObjectScenesDataset", "SceneFolder", "write_split",
           "load_split", "main"]

def _object_record(o) -> dict[str, Any]:
    return {k: round(v, 6) if isinstance(v, float) else v for k, v in asdict(o).items()}


def make_example(seed: int, split: str = "train", world: str | World = RELATION_SCENES
                 ) -> tuple[Any, dict[str, Any]]:
    """The scene of ``seed`` and its JSON-serialisable record.

    The scene is the first of ``sample_scene(seed + k * 2**40, split)``, k = 0, 1, ... that
    has a related pair (:meth:`World.first_scene`).

    Record keys: ``seed``, ``scene_seed``, ``split``, ``world``, ``caption`` (true),
    ``template`` (0-based), ``with_size``, ``negatives`` (one caption per kind of the world's
    ``negative_kinds``, false for the scene, same template and size words; ``""`` where none
    exists), ``positives`` (canonical captions of every related pair: all true), ``objects``
    and, in Object Scenes, ``art``.
    """
    world = get_world(world)
    check_split(split)
    scene = world.first_scene(seed, split)
    rng = split_rng(seed, split, "caption")
    (a, rel, b), template, with_size = world.sample_caption(scene, rng)
    negs = world.hard_negatives(scene, a, rel, b, with_size=with_size, template=template)
    record = {
        "seed": int(seed), "scene_seed": scene.seed, "split": split, "world": world.name,
        "caption": world.caption(a, rel, b, template, with_size), "template": template,
        "with_size": with_size, "negatives": {k: negs.get(k, "") for k in world.negative_kinds},
        "positives": [world.caption(*p) for p in world.related_pairs(scene)],
        "objects": [_object_record(o) for o in scene.objects],
    }
    if hasattr(scene, "art"):
        record["art"] = scene.art
    return scene, record


def render_batch(seeds: Sequence[int], split: str = "train", size: int = 128,
                 world: str | World = RELATION_SCENES) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Render the examples of ``seeds``: uint8 images [n, size, size, 3] and their records
    (:func:`make_example`), in the order of ``seeds``. Single process: callers parallelise
    over seed ranges."""
    world = get_world(world)
    images = np.empty((len(seeds), size, size, 3), dtype=np.uint8)
    records = []
    for i, seed in enumerate(seeds):
        scene, record = make_example(seed, split, world)
        images[i] = np.asarray(world.render(scene, size))
        records.append(record)
    return images, records


def _to_tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(image.convert("RGB"), dtype=np.uint8)).permute(2, 0, 1)


def _item(image: Image.Image, record: dict[str, Any],
          transform: Callable[[Image.Image], Any] | None) -> dict[str, Any]:
    # Only fields that torch's default collate can batch (fixed keys, no ragged lists).
    return {"image": (transform or _to_tensor)(image), "caption": record["caption"],
            "negatives": dict(record["negatives"]), "seed": record["seed"]}


class ScenesDataset(torch.utils.data.Dataset):
    """Map-style dataset of ``n`` examples of a world generated on the fly (no disk).

    Items are dicts: ``image`` (``transform(PIL image)``, default a uint8 tensor [3, S, S]),
    ``caption``, ``negatives`` (kind -> caption, ``""`` where none) and ``seed``. The full record
    of item ``i`` (positives, objects, template) is ``dataset.record(i)``.
    """

    default_world = RELATION_SCENES.name

    def __init__(self, n: int, split: str = "train", base_seed: int = 0, size: int = 128,
                 transform: Callable[[Image.Image], Any] | None = None,
                 world: str | World | None = None):
        check_split(split)
        self.world = get_world(world or self.default_world)
        self.n, self.split, self.base_seed = n, split, base_seed
        self.size, self.transform = size, transform

    def __len__(self) -> int:
        return self.n

    def _check(self, i: int) -> int:
        if not 0 <= i < self.n:
            raise IndexError(f"index {i} out of range for {self.n} examples")
        return i

    def record(self, i: int) -> dict[str, Any]:
        return make_example(self.base_seed + self._check(i), self.split, self.world)[1]

    def __getitem__(self, i: int) -> dict[str, Any]:
        scene, record = make_example(self.base_seed + self._check(i), self.split, self.world)
        return _item(self.world.render(scene, self.size), record, self.transform)


class RelationScenesDataset(ScenesDataset):
    """:class:`ScenesDataset` of Relation Scenes."""


class ObjectScenesDataset(ScenesDataset):
    """:class:`ScenesDataset` of Object Scenes."""

    default_world = "object-scenes"


# --- on disk --------------------------------------------------------------------------------

def write_split(out: str | Path, split: str = "train", n: int = 1000, base_seed: int = 0,
                size: int = 128, world: str | World = RELATION_SCENES) -> Path:
    """Write ``n`` examples as ``out/images/NNNNNN.png`` + ``out/captions.jsonl``; returns the
    JSONL path. Also writes ``out/info.json`` (world, split, n, base_seed, size)."""
    world = get_world(world)
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    path = out / "captions.jsonl"
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            scene, record = make_example(base_seed + i, split, world)
            name = f"images/{i:06d}.png"
            world.render(scene, size).save(out / name)
            f.write(json.dumps({"image": name, **record}) + "\n")
    info = {"dataset": f"{world.name}-v1", "world": world.name, "split": split, "n": n, "base_seed": base_seed,
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
    :class:`ScenesDataset`."""

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
    """``python -m vitr_qdrant.encoders.data.scenes_dataset write [--world W] --split S --n N
    --out DIR``."""
    p = argparse.ArgumentParser(description="Relation or Object Scenes on disk (PNG + JSONL)")
    sub = p.add_subparsers(dest="command", required=True)
    w = sub.add_parser("write", help="render a split to a folder")
    w.add_argument("--world", choices=WORLD_NAMES, default=RELATION_SCENES.name)
    w.add_argument("--split", choices=SPLITS, default="train")
    w.add_argument("--n", type=int, default=1000)
    w.add_argument("--out", required=True)
    w.add_argument("--seed", type=int, default=0, help="seed of the first example")
    w.add_argument("--size", type=int, default=128)
    args = p.parse_args(argv)
    path = write_split(args.out, args.split, args.n, args.seed, args.size, args.world)
    sys.stdout.write(json.dumps({"written": str(path), "n": args.n, "split": args.split}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
