"""The benchmark scripts run with the tiny model (fields only, not numbers); the first-stage one with the
default model, the one with a first stage."""
from __future__ import annotations

import argparse
import runpy
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def test_bench_quality_fields(tiny_model):
    result = runpy.run_path(str(BENCH / "bench_quality.py"))["run"](tiny_model, n=20, modes=("vitr", "global"))
    assert set(result["splits"]) == {"test-iid", "test-comp"}
    for split in result["splits"].values():
        assert split["images"] == 20 and split["bytes_per_image"] > 0
        for mode in ("vitr", "global"):
            row = split[mode]
            assert set(row["store"]) == set(row["exhaustive"]) == {"t2i_r1", "t2i_r5", "t2i_r10"}
            assert 0 <= row["store"]["t2i_r1"] <= row["store"]["t2i_r10"] <= 100
            assert row["r10_gap"] == 0   # a gallery of 20 fits in every stage: nothing to lose


def test_bench_ingest_fields(tmp_path):
    bench = runpy.run_path(str(BENCH / "bench_ingest.py"))
    args = argparse.Namespace(device="cpu", model="vitr-tiny-test", n=12, width=80, height=60, batch_size=4,
                              workers=2, decoder="torchvision", no_stages=False)
    out = bench["run"](args, tmp_path)
    assert out["added"] == 12 and out["failed"] == 0 and out["path"] == "device" and out["images_per_s"] > 0
    assert set(out["stages"]) == {"decode_resize_images_per_s", "encode_images_per_s", "store_upsert_images_per_s"}


def test_bench_ingest_scenes_fields(tmp_path):
    bench = runpy.run_path(str(BENCH / "bench_ingest.py"))
    args = argparse.Namespace(device="cpu", model="vitr-tiny-test", weights="random", images="scenes", n=6, size=96,
                              width=0, height=0, batch_size=4, workers=2, decoder="auto", no_stages=False, repeat=2)
    out = bench["run"](args, tmp_path)
    assert (out["added"], out["failed"], out["path"], out["image"]) == (6, 0, "pil", "Object Scenes 96x96 PNG")
    assert len(out["runs_images_per_s"]) == len(out["runs_cpu_ms_per_image"]) == 2 and out["cpu_ms_per_image"] > 0
    assert out["images_per_s"] in out["runs_images_per_s"]
    assert "stages" not in out and len(list((tmp_path / "images").glob("*.png"))) == 6


def test_other_renderer_draws_the_same_scenes():
    from vitr_qdrant.datasets.relation_scenes import render, sample_scene
    other = runpy.run_path(str(BENCH / "bench_renderer_shift.py"))["render_other"]
    for seed in range(12):
        scene = sample_scene(seed, "test-iid")
        a = np.asarray(render(scene, 96), dtype=float)
        b = np.asarray(other(scene, 96), dtype=float)
        assert np.abs(a - b).mean() < 8   # noise (sigma <= 6, drawn twice) and edges differ
        for obj in scene.objects:   # the centre of every object has its colour in both
            y, x = int(obj.y * 96), int(obj.x * 96)
            assert np.abs(b[y, x] - obj.rgb).max() < 30 and np.abs(a[y, x] - obj.rgb).max() < 30


def test_bench_renderer_shift_fields(tiny_model):
    result = runpy.run_path(str(BENCH / "bench_renderer_shift.py"))["run"](tiny_model, n=12, n_pairs=4,
                                                                           splits=("test-iid",))
    row = result["splits"]["test-iid"]
    assert set(row) == {"project", "other", "drop"}
    assert set(row["other"]["vitr"]) == {"t2i_r1", "t2i_r10", "rsum", "swap_acc", "pair_group"}
    assert row["drop"]["global"]["rsum"] == round(row["project"]["global"]["rsum"] - row["other"]["global"]["rsum"], 2)


def _box(image: np.ndarray, obj, size: int) -> np.ndarray:
    """Pixels of ``obj``'s bounding square (side = size, centred on its centre)."""
    lo = lambda c: max(0, int(round((c - obj.size / 2) * size)))   # noqa: E731
    hi = lambda c: min(size, int(round((c + obj.size / 2) * size)))  # noqa: E731
    return image[lo(obj.y):hi(obj.y), lo(obj.x):hi(obj.x)].reshape(-1, 3)


def test_other_object_renderer_draws_the_same_scenes():
    import dataclasses

    from vitr_qdrant.datasets.object_scenes import render, sample_scene
    other = runpy.run_path(str(BENCH / "bench_renderer_shift.py"))["render_other"]
    diffs, turned, flipped = [], [], []
    for seed in range(10):
        scene = sample_scene(seed, ("test-iid", "test-comp")[seed % 2])
        scene = dataclasses.replace(scene, noise_sigma=0.0)
        a = np.asarray(render(scene, 96), dtype=float)
        b = np.asarray(other(scene, 96), dtype=float)
        diffs.append(np.abs(a - b).mean())
        assert diffs[-1] < 4.5, (seed, diffs[-1])   # measured 1.0-3.5: sprite edges differ
        for obj in scene.objects:   # every object at its place, the same colours in its box
            box_a, box_b = _box(a, obj, 96), _box(b, obj, 96)
            assert np.abs(box_a.mean(0) - box_b.mean(0)).max() < 8, (seed, obj.category)
            assert np.abs(box_a - box_b).mean() < 20, (seed, obj.category)
        for out, change in ((turned, lambda o: dataclasses.replace(o, angle=-o.angle)),
                            (flipped, lambda o: dataclasses.replace(o, mirrored=not o.mirrored))):
            wrong = dataclasses.replace(scene, objects=tuple(change(o) for o in scene.objects))
            out.append(np.abs(a - np.asarray(other(wrong, 96), dtype=float)).mean())
    # measured 1.8 here; sprites turned the other way 4.2, mirrored the other way 5.8
    assert np.mean(diffs) < 2.5
    assert np.mean(diffs) < np.mean(turned) - 1 and np.mean(diffs) < np.mean(flipped) - 1


def test_other_object_renderer_noise():
    import dataclasses

    from vitr_qdrant.datasets.object_scenes import sample_scene
    other = runpy.run_path(str(BENCH / "bench_renderer_shift.py"))["render_other"]
    scene = sample_scene(3, "test-iid")
    flat = dataclasses.replace(scene, objects=(), noise_sigma=5.0,
                               background=dataclasses.replace(scene.background, kind="flat",
                                                              colors=((100.0,) * 3, (100.0,) * 3)))
    noisy = np.asarray(other(flat, 96), dtype=float) - 100
    assert (noisy[..., 0] == noisy[..., 1]).all() and (noisy[..., 1] == noisy[..., 2]).all()
    assert 4.5 < noisy.std() < 5.5 and abs(noisy.mean()) < 0.5
    assert (np.asarray(other(dataclasses.replace(flat, noise_sigma=0.0), 96)) == 100).all()


def test_bench_renderer_shift_object_scenes_fields():
    import torch

    from vitr_qdrant.datasets.object_scenes import ART_SETS
    from vitr_qdrant.encoders import create_model

    torch.manual_seed(0)
    model = create_model("vitr-tiny-objects", device="cpu")
    model.head_trained = True
    result = runpy.run_path(str(BENCH / "bench_renderer_shift.py"))["run"](model, n=8, n_pairs=4,
                                                                           splits=("test-comp",))
    assert result["world"] == "object-scenes"   # the model's own world by default
    row = result["splits"]["test-comp"]
    assert set(row) == {"project", "other", "drop"}
    keys = {"t2i_r1", "t2i_r10", "rsum", "swap_acc", "pair_group", "distractor_acc"}
    for renderer in ("project", "other"):
        for mode in ("vitr", "global"):
            figures = row[renderer][mode]
            assert set(figures) == keys | {"by_art"}
            assert 0 <= figures["t2i_r1"] <= figures["t2i_r10"] <= 100
            assert figures["by_art"] and set(figures["by_art"]) <= set(ART_SETS)
            for art in figures["by_art"].values():
                assert set(art) == keys
    drop, project, other = row["drop"]["vitr"], row["project"]["vitr"], row["other"]["vitr"]
    assert drop["rsum"] == round(project["rsum"] - other["rsum"], 2)
    assert set(drop["by_art"]) == set(project["by_art"])


def test_bench_scale_fields(tmp_path):
    bench = runpy.run_path(str(BENCH / "bench_scale.py"))
    assert bench["shapes"]("vitr-scenes-s") == (128, 64, 64)
    out = bench["run"](300, tmp_path / "store", D=8, R=4, d=4, batch=25, optimize_every=100)
    assert out["points"] == 300 and len(out["rebuilds"]) == 3 and out["longest_stall_s"] >= max(out["rebuilds"])
    assert set(out) >= {"total_s", "points_per_s", "p50_upsert_ms", "search_ms_p50", "bytes_per_point"}


def test_bench_memory_fields(tmp_path, tiny_model):
    from vitr_qdrant.encoders import save_model

    bench = runpy.run_path(str(BENCH / "bench_memory.py"))
    files = bench["write_images"](tmp_path / "images", 2, 300, 200)
    assert [f.suffix for f in files] == [".png", ".jpg"]
    out = bench["measure"](str(tmp_path / "store"), str(save_model(tiny_model, tmp_path / "model")), 2,
                           [str(f) for f in files])
    assert out["added"] == 2 and out["failed"] == [] and out["model_input"] == 32
    assert out["rss_peak_mb"] >= out["rss_before_mb"] > 0


def test_bench_batch_fields(tiny_model):
    result = runpy.run_path(str(BENCH / "bench_batch.py"))["run"](tiny_model, images=6, queries=5, repeats=1)
    assert result["same_results"] is True and result["queries"] == 5
    assert result["loop_queries_per_s"] > 0 and result["batch_queries_per_s"] > 0 and result["speedup"] > 0


@pytest.mark.slow   # about 30 s: the default model loaded four times, 40 scenes rendered and encoded
def test_bench_first_stage_stages_and_rebuild_fields(tmp_path):
    """``stages`` and ``rebuild`` of the first-stage benchmark on 40 cached scenes of the default model."""
    import json

    bench = runpy.run_path(str(BENCH / "bench_first_stage.py"))
    cache, work = tmp_path / "cache", tmp_path / "work"
    assert bench["main"](["cache", "--n", "40", "--cache", str(cache)]) == 0
    out = tmp_path / "rebuild.json"
    assert bench["main"](["rebuild", "--n", "40", "--rounds", "1", "--cache", str(cache), "--workdir", str(work),
                          "--out", str(out)]) == 0
    rebuild = json.loads(out.read_text())
    assert rebuild["points"] == 40
    for name in ("no HNSW", "global HNSW", "first HNSW", "both (the default)"):
        assert len(rebuild[name]["optimize_s"]) == 1 and rebuild[name]["median_s"] >= 0

    model = bench["load_model"](None)
    g, r = bench["load_gallery"](cache, 40)
    bench["write_cached"](work / "store", "latency", model, g, r)
    out = tmp_path / "stages.json"
    assert bench["main"](["stages", "--n", "40", "--path", str(work / "store"), "--queries", "4",
                          "--configs", "20/10", "12/10", "--out", str(out)]) == 0
    stages = json.loads(out.read_text())
    assert stages["captions"] == 4 and set(stages) >= {"20/10", "12/10", "exact", "global"}
    for name in ("20/10", "12/10", "exact", "global"):
        row = stages[name]
        assert 0 <= row["success_at_1"] <= row["success_at_10"] <= 100 and row["p95_ms"] >= row["p50_ms"] > 0
    assert stages["exact"]["success_at_10"] == 100   # each caption is true for the scene it was drawn from
