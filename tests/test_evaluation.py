"""Evaluation protocol: metrics on hand-made score matrices and reference scorers."""
from __future__ import annotations

import json
import math
import zlib

import numpy as np
import pytest
import torch

from vitr_qdrant.encoders import evaluation as ev
from vitr_qdrant.datasets import relation_scenes as rs
from vitr_qdrant.encoders.baselines import color_scorer, oracle_scorer, random_scorer
from vitr_qdrant.datasets.relation_scenes import HELD_OUT, parse_caption, truth

N_IMAGES, N_PAIRS = 40, 16


@pytest.fixture(scope="module")
def eval_set() -> ev.EvalSet:
    return ev.build_eval_set("test-comp", n_images=N_IMAGES, n_pairs=N_PAIRS, size=64)


# --- evaluate_retrieval on hand-made matrices -----------------------------------------------

def test_retrieval_identity_is_perfect():
    out = ev.evaluate_retrieval(np.eye(12), [{i} for i in range(12)])
    assert out["rsum"] == 600 and out["i2t_r1"] == 100 and out["t2i_r10"] == 100
    assert out["i2t_n"] == out["t2i_n"] == 12


def test_retrieval_reversed_ranks_last():
    out = ev.evaluate_retrieval(-np.eye(12), [{i} for i in range(12)])
    assert out["rsum"] == 0


def test_retrieval_known_ranks():
    # image 0: its text at rank 1; image 1: rank 2; image 2: rank 3 (of 3 texts).
    sim = np.array([[0.9, 0.1, 0.0],
                    [0.8, 0.5, 0.1],
                    [0.7, 0.6, 0.2]])
    out = ev.evaluate_retrieval(sim, [{0}, {1}, {2}], ks=(1, 2, 3))
    assert out["i2t_r1"] == pytest.approx(100 / 3)
    assert out["i2t_r2"] == pytest.approx(200 / 3)
    assert out["i2t_r3"] == 100
    # text 0 -> image 0 (0.9 top); text 1 -> image 2 ranks above image 1; text 2 -> image 2 top.
    assert out["t2i_r1"] == pytest.approx(200 / 3)
    assert out["t2i_r2"] == 100


def test_retrieval_several_captions_per_image():
    rel = ev.relevant_by_counts([2, 3])
    assert rel == [{0, 1}, {2, 3, 4}]
    sim = np.array([[0.1, 0.9, 0.8, 0.0, 0.0],     # best own caption (0.9) first: found at 1
                    [0.9, 0.0, 0.0, 0.1, 0.5]])    # own captions behind caption 0: rank 2
    out = ev.evaluate_retrieval(sim, rel, ks=(1, 2))
    assert out["i2t_r1"] == 50 and out["i2t_r2"] == 100
    # text->image: captions 0, 3 rank their image 2nd; 1, 2, 4 first.
    assert out["t2i_r1"] == 60 and out["t2i_r2"] == 100
    assert ev.evaluate_retrieval(sim, _mask(rel, sim.shape), ks=(1, 2)) == out


def _mask(rel, shape):
    m = np.zeros(shape, dtype=bool)
    for i, items in enumerate(rel):
        m[i, list(items)] = True
    return m


def test_retrieval_ties_count_against():
    out = ev.evaluate_retrieval(np.zeros((10, 10)), [{i} for i in range(10)])
    assert out["rsum"] == 2 * 100  # only R@10 of each direction: rank 10 of 10


def test_retrieval_queries_without_relevant_items_left_out():
    out = ev.evaluate_retrieval(np.eye(3), [{0}, {1}, set()])
    assert out["i2t_n"] == 2 and out["i2t_r1"] == 100 and out["t2i_n"] == 2


def test_retrieval_rejects_bad_input():
    with pytest.raises(ValueError):
        ev.evaluate_retrieval(np.array([[np.nan, 0.0]]), [{0}])
    with pytest.raises(ValueError):
        ev.evaluate_retrieval(np.eye(3), [{0}, {1}])


# --- eval set ---------------------------------------------------------------------------------

def test_eval_set_contents(eval_set):
    es = eval_set
    assert len(es.images) == len(es.captions) == len(es.scenes) == N_IMAGES
    assert len(es.pair_images) == len(es.pair_captions) == N_PAIRS
    assert es.images[0].size == (64, 64) and es.images[0].info["scene"] is es.scenes[0]
    assert all(s.seed >= ev.EVAL_SEED for s in es.scenes)
    brute = np.array([[truth(s, c) is True for c in es.captions] for s in es.scenes])
    assert (es.relevance == brute).all() and es.relevance.diagonal().all()
    for scene, text, negs in zip(es.scenes, es.captions, es.negatives):
        (size_a, *pair_a), _, (size_b, *pair_b) = parse_caption(text)
        assert size_a is size_b is None
        assert tuple(pair_a) in HELD_OUT or tuple(pair_b) in HELD_OUT
        assert {"swap", "opposite"} <= set(negs) <= set(rs.WORLD.swap_kinds)
        assert all(truth(scene, n) is False for n in negs.values())


def test_eval_set_deterministic(eval_set):
    again = ev.build_eval_set("test-comp", n_images=N_IMAGES, n_pairs=N_PAIRS, size=64)
    assert again.captions == eval_set.captions and again.pair_captions == eval_set.pair_captions
    assert again.images[3].tobytes() == eval_set.images[3].tobytes()


def test_eval_set_bad_arguments():
    with pytest.raises(ValueError):
        ev.build_eval_set("val")
    with pytest.raises(ValueError):
        ev.build_eval_set("test-iid", n_images=0)


# --- evaluate with reference scorers ---------------------------------------------------------

METRICS = ("i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10", "rsum", "swap_acc",
           "opposite_acc", "attribute_acc", "pair_text", "pair_image", "pair_group")


def test_oracle_scores_everything(eval_set):
    out = ev.evaluate(oracle_scorer(), eval_set)
    assert out["rsum"] == 600
    assert all(out[k] == 100 for k in METRICS if k != "rsum")
    assert out["swap_n"] == N_IMAGES and out["pair_n"] == N_PAIRS
    json.dumps(out)


def test_reversed_oracle_scores_nothing(eval_set):
    oracle = oracle_scorer()
    out = ev.evaluate(lambda im, tx: -oracle(im, tx), eval_set)
    assert out["i2t_r1"] == out["t2i_r1"] == 0
    assert all(out[k] == 0 for k in ("swap_acc", "opposite_acc", "attribute_acc",
                                       "pair_text", "pair_image", "pair_group"))


def test_constant_scorer_gets_no_credit_for_ties(eval_set):
    out = ev.evaluate(lambda im, tx: np.zeros((len(im), len(tx))), eval_set)
    assert out["swap_acc"] == out["pair_group"] == out["t2i_r1"] == 0


@pytest.mark.slow
def test_random_scorer_is_at_chance_on_a_large_set():
    out = ev.evaluate(random_scorer(1), ev.build_eval_set("test-iid", 300, 300, size=64))
    assert 40 < out["swap_acc"] < 60 and 8 < out["pair_group"] < 26
    assert out["t2i_r10"] < 15


def test_random_scorer_is_near_chance(eval_set):
    out = ev.evaluate(random_scorer(0), eval_set)
    assert 20 <= out["swap_acc"] <= 80 and out["pair_group"] <= 50


def test_color_scorer_retrieves_but_is_relation_blind(eval_set):
    out = ev.evaluate(color_scorer(), eval_set)
    assert out["t2i_r10"] > 25          # 10 of 40 is chance level
    assert out["swap_acc"] == out["pair_text"] == 0


def _hash_scorer(images, texts):
    """Deterministic per (scene, text), whatever the batch: the same in every calling path."""
    return np.array([[zlib.crc32(f"{im.info['scene']}|{t}".encode()) / 2**32 for t in texts]
                     for im in images])


def test_score_pairs_path_and_chunking_agree(eval_set):
    base = ev.evaluate(_hash_scorer, eval_set)
    pairs = ev.evaluate(_hash_scorer, eval_set, score_pairs=lambda im, tx: np.array(
        [_hash_scorer([i], [t])[0, 0] for i, t in zip(im, tx)]), pair_chunk=3)
    chunked = ev.evaluate(_hash_scorer, eval_set, chunk_size=7, pair_chunk=5)
    for k in METRICS:
        assert base[k] == pairs[k] == chunked[k]


def test_few_scorer_calls(eval_set):
    calls = []

    def counting(images, texts):
        calls.append((len(images), len(texts)))
        return torch.zeros(len(images), len(texts))  # tensors are accepted
    ev.evaluate(counting, eval_set, chunk_size=20, pair_chunk=16)
    expected = (math.ceil(N_IMAGES / 20) + math.ceil(N_IMAGES / 16)
                + math.ceil(2 * N_PAIRS / 16))
    assert len(calls) == expected
    assert calls[0] == (20, N_IMAGES)


def test_scorer_with_wrong_shape_or_nan_fails(eval_set):
    with pytest.raises(ValueError, match="shape"):
        ev.evaluate(lambda im, tx: np.zeros((len(im), 1)), eval_set)
    with pytest.raises(ValueError, match="non-finite"):
        ev.evaluate(lambda im, tx: np.full((len(im), len(tx)), np.nan), eval_set)


def test_evaluate_splits_and_cli(capsys):
    out = ev.evaluate_splits(oracle_scorer(), n_images=10, n_pairs=4, size=64)
    assert set(out) == {"test-iid", "test-comp"}
    assert out["test-iid"]["rsum"] == 600 and out["test-comp"]["pair_group"] == 100
    json.dumps(out)
    assert ev.main(["--split", "test-iid", "--n-images", "8", "--n-pairs", "2", "--size", "64",
                    "--scorer", "random"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["scorer"] == "random" and set(report["splits"]) == {"test-iid"}


def test_markdown_table_has_an_art_column_only_in_worlds_with_art_sets():
    from vitr_qdrant.encoders.model_eval import markdown_table

    figures = {"t2i_r1": 50.0, "swap_acc": 75.0}
    shapes = markdown_table({"test-iid": {"vitr": dict(figures)}}, "relation-scenes").splitlines()
    assert shapes[0].startswith("| split | mode | t2i_r1 |")
    assert shapes[2].startswith("| test-iid | vitr | 50.0 |") and "attribute_acc" in shapes[0]
    by_art = {"noto": dict(figures, t2i_r1=40.0), "emojione": dict(figures, t2i_r1=60.0)}
    objects = markdown_table({"test-iid": {"vitr": dict(figures, by_art=by_art)}},
                             "object-scenes").splitlines()
    assert objects[0].startswith("| split | mode | art | t2i_r1 |") and "distractor_acc" in objects[0]
    assert [r.split(" | ")[2:4] for r in objects[2:]] == [["all", "50.0"], ["emojione", "60.0"],
                                                          ["noto", "40.0"]]
