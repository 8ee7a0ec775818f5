"""The benchmark scripts run with the tiny model (fields only, not numbers)."""
from __future__ import annotations

import argparse
import runpy
from pathlib import Path

import numpy as np

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
