"""Calibrated probabilities: the Platt fit, its place in config.json (fingerprint unchanged), hit.probability."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

import vitr_qdrant as vq
from vitr_qdrant.encoders.calibration import calibration_error, fit_platt, labelled_scores, write_calibration
from vitr_qdrant.encoders.factory import WEIGHTS_DIR


def test_fit_recovers_a_known_logistic_law():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=40_000) * 2
    labels = rng.random(40_000) < 1 / (1 + np.exp(-(1.5 * scores - 2.0)))
    a, b = fit_platt(scores, labels)
    assert a == pytest.approx(1.5, abs=0.1) and b == pytest.approx(-2.0, abs=0.1)
    fitted = 1 / (1 + np.exp(-(a * scores + b)))
    assert calibration_error(fitted, labels)["ece"] < 0.02
    assert calibration_error(np.full_like(fitted, 0.9), labels)["ece"] > 0.5


def test_separable_labels_still_give_finite_values():
    a, b = fit_platt(np.array([-2.0, -1.0, 1.0, 2.0]), np.array([False, False, True, True]))
    assert math.isfinite(a) and math.isfinite(b) and a > 0


def test_labelled_scores_mark_each_caption_true_for_its_image(tiny_model):
    scores, holds = labelled_scores(tiny_model, "late", n_images=4, seed=5, size=64)
    assert scores.shape == holds.shape and holds.sum() >= 4 and (~holds).sum() > 12


def test_writing_the_calibration_keeps_the_fingerprint_and_gives_hit_probabilities(tmp_path, tiny_model, scene_images):
    directory = tiny_model.save(tmp_path / "model")
    before = vq.load_model(directory, device="cpu").fingerprint
    write_calibration(directory, {"vitr": [2.0, -1.0]})
    model = vq.load_model(directory, device="cpu")
    assert model.fingerprint == before
    assert json.loads((directory / "config.json").read_text())["calibration"] == {"vitr": [2.0, -1.0]}
    assert model.probability(0.5, "vitr") == pytest.approx(0.5) and model.probability(0.5, "late") is None
    with vq.VitrCollection("cal", path=tmp_path / "store", model=model) as col:
        col.add_images(scene_images[:4], progress=False)
        hits = col.search("red circle left of blue square", mode="vitr")
        assert [h.probability for h in hits] == pytest.approx([1 / (1 + math.exp(-(2 * h.score - 1))) for h in hits])
        assert all(h.probability is None for h in col.search("red circle", mode="late"))
        assert all(h.probability is None for h in col.search_by_image(scene_images[0]))


@pytest.mark.parametrize("name", ["vitr-objects-s", "vitr-scenes-s"])
def test_bundled_models_are_calibrated_in_every_mode(name):
    config = json.loads((WEIGHTS_DIR / name / "config.json").read_text())
    assert set(config["calibration"]) == {"vitr", "late", "global"}
    assert all(a > 0 for a, _ in config["calibration"].values())   # a higher score means more likely true
