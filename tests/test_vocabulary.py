"""Honest vocabulary: a model says which query words it does not know, and what it was trained on."""
from __future__ import annotations

import logging

import pytest

import vitr_qdrant as vq
from vitr_qdrant import search as search_module
from vitr_qdrant.encoders import create_model


def test_unknown_words_of_each_world():
    objects = create_model("vitr-tiny-objects", device="cpu")
    assert objects.unknown_words("a Hot Dog left of a zebra, near a zebra") == ["zebra", "near"]
    assert objects.unknown_words("a cat with a dog to its left") == []
    shapes = create_model("vitr-tiny-test", device="cpu")
    assert shapes.unknown_words("dog left of red circle") == ["dog"]


def test_card_names_the_world():
    model = create_model("vitr-tiny-objects", device="cpu")
    assert "Object Scenes" in model.card and "not a model for photos" in model.card


def test_search_warns_once_naming_words_and_model(tmp_path, caplog, scene_files):
    model = create_model("vitr-tiny-objects", device="cpu")
    model.head_trained = True
    search_module._WARNED.clear()
    with vq.VitrCollection("v", path=tmp_path / "store", model=model) as col:
        col.add_images(scene_files[:3])
        with caplog.at_level(logging.WARNING, logger="vitr_qdrant.search"):
            col.search("zebra left of cat", limit=2)
            col.search("zebra left of cat", limit=2)
            col.search("dog left of cat", limit=2)
    warnings = [r.getMessage() for r in caplog.records if "does not know" in r.getMessage()]
    assert len(warnings) == 1 and "'zebra'" in warnings[0] and "vitr-tiny-objects" in warnings[0]


@pytest.mark.parametrize("text", ["a dog", "dog left of cat"])
def test_known_words_do_not_warn(tmp_path, caplog, scene_files, text):
    model = create_model("vitr-tiny-objects", device="cpu")
    search_module._WARNED.clear()
    assert search_module.warn_unknown_words(model, text) == []
    assert not [r for r in caplog.records if "does not know" in r.getMessage()]


def test_word_lists_are_frozen_and_cover_their_worlds():
    from vitr_qdrant.encoders.data.worlds import get_world
    from vitr_qdrant.encoders.tokenizer import WORD_TOKENIZERS

    for words, world in WORD_TOKENIZERS.values():
        assert set(get_world(world).words) <= set(words) and len(set(words)) == len(words)
    objects, _ = WORD_TOKENIZERS["objects-words"]
    assert objects == get_world("object-scenes").words   # a shipped model's ids: never renumbered
