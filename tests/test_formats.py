"""Real-dataset loaders, each on a tiny fixture written in the dataset's own format."""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from vitr_qdrant.encoders.data import formats as fm


def _write_json(path: Path, data) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_karpathy_coco_and_flickr(tmp_path):
    coco = _write_json(tmp_path / "dataset_coco.json", {"dataset": "coco", "images": [
        {"filepath": "val2014", "filename": "COCO_val2014_000000391895.jpg", "imgid": 0,
         "split": "test", "cocoid": 391895, "sentids": [0, 1], "sentences": [
             {"tokens": ["a", "man"], "raw": "A man with a red helmet on a small moped.",
              "imgid": 0, "sentid": 0},
             {"tokens": ["man"], "raw": "Man riding a motor bike on a dirt road. ",
              "imgid": 0, "sentid": 1}]},
        {"filepath": "train2014", "filename": "COCO_train2014_000000000009.jpg", "imgid": 1,
         "split": "restval", "cocoid": 9, "sentids": [2], "sentences": [
             {"tokens": ["food"], "raw": "Closeup of bins of food.", "imgid": 1,
              "sentid": 2}]}]})
    recs = fm.load_karpathy(coco, image_root="/data/coco")
    assert [r.split for r in recs] == ["test", "restval"]
    assert recs[0].image == str(Path("/data/coco/val2014/COCO_val2014_000000391895.jpg"))
    assert recs[0].captions[1] == "Man riding a motor bike on a dirt road."
    assert recs[0].meta["id"] == 391895
    assert [r.meta["id"] for r in fm.load_karpathy(coco, split=("train", "restval"))] == [9]

    flickr = _write_json(tmp_path / "dataset_flickr30k.json", {"dataset": "flickr30k", "images": [
        {"filename": "1000092795.jpg", "imgid": 0, "split": "train", "sentids": [0],
         "sentences": [{"raw": "Two young guys with shaggy hair look at their hands.",
                        "tokens": [], "imgid": 0, "sentid": 0}]}]})
    (rec,) = fm.load_karpathy(flickr)
    assert rec.image == str(tmp_path / "1000092795.jpg") and rec.meta["id"] == 0


def test_coco_captions(tmp_path):
    path = _write_json(tmp_path / "captions_val2014.json", {
        "info": {}, "licenses": [],
        "images": [{"id": 42, "file_name": "COCO_val2014_000000000042.jpg", "width": 640,
                    "height": 480},
                   {"id": 73, "file_name": "COCO_val2014_000000000073.jpg", "width": 640,
                    "height": 480},
                   {"id": 99, "file_name": "no_captions.jpg", "width": 1, "height": 1}],
        "annotations": [{"image_id": 42, "id": 1, "caption": "A dog on a couch."},
                        {"image_id": 73, "id": 2, "caption": "A bus."},
                        {"image_id": 42, "id": 3, "caption": "A brown dog sleeping. "}]})
    recs = fm.load_coco_captions(path, image_root=tmp_path / "val2014")
    assert [r.meta["id"] for r in recs] == [42, 73]
    assert recs[0].captions == ["A dog on a couch.", "A brown dog sleeping."]
    assert recs[0].image == str(tmp_path / "val2014" / "COCO_val2014_000000000042.jpg")
    assert fm.load_captions(path)[1].captions == ["A bus."]


def _refcocog_files(tmp_path: Path, payload=None) -> tuple[Path, Path]:
    refs = payload if payload is not None else [
        {"image_id": 581857, "split": "train", "ann_id": 1719310, "ref_id": 0,
         "category_id": 1, "file_name": "COCO_train2014_000000581857_1719310.jpg",
         "sent_ids": [0, 1], "sentences": [
             {"tokens": ["the", "lady"], "raw": "The lady with the blue shirt.",
              "sent_id": 0, "sent": "the lady with the blue shirt"},
             {"tokens": ["lady"], "raw": "lady with back to us", "sent_id": 1,
              "sent": "lady with back to us"}]},
        {"image_id": 581857, "split": "val", "ann_id": 1719311, "ref_id": 1,
         "category_id": 1, "file_name": "COCO_train2014_000000581857_1719311.jpg",
         "sent_ids": [2], "sentences": [{"tokens": ["man"], "sent": "a man in white",
                                          "sent_id": 2}]}]
    refs_path = tmp_path / "refs(umd).p"
    refs_path.write_bytes(pickle.dumps(refs, protocol=2))
    inst = _write_json(tmp_path / "instances.json", {
        "images": [{"id": 581857, "file_name": "COCO_train2014_000000581857.jpg",
                    "width": 640, "height": 427}],
        "annotations": [{"id": 1719310, "image_id": 581857, "category_id": 1,
                         "bbox": [103.9, 300.0, 130.0, 120.5], "area": 1.0, "iscrowd": 0},
                        {"id": 1719311, "image_id": 581857, "category_id": 1,
                         "bbox": [1.0, 2.0, 3.0, 4.0], "area": 1.0, "iscrowd": 0}],
        "categories": [{"id": 1, "name": "person", "supercategory": "person"}]})
    return refs_path, inst


def test_refcocog(tmp_path):
    refs_path, inst = _refcocog_files(tmp_path)
    recs = fm.load_refcocog(refs_path, inst, image_root=tmp_path / "train2014")
    assert len(recs) == 2
    assert recs[0].image == str(tmp_path / "train2014" / "COCO_train2014_000000581857.jpg")
    assert recs[0].captions == ["The lady with the blue shirt.", "lady with back to us"]
    assert recs[0].meta == {"ref_id": 0, "ann_id": 1719310, "bbox": [103.9, 300.0, 130.0, 120.5],
                            "category_id": 1}
    assert recs[1].captions == ["a man in white"]  # no "raw": the tokenised sentence
    assert [r.split for r in fm.load_refcocog(refs_path, inst, split="val")] == ["val"]


def test_refcocog_refuses_code_in_pickle(tmp_path):
    refs_path, inst = _refcocog_files(tmp_path, payload=[Path("x")])
    with pytest.raises(pickle.UnpicklingError):
        fm.load_refcocog(refs_path, inst)


def _clevr_object(size, color, material, shape, x):
    return {"size": size, "color": color, "material": material, "shape": shape,
            "3d_coords": [x, 0.0, 0.7], "rotation": 10.0, "pixel_coords": [int(x * 50), 120, 10]}


def test_clevr_relation_captions(tmp_path):
    # CLEVR: relationships[rel][i] lists the objects that are `rel` of object i.
    path = _write_json(tmp_path / "CLEVR_val_scenes.json", {
        "info": {"split": "val"}, "scenes": [{
            "image_index": 0, "image_filename": "CLEVR_val_000000.png", "split": "val",
            "objects": [_clevr_object("large", "red", "metal", "cube", -2.0),
                        _clevr_object("small", "blue", "rubber", "cylinder", 0.0),
                        _clevr_object("small", "gray", "rubber", "sphere", 2.0),
                        _clevr_object("small", "gray", "rubber", "sphere", 3.0)],
            "relationships": {"left": [[], [0], [0, 1], [0, 1, 2]],
                              "right": [[1, 2, 3], [2, 3], [3], []],
                              "front": [[1], [], [1], [1]], "behind": [[], [0, 2, 3], [], []]},
            "directions": {}}]})
    (rec,) = fm.load_clevr(path, image_root=tmp_path / "images")
    assert rec.image == str(tmp_path / "images" / "CLEVR_val_000000.png") and rec.split == "val"
    # the two small gray rubber spheres are ambiguous: only captions about unique objects.
    assert rec.captions == [
        "large red metal cube left of small blue rubber cylinder",
        "small blue rubber cylinder right of large red metal cube",
        "small blue rubber cylinder in front of large red metal cube",
        "large red metal cube behind small blue rubber cylinder",
    ]
    assert fm.load_clevr(path, max_captions=1)[0].captions == rec.captions[:1]


def test_csv_and_tsv(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text('image,caption\na.jpg,"a cat, sleeping"\nb.jpg,a dog\na.jpg,a kitten\n',
                    encoding="utf-8")
    recs = fm.load_csv(path, image_root="/imgs")
    assert [(Path(r.image).name, r.captions) for r in recs] == [
        ("a.jpg", ["a cat, sleeping", "a kitten"]), ("b.jpg", ["a dog"])]
    tsv = tmp_path / "pairs.tsv"
    tsv.write_text("file\ttext\nc.png\ta bird\n", encoding="utf-8")
    (rec,) = fm.load_captions(tsv, image_col="file", caption_col="text")
    assert rec.captions == ["a bird"] and rec.image == str(tmp_path / "c.png")
    with pytest.raises(ValueError, match="column"):
        fm.load_csv(tsv)


def test_jsonl(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in [
        {"image": "x/1.jpg", "caption": "one"}, {"image": "x/2.jpg", "caption": ["two", "2"]},
        {"image": "x/1.jpg", "caption": "uno"}]) + "\n\n", encoding="utf-8")
    recs = fm.load_captions(path)
    assert [r.captions for r in recs] == [["one", "uno"], ["two", "2"]]
    assert recs[0].image == str(tmp_path / "x" / "1.jpg")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"img": "a.jpg"}) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="bad.jsonl:1"):
        fm.load_jsonl(bad)


def test_load_captions_guesses_or_explains(tmp_path):
    clevr = _write_json(tmp_path / "scenes.json", {"scenes": []})
    assert fm.load_captions(clevr) == []
    odd = _write_json(tmp_path / "odd.json", {"something": 1})
    with pytest.raises(ValueError, match="format"):
        fm.load_captions(odd)
    with pytest.raises(ValueError, match="unknown format"):
        fm.load_captions(odd, fmt="parquet")
