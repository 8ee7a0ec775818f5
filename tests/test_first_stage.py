"""The first-stage vector: the module, its fitting, model directories, collections and `vitr upgrade`."""
from __future__ import annotations

import copy
import logging

import numpy as np
import pytest
import torch

import vitr_qdrant as vq
from vitr_qdrant.connectors import create_backend
from vitr_qdrant.encoders import load_model
from vitr_qdrant.encoders.config import get_model_config
from vitr_qdrant.encoders.first_stage import FirstStage, FirstStageCfg, FitCfg, fit_first_stage, pad
from vitr_qdrant.encoders.local import late_scores
from vitr_qdrant.encoders.model import VitrModel
from vitr_qdrant.errors import StoreError
from vitr_qdrant.search import first_stage_ok
from vitr_qdrant.upgrade import upgrade_collection


@pytest.fixture(scope="module")
def staged_model(tiny_model):
    """The tiny test model with a (random) first stage; the same core weights and fingerprint."""
    cfg = copy.deepcopy(get_model_config("vitr-tiny-test"))
    cfg.first_stage = FirstStageCfg(dim=8, hidden=16)
    model = VitrModel(cfg, load_pretrained=False)
    model.load_state_dict(tiny_model.state_dict(), strict=False)
    model.head_trained = True
    return model.eval()


def test_first_stage_is_outside_the_fingerprint(tiny_model, staged_model):
    assert staged_model.fingerprint == tiny_model.fingerprint
    assert not any(k.startswith("first_stage.") for k in staged_model.core_state_dict())


def test_encodings_carry_unit_first_vectors(staged_model, tiny_model, scene_images):
    emb, txt = staged_model.encode_images(scene_images[:3]), staged_model.encode_texts(["red circle", "a b c d"])
    assert emb.first_vectors.shape == (3, 8) and txt.first_vectors.shape == (2, 8)
    np.testing.assert_allclose(np.linalg.norm(emb.first_vectors, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(emb.region_vectors, tiny_model.encode_images(scene_images[:3]).region_vectors, atol=1e-6)
    assert tiny_model.encode_images(scene_images[:1]).first_vectors is None
    # a query's vector does not depend on the padding of the batch it was encoded in
    alone = staged_model.encode_texts(["red circle"]).first_vectors[0]
    np.testing.assert_allclose(alone, txt.first_vectors[0], atol=1e-5)


def test_model_directory_keeps_the_first_stage(staged_model, tmp_path):
    staged_model.save(tmp_path / "m")
    assert (tmp_path / "m" / "first_stage.safetensors").is_file()
    again = load_model(str(tmp_path / "m"))
    assert again.first_stage.weights_sha256() == staged_model.first_stage.weights_sha256()
    assert again.fingerprint == staged_model.fingerprint
    (tmp_path / "m" / "first_stage.safetensors").unlink()   # a config naming a missing file: no first stage
    assert load_model(str(tmp_path / "m")).first_stage is None


@pytest.mark.parametrize("hard", [0, 2])
def test_fitting_follows_maxsim(hard):
    """Fitted on synthetic regions and captions, the first stage ranks images as MaxSim does far
    better than before fitting (recall of MaxSim's top 5 within its own top 10), with or without
    its own near misses in each step."""
    rng, d, n = np.random.default_rng(0), 16, 600
    concepts = rng.normal(size=(20, d))
    objects = rng.integers(0, 20, size=(n, 3))
    regions = rng.normal(scale=0.3, size=(n, 9, d))
    regions[:, :3] += concepts[objects]
    regions /= np.linalg.norm(regions, axis=-1, keepdims=True)
    tokens = [np.stack([concepts[o[0]], concepts[o[1]]]) + rng.normal(scale=0.1, size=(2, d)) for o in objects]
    words, mask = pad([t / np.linalg.norm(t, axis=-1, keepdims=True) for t in tokens])

    def recall(stage: FirstStage) -> float:
        with torch.no_grad():
            r, w, m = torch.tensor(regions, dtype=torch.float32), torch.tensor(words[:100], dtype=torch.float32), \
                torch.tensor(mask[:100])
            teacher = late_scores(w, m, r).T.numpy()
            student = (stage.encode_tokens(w, m) @ stage.encode_regions(r).T).numpy()
        top_t, top_s = np.argsort(-teacher, 1)[:, :5], np.argsort(-student, 1)[:, :10]
        return float(np.mean([len(set(a) & set(b)) / 5 for a, b in zip(top_t, top_s)]))

    torch.manual_seed(0)
    stage = FirstStage(d, FirstStageCfg(dim=16, hidden=32))
    before, sha = recall(stage), stage.weights_sha256()
    losses = fit_first_stage(stage, regions, words, mask, np.arange(n), FitCfg(steps=150, batch=128, texts=128, lr=5e-3,
                                                                                   hard=hard, pool=30, refresh=25),
                             log_every=0)
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10])
    # near misses sharpen the order among images MaxSim scores almost alike (real scenes: see
    # first_stage.json); here those ties are noise, so they only have to keep the fit's gain
    assert recall(stage) > max(0.5 if hard else 0.6, before + 0.3)
    assert stage.weights_sha256() != sha   # fitting forgets the hash of the old weights


def test_near_misses_come_from_each_captions_own_top():
    """The images a fitting step adds are drawn from each caption's top ``pool`` by the stage."""
    from vitr_qdrant.encoders.first_stage import _near_misses, encode_all_regions

    rng = np.random.default_rng(1)
    torch.manual_seed(1)
    stage = FirstStage(8, FirstStageCfg(dim=8, hidden=16))
    regions, words = rng.normal(size=(50, 4, 8)).astype(np.float32), rng.normal(size=(6, 3, 8)).astype(np.float32)
    w, m = torch.from_numpy(words), torch.ones(6, 3, dtype=torch.bool)
    index = encode_all_regions(stage, regions, chunk=16)
    picked = _near_misses(stage, w, m, index, FitCfg(hard=2, pool=5), rng)
    with torch.no_grad():
        top = np.argsort(-(stage.encode_tokens(w, m) @ stage.encode_regions(torch.from_numpy(regions)).T).numpy(), 1)
    assert len(picked) == 12 and stage.training
    for c in range(6):
        assert set(picked[2 * c:2 * c + 2]) <= set(top[c, :5])


def test_collection_searches_with_the_first_stage_and_upgrade_adds_it(staged_model, tiny_model, scene_images,
                                                                      tmp_path, caplog):
    path = tmp_path / "store"
    storage = {"regions_datatype": "float16", "hnsw_m": 8}   # kept by the upgrade
    with vq.VitrCollection("old", path=path, model=tiny_model, **storage) as col:   # made before the first stage
        ids = col.add_images(scene_images, metadata={"album": "a"}, progress=False).ids
        assert col._store.spec.first_dim is None
    with caplog.at_level(logging.WARNING):
        col = vq.VitrCollection("old", path=path, model=staged_model)
    assert "vitr upgrade -c old" in caplog.text and not first_stage_ok(col._store, staged_model)
    before = [h.id for h in col.search("red circle left of blue square", limit=8)]
    col.close()

    with create_backend(path=path) as store:
        assert upgrade_collection(store, "old", staged_model, progress=False) == len(scene_images)
    with create_backend(path=path) as store:   # a second run has nothing to do
        assert upgrade_collection(store, "old", staged_model, progress=False) == 0
    with vq.VitrCollection("old", path=path, model=staged_model) as col:
        assert first_stage_ok(col._store, staged_model) and len(col) == len(scene_images)
        assert {k: col._store.spec.metadata()["options"][k] for k in storage} == storage
        assert {r.payload["album"] for r in col.get(ids)} == {"a"}
        after = [h.id for h in col.search("red circle left of blue square", limit=8)]
        assert sorted(after) == sorted(before)   # 8 images: every one is a candidate either way
        new = col.add_images(scene_images[:2], ids=[101, 102], progress=False)
        assert new.added == 2
        got = col._store.retrieve(col._stored_ids([101]), with_vectors=True)[0]
        assert got.regions is not None


def test_interrupted_upgrade_is_refused_then_finished(staged_model, tiny_model, scene_images, tmp_path):
    path = tmp_path / "store"
    with vq.VitrCollection("photos", path=path, model=tiny_model, hnsw_ef_construct=40) as col:
        col.add_images(scene_images[:4], progress=False)
    with create_backend(path=path) as store:   # stop after the first copy, as a kill there would
        from vitr_qdrant import upgrade

        calls = []
        real = upgrade._copy

        def copy_then_die(src, dst, model, what, progress):
            calls.append(what)
            if len(calls) == 2:
                raise KeyboardInterrupt
            return real(src, dst, model, what, progress)

        upgrade._copy = copy_then_die
        try:
            with pytest.raises(KeyboardInterrupt):
                upgrade_collection(store, "photos", staged_model, progress=False)
        finally:
            upgrade._copy = real
    with pytest.raises(StoreError, match="vitr upgrade -c photos"):
        vq.VitrCollection("photos", path=path, model=staged_model)
    with create_backend(path=path) as store:
        assert upgrade_collection(store, "photos", staged_model, progress=False) == 4
        assert store.list_collections() == ["photos"]
    with vq.VitrCollection("photos", path=path, model=staged_model) as col:
        assert len(col) == 4 and first_stage_ok(col._store, staged_model)
        assert col.info()["stored"]["options"]["hnsw_ef_construct"] == 40   # the resumed run kept it


def test_vitr_upgrade_command(staged_model, tiny_model, scene_images, tmp_path, capsys):
    from vitr_qdrant.cli import main

    staged_model.save(tmp_path / "model")
    with vq.VitrCollection("photos", path=tmp_path / "store", model=tiny_model) as col:
        col.add_images(scene_images[:3], progress=False)
    args = ["upgrade", "-c", "photos", "--path", str(tmp_path / "store"), "--model", str(tmp_path / "model")]
    assert main(args) == 0
    assert "added to 3 images" in capsys.readouterr().out
    assert main(args) == 0
    assert "already" in capsys.readouterr().out
    assert main(["upgrade", "-c", "photos", "--path", str(tmp_path / "nowhere")]) == 2


def test_fit_first_stage_command_writes_a_model_with_it(tmp_path, capsys):
    """The fitting command end to end on a tiny random model: a model directory whose first stage
    loads, and a report with the check against the global vector."""
    import json

    from vitr_qdrant.encoders import fit_first_stage

    out = tmp_path / "model"
    assert fit_first_stage.main(["--model", "vitr-tiny-test", "--out", str(out), "--images", "24", "--steps", "3",
                                 "--batch", "16", "--texts", "8", "--dim", "8", "--hidden", "16", "--check", "20",
                                 "--queries", "6", "--threads", "1", "--cache", str(tmp_path / "cache")]) == 0
    report = json.loads((out / "first_stage.json").read_text())
    assert report["check"]["queries"] == 6 and set(report["check"]) >= {"first", "global"}
    model = load_model(str(out))
    assert model.first_stage is not None and model.first_stage.cfg.dim == 8
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["test-iid-1000000000-0000000.npz",
                                                                       "train-7000000-0000000.npz"]
    # --init goes on from that first stage (its size, not --dim's), with near misses
    again = tmp_path / "model2"
    assert fit_first_stage.main(["--model", str(out), "--init", "--out", str(again), "--images", "24", "--steps", "2",
                                 "--batch", "16", "--texts", "8", "--dim", "4", "--hard", "2", "--pool", "5",
                                 "--check", "20", "--queries", "6", "--threads", "1",
                                 "--cache", str(tmp_path / "cache")]) == 0
    report = json.loads((again / "first_stage.json").read_text())
    assert report["init"] and report["fit"]["hard"] == 2 and report["first_stage"]["dim"] == 8
    refit = load_model(str(again))
    assert refit.first_stage.cfg.dim == 8
    assert refit.first_stage.weights_sha256() != model.first_stage.weights_sha256()
    with pytest.raises(SystemExit, match="no first stage"):
        fit_first_stage.main(["--model", "vitr-tiny-test", "--init", "--out", str(tmp_path / "x"), "--images", "24",
                              "--steps", "1", "--cache", str(tmp_path / "cache")])


def test_demo_rebuilds_a_store_left_without_the_models_first_stage(staged_model, tiny_model, scene_images,
                                                                    tmp_path, capsys):
    """A demo store written before the model had (this) first stage is rebuilt, not searched with
    stage 1 on the global vector."""
    from vitr_qdrant.demo.run import _open_store

    path = tmp_path / "store"
    with _open_store(path, tiny_model, "demo") as col:
        col.add_images(scene_images[:3], progress=False)
    with _open_store(path, staged_model, "demo") as col:
        assert "without this model's first stage: rebuilding" in capsys.readouterr().out
        assert first_stage_ok(col._store, staged_model) and len(col) == 0
    with _open_store(path, staged_model, "demo") as col:   # now it has it: kept
        assert "rebuilding" not in capsys.readouterr().out
