"""Relation Scenes as training data: examples, arrays, torch datasets, PNG + JSONL on disk."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from vitr_qdrant.datasets.relation_scenes import (HELD_OUT, parse_caption, related_pairs, render,
                                                  sample_scene, truth)
from vitr_qdrant.encoders.data import scenes_dataset as sd
from vitr_qdrant.encoders.data.formats import load_jsonl


def test_make_example_is_true_with_false_negatives():
    templates, sizes = set(), set()
    for seed in range(60):
        scene, rec = sd.make_example(seed, "train")
        assert rec == sd.make_example(seed, "train")[1]
        assert truth(scene, rec["caption"]) is True
        assert set(rec["negatives"]) == set(sd.RELATION_SCENES.negative_kinds)
        assert rec["negatives"]["swap"] and rec["negatives"]["opposite"]
        assert all(truth(scene, n) is False for n in rec["negatives"].values() if n)
        assert rec["positives"] and all(truth(scene, p) is True for p in rec["positives"])
        assert len(rec["objects"]) == len(scene.objects)
        templates.add(rec["template"])
        sizes.add(rec["with_size"])
        json.dumps(rec)
    assert templates == {0, 1, 2, 3} and sizes == {False, True}


def test_make_example_test_comp_captions_a_held_out_pair():
    for seed in range(30):
        _, rec = sd.make_example(seed, "test-comp")
        (_, *a), _, (_, *b) = parse_caption(rec["caption"])
        assert tuple(a) in HELD_OUT or tuple(b) in HELD_OUT


def test_scene_without_related_pair_falls_back_deterministically():
    seed = next(s for s in range(1000) if not related_pairs(sample_scene(s, "train")))
    scene, rec = sd.make_example(seed, "train")
    assert rec["seed"] == seed and rec["scene_seed"] == scene.seed != seed
    assert related_pairs(scene)


def test_make_example_rejects_unknown_split():
    with pytest.raises(ValueError):
        sd.make_example(0, "dev")


def test_render_batch_matches_render():
    images, records = sd.render_batch([5, 6, 7], "test-iid", size=64)
    assert images.shape == (3, 64, 64, 3) and images.dtype == np.uint8
    scene, rec = sd.make_example(6, "test-iid")
    assert records[1] == rec
    assert (images[1] == np.asarray(render(scene, 64))).all()


def test_dataset_items_and_collate():
    ds = sd.RelationScenesDataset(6, "train", base_seed=100, size=64)
    assert len(ds) == 6
    item = ds[2]
    assert item["image"].shape == (3, 64, 64) and item["image"].dtype == torch.uint8
    assert item["caption"] == ds.record(2)["caption"] and item["seed"] == 102
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert batch["image"].shape == (4, 3, 64, 64) and len(batch["negatives"]["swap"]) == 4
    with pytest.raises(IndexError):
        ds[6]
    custom = sd.RelationScenesDataset(2, size=64, transform=lambda im: im.size)
    assert custom[0]["image"] == (64, 64)


def test_write_and_load_split(tmp_path):
    path = sd.write_split(tmp_path, "test-comp", n=5, base_seed=3, size=64)
    assert path == tmp_path / "captions.jsonl"
    info = json.loads((tmp_path / "info.json").read_text())
    assert info["split"] == "test-comp" and info["n"] == 5 and info["size"] == 64
    records = sd.load_split(tmp_path)
    scene, rec = sd.make_example(4, "test-comp")
    assert records[1]["caption"] == rec["caption"]
    assert np.array_equal(np.asarray(Image.open(records[1]["image"])),
                          np.asarray(render(scene, 64)))
    folder = sd.SceneFolder(tmp_path)
    assert len(folder) == 5 and folder[1]["caption"] == rec["caption"]
    on_the_fly = sd.RelationScenesDataset(5, "test-comp", base_seed=3, size=64)
    assert torch.equal(folder[1]["image"], on_the_fly[1]["image"])
    plain = load_jsonl(path)  # the generic JSONL loader reads the folder too
    assert [r.captions[0] for r in plain] == [r["caption"] for r in records]


def test_load_split_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError):
        sd.load_split(tmp_path)


def test_write_command(tmp_path, capsys):
    assert sd.main(["write", "--split", "train", "--n", "2", "--out", str(tmp_path),
                    "--size", "64"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 2
    assert sorted(p.name for p in (tmp_path / "images").iterdir()) == ["000000.png", "000001.png"]
