"""Loaders for real image-caption datasets in their usual formats.

Every loader returns a list of :class:`ImageCaptions` records (an image path, its captions, the
split where the format has one, and format-specific extras in ``meta``). Image paths are joined
to ``image_root`` (default: the annotation file's folder); files are not opened here.

=====================  ==========================================================================
``load_karpathy``      Karpathy-split JSON of Flickr30K / COCO (``dataset_*.json``)
``load_coco_captions``  COCO captions JSON (``captions_*.json``: images + annotations)
``load_refcocog``      RefCOCOg ``refs(umd).p`` + ``instances.json``: one record per referred object
``load_clevr``         CLEVR scenes JSON: relation captions made from the scene graph
``load_csv``           CSV with an image column and a caption column
``load_jsonl``         JSONL with an image key and a caption key (string or list)
=====================  ==========================================================================
"""
from __future__ import annotations

import csv
import io
import json
import pickle
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

__all__ = ["ImageCaptions", "load_karpathy", "load_coco_captions", "load_refcocog",
           "load_clevr", "load_csv", "load_jsonl", "load_captions", "LOADERS"]


@dataclass
class ImageCaptions:
    """One image and its captions."""

    image: str
    captions: list[str]
    split: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def _root(path: str | Path, image_root: str | Path | None) -> Path:
    return Path(image_root) if image_root is not None else Path(path).parent


def _wanted(split: str | Iterable[str] | None) -> set[str] | None:
    if split is None:
        return None
    return {split} if isinstance(split, str) else set(split)


def _read_json(path: str | Path) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def load_karpathy(path: str | Path, image_root: str | Path | None = None,
                  split: str | Iterable[str] | None = None) -> list[ImageCaptions]:
    """Karpathy-split JSON: ``images[]`` with ``filename``, optional ``filepath`` (COCO's
    ``train2014`` / ``val2014``), ``split`` (train / val / test / restval) and
    ``sentences[].raw``. ``split`` filters, e.g. ``("train", "restval")``."""
    wanted = _wanted(split)
    root = _root(path, image_root)
    out = []
    for im in _read_json(path)["images"]:
        if wanted is not None and im.get("split") not in wanted:
            continue
        image = root / im.get("filepath", "") / im["filename"]
        out.append(ImageCaptions(str(image), [s["raw"].strip() for s in im["sentences"]],
                                 im.get("split"), {"id": im.get("cocoid", im.get("imgid"))}))
    return out


def load_coco_captions(path: str | Path, image_root: str | Path | None = None
                       ) -> list[ImageCaptions]:
    """COCO captions JSON: ``images[]`` (``id``, ``file_name``) and ``annotations[]``
    (``image_id``, ``caption``). Images without captions are left out."""
    data = _read_json(path)
    root = _root(path, image_root)
    caps: dict[int, list[str]] = {}
    for ann in data["annotations"]:
        caps.setdefault(ann["image_id"], []).append(ann["caption"].strip())
    return [ImageCaptions(str(root / im["file_name"]), caps[im["id"]], None, {"id": im["id"]})
            for im in data["images"] if im["id"] in caps]


class _DataOnlyUnpickler(pickle.Unpickler):
    """refs(umd).p holds only dicts, lists, strings and numbers: refuse anything that would
    import code (an ordinary pickle can run arbitrary code)."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a refs pickle")


def load_refcocog(refs_path: str | Path, instances_path: str | Path,
                  image_root: str | Path | None = None,
                  split: str | Iterable[str] | None = None) -> list[ImageCaptions]:
    """RefCOCOg: ``refs(umd).p`` (a pickled list of refs: ``ref_id``, ``ann_id``, ``image_id``,
    ``split``, ``sentences[].sent``) and ``instances.json`` (COCO images and annotations).

    One record per ref: the image it refers into, its referring expressions, and in ``meta``
    ``ref_id``, ``ann_id``, ``bbox`` ([x, y, w, h] in pixels) and ``category_id``.
    """
    with open(refs_path, "rb") as f:
        refs = _DataOnlyUnpickler(io.BytesIO(f.read()), encoding="latin1").load()
    inst = _read_json(instances_path)
    files = {im["id"]: im["file_name"] for im in inst["images"]}
    anns = {a["id"]: a for a in inst["annotations"]}
    root = _root(instances_path, image_root)
    wanted = _wanted(split)
    out = []
    for ref in refs:
        if wanted is not None and ref.get("split") not in wanted:
            continue
        ann = anns.get(ref["ann_id"], {})
        sents = [s.get("raw", s.get("sent", "")).strip() for s in ref["sentences"]]
        out.append(ImageCaptions(str(root / files[ref["image_id"]]), sents, ref.get("split"), {
            "ref_id": ref["ref_id"], "ann_id": ref["ann_id"], "bbox": ann.get("bbox"),
            "category_id": ref.get("category_id", ann.get("category_id"))}))
    return out


# CLEVR: relationships[rel][i] lists the objects that are `rel` of object i.
CLEVR_RELATIONS = {"left": "left of", "right": "right of", "front": "in front of",
                   "behind": "behind"}


def _clevr_phrase(o: dict[str, Any]) -> str:
    return " ".join(o[k] for k in ("size", "color", "material", "shape") if k in o)


def _clevr_captions(scene: dict[str, Any]) -> Iterator[str]:
    phrases = [_clevr_phrase(o) for o in scene["objects"]]
    unique = {p for p in phrases if phrases.count(p) == 1}  # a caption must name one object
    for key, words in CLEVR_RELATIONS.items():
        for i, others in enumerate(scene.get("relationships", {}).get(key, [])):
            for j in others:
                if phrases[j] in unique and phrases[i] in unique:
                    yield f"{phrases[j]} {words} {phrases[i]}"


def load_clevr(path: str | Path, image_root: str | Path | None = None,
               max_captions: int | None = None) -> list[ImageCaptions]:
    """CLEVR scenes JSON (``scenes[]`` with ``image_filename``, ``split``, ``objects[]`` and
    ``relationships``): one caption ``{A} {rel} {B}`` per related ordered pair, e.g. ``large red
    metal cube left of small gray rubber sphere`` (rel: left of, right of, in front of, behind).
    Objects that share a description with another object of the scene are not captioned.
    ``max_captions`` keeps the first ones per image."""
    root = _root(path, image_root)
    out = []
    for scene in _read_json(path)["scenes"]:
        caps = list(_clevr_captions(scene))[:max_captions]
        out.append(ImageCaptions(str(root / scene["image_filename"]), caps, scene.get("split"),
                                 {"image_index": scene.get("image_index")}))
    return out


def _group(rows: Iterable[tuple[str, str]], root: Path) -> list[ImageCaptions]:
    by_image: dict[str, list[str]] = {}
    for image, text in rows:
        by_image.setdefault(image, []).append(text)
    return [ImageCaptions(str(root / image), caps) for image, caps in by_image.items()]


def load_csv(path: str | Path, image_root: str | Path | None = None, image_col: str = "image",
             caption_col: str = "caption", delimiter: str | None = None
             ) -> list[ImageCaptions]:
    """CSV with a header (tab-separated for ``.tsv`` unless ``delimiter`` says otherwise);
    rows of the same image are grouped into one record, in file order."""
    if delimiter is None:
        delimiter = "\t" if Path(path).suffix == ".tsv" else ","
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter=delimiter)
        missing = {image_col, caption_col} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: no column {sorted(missing)}; columns: {reader.fieldnames}")
        rows = [(r[image_col], r[caption_col].strip()) for r in reader]
    return _group(rows, _root(path, image_root))


def load_jsonl(path: str | Path, image_root: str | Path | None = None, image_key: str = "image",
               caption_key: str = "caption") -> list[ImageCaptions]:
    """JSONL, one object per line; the caption value may be a string or a list of strings."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            obj = json.loads(line)
            if image_key not in obj or caption_key not in obj:
                raise ValueError(f"{path}:{n}: needs keys {image_key!r} and {caption_key!r}")
            caps = obj[caption_key]
            rows += [(obj[image_key], c) for c in ([caps] if isinstance(caps, str) else caps)]
    return _group(rows, _root(path, image_root))


LOADERS: dict[str, Callable[..., list[ImageCaptions]]] = {
    "karpathy": load_karpathy, "coco": load_coco_captions, "clevr": load_clevr,
    "csv": load_csv, "jsonl": load_jsonl,
}


def load_captions(path: str | Path, fmt: str | None = None, **kwargs: Any) -> list[ImageCaptions]:
    """Load ``path`` with the loader of ``fmt`` (see ``LOADERS``); by default ``.csv`` and
    ``.jsonl`` go by extension and a ``.json`` file by its top-level keys. RefCOCOg needs two
    files: call :func:`load_refcocog`."""
    if fmt is None:
        fmt = _guess_format(Path(path))
    if fmt not in LOADERS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {sorted(LOADERS)}")
    return LOADERS[fmt](path, **kwargs)


def _guess_format(path: Path) -> str:
    if path.suffix in (".csv", ".tsv"):
        return "csv"
    if path.suffix == ".jsonl":
        return "jsonl"
    data = _read_json(path)
    if isinstance(data, dict) and "scenes" in data:
        return "clevr"
    if isinstance(data, dict) and "annotations" in data:
        return "coco"
    if isinstance(data, dict) and "images" in data:
        return "karpathy"
    raise ValueError(f"cannot tell the format of {path}; pass fmt= one of {sorted(LOADERS)}")
