"""Shared fixtures: a tiny random-init model with its head marked trained, and small scenes."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_model():
    """``vitr-tiny-test`` on CPU; ``head_trained`` set so every mode runs (weights are random)."""
    import torch

    from vitr_qdrant.encoders import create_model

    torch.manual_seed(0)
    model = create_model("vitr-tiny-test", device="cpu")
    model.head_trained = True
    return model


@pytest.fixture(scope="session")
def scene_images():
    """Eight small Relation Scenes renders (PIL, 64 px)."""
    from vitr_qdrant.datasets.relation_scenes import render, sample_scene

    return [render(sample_scene(1000 + i, "test-iid"), 64) for i in range(8)]


@pytest.fixture(scope="session")
def scene_files(tmp_path_factory, scene_images):
    """The first six scenes saved as PNG files ``0.png`` .. ``5.png`` (paths in that order)."""
    folder = tmp_path_factory.mktemp("scene-files")
    paths = [folder / f"{i}.png" for i in range(6)]
    for img, path in zip(scene_images, paths):
        img.save(path)
    return paths
