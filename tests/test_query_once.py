"""A query is encoded once: one tokenization, at most two model calls (encode, rerank) a text
search, one fusion for scores and grounding in both directions."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

import vitr_qdrant as vq
from vitr_qdrant.encoders import TextEmbeddings, VitrModel, create_model
from vitr_qdrant.encoders.fusion import FusionHead
from vitr_qdrant.encoders.tokenizer import WordTokenizer

QUERY = "red circle left of blue square"


@pytest.fixture()
def col(tmp_path, tiny_model, scene_images):
    c = vq.VitrCollection("once", path=tmp_path / "store", model=tiny_model)
    c.add_images(scene_images[:8], progress=False)
    c.add_texts(["red circle left of blue square", "a green triangle", "blue square above red circle"])
    yield c
    c.close()


@pytest.fixture()
def counted(monkeypatch):
    """Calls of the tokenizer, the text tower, the fusion head's parts and the model's public calls."""
    calls: Counter = Counter()

    def count(cls, name, key=None):
        original = getattr(cls, name)

        def wrapper(*a, **k):
            calls[key or name] += 1
            return original(*a, **k)

        monkeypatch.setattr(cls, name, wrapper)

    for name in ("encode", "__call__", "unknown_words", "word_spans"):
        count(WordTokenizer, name, "tokenize")
    for name in ("text_side", "pairs"):
        count(FusionHead, name)
    for name in ("encode_queries", "encode_texts", "rerank", "rerank_texts", "score_embeddings", "text_features"):
        count(VitrModel, name)
    return calls


@pytest.mark.parametrize("mode", ["vitr", "late", "global"])
def test_a_text_search_tokenizes_once_and_calls_the_model_at_most_twice(col, counted, mode):
    hits = col.search(QUERY, limit=3, mode=mode)
    assert hits
    assert counted["tokenize"] == 1 and counted["text_features"] == 1
    model_calls = sum(counted[k] for k in ("encode_queries", "encode_texts", "rerank", "rerank_texts",
                                           "score_embeddings"))
    assert counted["encode_queries"] == 1 and model_calls == (2 if mode == "vitr" else 1)
    # the query's part of the head once, the candidates' fusion once: scores and grounding together
    assert (counted["text_side"], counted["pairs"]) == ((1, 1) if mode == "vitr" else (1, 0))
    if mode != "global":
        assert all(h.grounding for h in hits)


def test_an_encoded_query_searches_like_its_text_without_encoding_again(col, counted):
    query = col.encode_query(QUERY)
    assert counted["encode_queries"] == 1
    for kw in ({}, {"mode": "late"}, {"filter": {"width": {"gte": 1}}, "limit": 2}):
        assert col.search(query, **kw) == col.search(QUERY, **kw)
    assert counted["encode_queries"] == 4 and counted["tokenize"] == 4   # once for each text search only
    assert col.search_batch([query, QUERY], limit=2) == [col.search(QUERY, limit=2)] * 2


def test_a_query_encoded_by_another_model_is_refused(col):
    import torch

    torch.manual_seed(1)
    other = create_model("vitr-tiny-test", device="cpu")
    other.head_trained = True
    with pytest.raises(vq.InputError, match="another model"):
        col.search(other.encode_queries([QUERY])[0])


def test_image_to_text_runs_one_fusion_for_scores_and_grounding(col, counted, scene_images):
    hits = col.search_texts(scene_images[0], limit=3, mode="vitr")
    assert len(hits) == 3 and all(h.grounding for h in hits)
    assert counted["rerank_texts"] == 1 and counted["pairs"] == 1 and counted["rerank"] == 0
    # the grounding is the attention of that one fusion: the same as scoring the hit alone
    model = col.model
    emb = model.encode_images([scene_images[0]])
    texts = model.encode_texts([h.payload["text"] for h in hits])
    for i, h in enumerate(hits):
        one = TextEmbeddings(texts.global_vectors[i:i + 1], [texts.token_vectors[i]])
        score, attn = model.rerank_texts(emb.global_vectors[0], emb.region_vectors[0], one)
        assert h.score == pytest.approx(float(score[0]), abs=1e-4)
        best = [int(np.argmax(attn[0][members].mean(0))) for _, members in model.word_spans(h.payload["text"])
                if max(members) < len(attn[0])]
        assert [g.region for g in h.grounding] == best
