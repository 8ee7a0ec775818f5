"""``vitr drop``, and search parameters checked by the command line before anything loads."""
from __future__ import annotations

import json

import pytest

import vitr_qdrant as vq
from vitr_qdrant.cli import main


@pytest.fixture()
def store(tmp_path, tiny_model, scene_images):
    path = tmp_path / "store"
    with vq.VitrCollection("pics", path=path, model=tiny_model) as col:
        col.add_images(scene_images[:4], ids=[1, 2, 3, 4], progress=False)
        col.add_texts(["red circle"])
    return path


@pytest.fixture()
def model_dir(tmp_path, tiny_model):
    return str(tiny_model.save(tmp_path / "model"))


def test_drop_asks_and_keeps_the_collection_on_no(store, monkeypatch, capsys):
    monkeypatch.setattr("builtins.input", lambda prompt: "n")
    assert main(["drop", "-c", "pics", "--path", str(store)]) == 1
    assert "nothing deleted" in capsys.readouterr().out
    assert vq.list_collections(path=store) == ["pics"]


def test_drop_yes_leaves_nothing_on_disk(store, monkeypatch, capsys):
    monkeypatch.setattr("builtins.input", lambda prompt: pytest.fail("asked despite --yes"))
    assert main(["drop", "-c", "pics", "--path", str(store), "--yes"]) == 0
    assert list(store.iterdir()) == []
    assert main(["drop", "-c", "pics", "--path", str(store), "--yes"]) == 2   # a usage error: no such collection
    assert "no collection 'pics'" in capsys.readouterr().err


@pytest.mark.parametrize("bad", [["-k", "0"], ["-k", "5000"], ["--offset", "-3"], ["--prefetch", "0"],
                                 ["--candidates", "0"], ["--score-threshold", "nan"]])
def test_bad_search_parameters_fail_before_the_model_loads(store, bad, monkeypatch, capsys):
    import vitr_qdrant.encoders as encoders

    monkeypatch.setattr(encoders, "load_model", lambda *a, **k: pytest.fail("the model loaded first"))
    assert main(["search", "red circle", "-c", "pics", "--path", str(store), *bad]) == 2
    assert "must be" in capsys.readouterr().err


def test_search_pages_and_thresholds(store, model_dir, capsys):
    args = ["-c", "pics", "--path", str(store), "--model", model_dir, "--json"]
    assert main(["search", "red circle left of blue square", "-k", "4", *args]) == 0
    full = json.loads(capsys.readouterr().out)
    assert main(["search", "red circle left of blue square", "-k", "2", "--offset", "1", *args]) == 0
    assert [h["id"] for h in json.loads(capsys.readouterr().out)] == [h["id"] for h in full[1:3]]
    cut = full[1]["score"] - 1e-6
    assert main(["search", "red circle left of blue square", "--score-threshold", str(cut), *args]) == 0
    assert [h["id"] for h in json.loads(capsys.readouterr().out)] == [h["id"] for h in full[:2]]
    assert "probability" in full[0]


def test_without_model_the_cli_opens_with_the_recorded_model(tmp_path, model_dir, scene_images, capsys):
    model = vq.load_model(model_dir, device="cpu")
    with vq.VitrCollection("mine", path=tmp_path / "s", model=model) as col:
        col.add_images(scene_images[:3], progress=False)
    assert main(["search", "red circle", "-c", "mine", "--path", str(tmp_path / "s"), "--json", "-k", "2"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 2   # the bundled default would be a fingerprint mismatch


def test_index_refuses_a_bad_collection_name_before_the_model_loads(tmp_path, scene_images, monkeypatch, capsys):
    import vitr_qdrant.encoders as encoders

    scene_images[0].save(tmp_path / "a.png")
    monkeypatch.setattr(encoders, "load_model", lambda *a, **k: pytest.fail("the model loaded first"))
    assert main(["index", str(tmp_path / "a.png"), "-c", "bad name!", "--path", str(tmp_path / "s"), "--no-progress"]) == 2
    assert "collection name" in capsys.readouterr().err
