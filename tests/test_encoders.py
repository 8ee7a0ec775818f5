"""VITR encoders through the public names: shapes, modes, save/load, checkpoints, errors."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch

import vitr_qdrant as vq
import vitr_qdrant.encoders as E
from vitr_qdrant.datasets.relation_scenes import render, sample_scene

TEXTS = ["red circle left of blue square", "the gray star is above the cyan square",
         "there is a large yellow triangle to the right of a small green star"]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = E.create_model("vitr-tiny-test", device="cpu")
    m.head_trained = True  # random head, but scored in every mode
    return m


@pytest.fixture(scope="module")
def images():
    return [render(sample_scene(i), 64) for i in range(4)]


def test_registry_lists_named_models():
    names = E.list_models()
    for name in ("vitr-objects-s", "vitr-scenes-s", "vitr-ViT-B-32", "vitr-ViT-B-16", "vitr-ViT-L-14"):
        assert name in names


def test_unknown_model_lists_available():
    with pytest.raises(vq.ModelNotFoundError, match="vitr-scenes-s"):
        E.create_model("no-such-model")


def test_embedding_shapes_and_norms(model, images):
    ie = model.encode_images(images)
    te = model.encode_texts(TEXTS)
    cfg = model.cfg
    n_reg = model.backbone.grid ** 2
    assert ie.global_vectors.shape == (4, cfg.backbone.embed_dim)
    assert ie.region_vectors.shape == (4, n_reg, cfg.local.dim)
    assert ie.global_vectors.dtype == np.float32 and ie.region_vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(ie.global_vectors, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(ie.region_vectors, axis=2), 1, atol=1e-5)
    assert te.global_vectors.shape == (3, cfg.backbone.embed_dim)
    # one vector per word plus end-of-text
    assert [len(t) for t in te.token_vectors] == [len(t.split()) + 1 for t in TEXTS]
    for t in te.token_vectors:
        np.testing.assert_allclose(np.linalg.norm(t, axis=1), 1, atol=1e-5)
    assert model.region_boxes.shape == (n_reg, 4)


def test_image_input_kinds_agree(model, images, tmp_path):
    img = images[0]
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    path = tmp_path / "a.png"
    img.save(path)
    ref = model.encode_images([img]).global_vectors
    for item in (np.asarray(img), buf.getvalue(), str(path), path):
        np.testing.assert_allclose(model.encode_images([item]).global_vectors, ref, atol=1e-6)


def test_late_equals_bruteforce_maxsim(model, images):
    ie, te = model.encode_images(images), model.encode_texts(TEXTS)
    brute = np.array([[(t @ r.T).max(axis=1).sum() for t in te.token_vectors]
                      for r in ie.region_vectors])
    np.testing.assert_allclose(model.score(images, TEXTS, mode="late"), brute, atol=1e-4)


def test_global_is_cosine_of_backbone_vectors(model, images):
    ie, te = model.encode_images(images), model.encode_texts(TEXTS)
    np.testing.assert_allclose(model.score(images, TEXTS, mode="global"),
                               ie.global_vectors @ te.global_vectors.T, atol=1e-5)


def test_fusion_from_stored_vectors_equals_from_images(model, images):
    direct = model.score(images, TEXTS, mode="vitr")
    ie, te = model.encode_images(images), model.encode_texts(TEXTS)
    stored = model.score_embeddings(ie, te, mode="vitr")
    np.testing.assert_allclose(stored, direct, atol=1e-5)
    for j, q in enumerate(model.encode_queries(TEXTS)):
        np.testing.assert_allclose(q.token_vectors, te.token_vectors[j], atol=1e-6)
        scores, attn = model.rerank(q, ie.global_vectors, ie.region_vectors)
        np.testing.assert_allclose(scores, direct[:, j], atol=1e-5)
        assert attn.shape == (len(images), len(te.token_vectors[j]), len(model.region_boxes))
        np.testing.assert_allclose(attn.sum(-1), 1, atol=1e-5)


def test_save_load_identical_in_all_modes(model, images, tmp_path):
    model.save(tmp_path / "m")
    assert (tmp_path / "m" / "config.json").is_file()
    assert (tmp_path / "m" / "model.safetensors").is_file()
    loaded = E.load_model(tmp_path / "m", device="cpu")
    for mode in E.MODES:
        np.testing.assert_array_equal(loaded.score(images, TEXTS, mode=mode),
                                      model.score(images, TEXTS, mode=mode))
    assert loaded.fingerprint == model.fingerprint


def test_saved_config_carries_its_format_and_library_version(model, tmp_path):
    from vitr_qdrant.encoders.model_dir import FORMAT_VERSION

    config = model.save(tmp_path / "m") / "config.json"
    meta = json.loads(config.read_text())
    assert (meta["format_version"], meta["library_version"]) == (FORMAT_VERSION, vq.__version__)
    config.write_text(json.dumps({**meta, "format_version": FORMAT_VERSION + 1, "library_version": "9.0"}))
    with pytest.raises(vq.ModelFormatError, match=f"format version {FORMAT_VERSION + 1} .*9.0.*upgrade"):
        E.load_model(tmp_path / "m")
    old = {k: v for k, v in meta.items() if k not in ("format_version", "library_version")}
    config.write_text(json.dumps(old))      # written before the fields existed: the same layout
    assert E.load_model(tmp_path / "m", device="cpu").fingerprint == model.fingerprint


def test_conv_region_stem_feeds_the_regions(images, tmp_path):
    torch.manual_seed(0)
    m = E.create_model("vitr-tiny-test", device="cpu", local={"stem": 8})
    m.head_trained = True
    pixels = m.pixels(images)
    _, tokens = m.backbone.encode_image(pixels)
    with torch.no_grad():
        regions = m.image_local(tokens, pixels)
        assert regions.shape == (4, m.image_local.boxes.shape[0], m.cfg.local.dim)
        # the regions see the pixels through the stem, not only through the backbone's tokens
        assert not torch.allclose(regions, m.image_local(tokens, torch.zeros_like(pixels)))
    with pytest.raises(ValueError, match="conv stem"):
        m.image_local(tokens)
    loaded = E.load_model(m.save(tmp_path / "stem"), device="cpu")
    np.testing.assert_array_equal(loaded.score(images, TEXTS), m.score(images, TEXTS))



@pytest.mark.parametrize("word_embed", [False, True])
def test_word_embeddings_reach_the_head_when_the_text_tower_collapses(word_embed, images,
                                                                      tmp_path, monkeypatch):
    # vitr-objects-s's stage-1 text tower gave "left" and "right" token outputs of cosine 0.9995:
    # here the tower's outputs are made equal outright, so only the word embedding can tell them.
    torch.manual_seed(0)
    m = E.create_model("vitr-tiny-test", device="cpu", local={"word_embed": word_embed})
    real = m.backbone.encode_text

    def collapsed(ids):
        pooled, tokens = real(ids)
        return pooled, torch.ones_like(tokens)  # every token of every text alike

    monkeypatch.setattr(m.backbone, "encode_text", collapsed)
    with torch.no_grad():
        _, words, _ = m.text_features(["red circle left of blue square",
                                       "red circle right of blue square"])
    k = dict(m.word_spans("red circle left of blue square"))["left"][0]
    left, right = words[0, k], words[1, k]
    if word_embed:
        assert torch.nn.functional.cosine_similarity(left, right, 0) < 0.99
        monkeypatch.undo()
        m.head_trained = True
        loaded = E.load_model(m.save(tmp_path / "words"), device="cpu")
        assert loaded.cfg.local.word_embed
        np.testing.assert_array_equal(loaded.score(images, TEXTS), m.score(images, TEXTS))
    else:
        torch.testing.assert_close(left, right)

def test_a_head_less_model_honours_or_refuses_each_mode(images):
    m = E.create_model("vitr-tiny-test", device="cpu")
    assert not m.head_trained
    ie, te = m.encode_images(images), m.encode_texts(TEXTS)
    by_hand = np.array([[(t @ r.T).max(axis=1).sum() for t in te.token_vectors] for r in ie.region_vectors])
    late, glob = m.score(images, TEXTS, mode="late"), m.score(images, TEXTS, mode="global")
    np.testing.assert_allclose(late, by_hand, atol=1e-4)               # late is MaxSim, never swapped
    np.testing.assert_allclose(glob, ie.global_vectors @ te.global_vectors.T, atol=1e-5)
    assert np.abs(late - glob).max() > 0.1
    with pytest.raises(vq.HeadNotTrainedError, match="mode='global'"):   # refused, not swapped
        m.score(images, TEXTS, mode="vitr")
    np.testing.assert_array_equal(m.score(images, TEXTS), glob)     # no mode: the best it has


def test_fingerprint_changes_with_weights(model):
    other = E.create_model("vitr-tiny-test", device="cpu")
    assert other.fingerprint["weights_sha256"] != model.fingerprint["weights_sha256"]
    assert other.fingerprint["name"] == "vitr-tiny-test"


def test_pretrained_style_checkpoint_loads_offline(tmp_path):
    import open_clip

    cfg = {"embed_dim": 32,
           "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16,
                          "head_width": 16},
           "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2,
                        "layers": 1}}
    (tmp_path / "tiny-clip-test.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(tmp_path / "tiny-clip-test.json")
    ref = open_clip.create_model("tiny-clip-test")
    torch.save({"state_dict": ref.state_dict()}, tmp_path / "ckpt.pt")
    vitr_cfg = {"name": "vitr-tiny-clip", "backbone": {
        "open_clip_model": "tiny-clip-test", "pretrained": str(tmp_path / "ckpt.pt"),
        "embed_dim": 32}, "local": {"dim": 16, "layers": 1}, "fusion": {"sim_dim": 16}}
    (tmp_path / "vitr-tiny-clip.json").write_text(json.dumps(vitr_cfg))
    E.add_model_config(tmp_path / "vitr-tiny-clip.json")
    m = E.create_model("vitr-tiny-clip", device="cpu")
    for k, v in ref.state_dict().items():
        torch.testing.assert_close(m.backbone.clip.state_dict()[k], v)
    te = m.encode_texts(["a red circle"])  # open_clip BPE: start-of-text dropped, end kept
    assert len(te.token_vectors[0]) == 4


@pytest.mark.parametrize("bad", [[], [""], ["   "], [None]])
def test_empty_texts_raise(model, images, bad):
    with pytest.raises(ValueError):
        model.encode_texts(bad)


def test_bad_inputs_raise_clear_errors(model, images):
    with pytest.raises(ValueError, match="mode"):
        model.score(images, TEXTS, mode="bag-of-words")
    with pytest.raises(ValueError, match="uint8"):
        model.encode_images([np.zeros((4, 4), dtype=np.float32)])
    with pytest.raises(ValueError, match="not a readable image"):
        model.encode_images([b"not an image"])
    with pytest.raises(ValueError, match="unsupported image type"):
        model.encode_images([3.14])


def test_load_model_errors(tmp_path):
    with pytest.raises(vq.ModelNotFoundError, match="config.json"):
        E.load_model(tmp_path)
    with pytest.raises(vq.ModelNotFoundError, match="available"):
        E.load_model("no-such-model")


def test_word_spans_group_tokens_into_words(model):
    assert model.word_spans("Red circle, left of blue square") == [
        ("red", [0]), ("circle", [1]), ("left", [2]), ("of", [3]), ("blue", [4]), ("square", [5])]
    bpe = E.tokenizer.OpenClipTokenizer("ViT-B-32").word_spans("a photobombing café")
    assert [w for w, _ in bpe] == ["a", "photobombing", "café"]
    positions = [p for _, members in bpe for p in members]
    assert positions == list(range(len(positions))) and len(bpe[1][1]) > 1  # pieces of one word


def test_openclip_adapter_names_what_an_open_clip_model_lacks(model, monkeypatch):
    import copy
    import re
    from pathlib import Path

    import open_clip.transformer
    from packaging.requirements import Requirement
    from packaging.version import Version

    from vitr_qdrant.encoders import openclip_adapter as oc

    clip = model.backbone.clip
    assert oc.missing_attrs(clip) == []   # the real model has all the adapter reads
    oc.check(clip)
    # pyproject pins the range the adapter names, and the installed open_clip is inside it
    pyproject = (Path(__file__).parents[1] / "pyproject.toml").read_text(encoding="utf-8")
    req = Requirement(re.search(r'"(open_clip_torch[^"]*)"', pyproject).group(1))
    assert str(req.specifier) == str(Requirement("x" + oc.SUPPORTED).specifier)
    assert Version(oc._version()) in req.specifier

    moved = copy.deepcopy(clip)           # a release that renamed two of them
    del moved.attn_mask
    del moved.text_pool_type
    with pytest.raises(vq.ModelError) as err:
        oc.check(moved)
    msg = str(err.value)
    assert "attn_mask" in msg and "text_pool_type" in msg and oc.SUPPORTED in msg
    assert "token_embedding" not in msg   # only what is missing
    # a release without the pooling function: building a model fails at once, naming it
    monkeypatch.delattr(open_clip.transformer, "text_global_pool")
    with pytest.raises(vq.ModelError, match=re.escape(oc.POOL_FUNCTION)):
        E.create_model("vitr-tiny-test", device="cpu")


def test_the_text_tower_runs_only_the_positions_that_decide_it():
    """A causal tower pooling at end-of-text: the padding after the longest text changes
    nothing, so it is not run; a tower without a causal mask runs every position."""
    import copy

    import open_clip

    from vitr_qdrant.encoders import openclip_adapter as oc

    torch.manual_seed(0)
    clip = open_clip.CLIP(embed_dim=16, vision_cfg={"image_size": 32, "layers": 1, "width": 16, "patch_size": 16, "head_width": 8},
                          text_cfg={"context_length": 20, "vocab_size": 60, "width": 16, "heads": 2, "layers": 2}).eval()
    ids = torch.zeros(2, 20, dtype=torch.long)
    ids[0, :4], ids[1, :6] = torch.tensor([58, 5, 7, 59]), torch.tensor([58, 9, 3, 4, 8, 59])
    n = oc.decisive_length(clip, ids)
    assert n == 6
    with torch.no_grad():
        full_pooled, full = oc.encode_text(clip, ids)
        cut_pooled, cut = oc.encode_text(clip, ids[:, :n])
    torch.testing.assert_close(cut_pooled, full_pooled, atol=1e-5, rtol=0)
    torch.testing.assert_close(cut, full[:, :n], atol=1e-5, rtol=0)
    bidirectional = copy.deepcopy(clip)
    bidirectional.attn_mask = None
    assert oc.decisive_length(bidirectional, ids) == 20
    bidirectional.attn_mask, bidirectional.text_pool_type = clip.attn_mask, "last"
    assert oc.decisive_length(bidirectional, ids) == 20
