"""The searches behind VitrCollection: text to image, image to image, image to text.

Each is one call of the connectors' staged query (:func:`vitr_qdrant.connectors.search`): stages 1
(HNSW on the first-stage vector, or on the global one in a collection without them; filters) and
2 (MaxSim) run inside Qdrant; in ``vitr`` mode stage 3, the model's fusion head, reranks the
candidates on their stored vectors here. A text query is encoded once (a ``TextQuery``) and read
by every stage.
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np

from .connectors import Candidate, CollectionSpec, StageCfg, StoreBackend
from .connectors import search as staged_search
from .encoders import ImageEmbeddings, TextEmbeddings, TextQuery, VitrModel
from .errors import InputError
from .grounding import Grounding, cut_spans, ground
from .params import SearchParams
from .results import Hit, user_id

logger = logging.getLogger(__name__)


def stages_for(params: SearchParams) -> StageCfg:
    """Stage sizes: N = prefetch (None: no stage 1, MaxSim over every point) and M = candidates
    (:func:`~vitr_qdrant.connectors.search` widens each to what a page needs)."""
    return StageCfg(prefetch_limit=params.prefetch, late_limit=params.candidates)


def to_hit(c: Candidate, mode: str, model: VitrModel | None = None, grounding: list[Grounding] | None = None) -> Hit:
    """A connector candidate as a :class:`Hit` (stage ``rerank`` is reported as ``vitr``), with the
    probability ``model``'s calibration gives its ``mode`` score (None without one)."""
    scores = {("vitr" if k == "rerank" else k): float(v) for k, v in c.stage_scores.items()}
    probability = None if model is None else model.probability(float(c.score), mode)
    return Hit(user_id(c.id, c.payload), float(c.score), scores, c.payload, grounding or [], probability)


_WARNED: set[tuple[str, tuple[str, ...]]] = set()


def warn_unknown_words(model: VitrModel, query: str | TextQuery) -> list[str]:
    """The query words ``model`` does not know (read off an encoded query, or found in a text);
    a warning names them and the model, once per (model, words)."""
    unknown = query.unknown_words if isinstance(query, TextQuery) else model.unknown_words(query)
    key = (model.cfg.name, tuple(unknown))
    if unknown and key not in _WARNED:
        _WARNED.add(key)
        world = f", {model.cfg.world}" if model.cfg.world else ""
        logger.warning("model %s%s does not know the query words %s: they carry no meaning for it "
                       "(model.card says what it was trained on)", model.cfg.name, world,
                       ", ".join(map(repr, unknown)))
    return unknown


def encode_queries(model: VitrModel, queries: list[str | TextQuery]) -> list[TextQuery]:
    """``queries`` as :class:`~vitr_qdrant.encoders.model.TextQuery`: the texts encoded in one
    model call, the encoded ones checked to come from ``model``; unknown words are warned of."""
    texts = [q for q in queries if isinstance(q, str)]
    fresh = iter(model.encode_queries(texts) if texts else [])
    out = [next(fresh) if isinstance(q, str) else q for q in queries]
    for q in out:
        if q.encoder != model.fingerprint["weights_sha256"]:
            raise InputError(f"query {q.text!r} was encoded by another model than this collection's "
                             f"({model.cfg.name}): encode it with the collection's own (collection.encode_query)")
        warn_unknown_words(model, q)
    return out


def collection_spec(name: str, model: VitrModel, first_stage: bool = True, **storage: Any) -> CollectionSpec:
    """The spec of a collection of ``model``'s vectors: with its first stage, if it has one
    (image collections; ``first_stage=False`` for texts)."""
    cfg, stage = model.cfg, model.first_stage if first_stage else None
    first = {} if stage is None else {"first_dim": stage.cfg.dim, "first_sha256": stage.weights_sha256()}
    return CollectionSpec(name=name, global_dim=cfg.backbone.embed_dim, region_dim=cfg.local.dim,
                          fingerprint=model.fingerprint, model_source=model.source, **first, **storage)


def first_stage_ok(store: StoreBackend, model: VitrModel) -> bool:
    """Whether the collection has first-stage vectors written by ``model``'s first stage: only
    then does a query's first-stage vector join stage 1 (else stage 1 is ``global`` alone)."""
    spec = store.spec
    return (spec is not None and spec.first_dim is not None and model.first_stage is not None
            and spec.first_sha256 == model.first_stage.weights_sha256())


def warn_first_stage(store: StoreBackend, model: VitrModel) -> None:
    """Say so when a collection cannot use the model's first stage: it was made before the model
    had one, or by another first stage (its stage 1 is then ``global`` alone, as before)."""
    spec = store.spec
    if model.first_stage is None or spec is None or first_stage_ok(store, model):
        return
    why = ("was created without first-stage vectors" if spec.first_dim is None
           else "holds first-stage vectors of another first stage")
    logger.warning("collection %s %s: its searches keep only the top N by the global vector in stage 1, "
                   "which can miss what %s ranks first. `vitr upgrade -c %s` adds them from the stored vectors "
                   "(no image is re-encoded)", spec.name, why, model.cfg.name, spec.name)


def text_to_image(store: StoreBackend, model: VitrModel, query: str | TextQuery, params: SearchParams) -> list[Hit]:
    """Search images by text; hits carry grounding of each query word (not in global mode)."""
    return texts_to_images(store, model, [query], params)[0]


def texts_to_images(store: StoreBackend, model: VitrModel, queries: list[str | TextQuery],
                    params: SearchParams) -> list[list[Hit]]:
    """:func:`text_to_image` for several queries: one model call encodes the texts among them,
    then the stages run per query (one more model call each, the rerank)."""
    mode = model.resolve_mode(params.mode)
    return [_text_hits(store, model, q, mode, params) for q in encode_queries(model, queries)]


def _text_hits(store: StoreBackend, model: VitrModel, query: TextQuery, mode: str, params: SearchParams) -> list[Hit]:
    words = query.token_vectors

    def rerank(gv: np.ndarray, regions: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        return model.rerank(query, gv, np.stack(regions))   # the attention is each hit's detail

    first = query.first_vector if first_stage_ok(store, model) else None
    cands = staged_search(store, query.global_vector, None if mode == "global" else words, limit=params.window,
                          filter=params.filter, stages=stages_for(params), rerank=rerank if mode == "vitr" else None,
                          with_vectors=mode == "late", first_vector=first)
    cands = params.page(cands)
    if mode == "global":
        return [to_hit(c, mode, model) for c in cands]
    spans, boxes = cut_spans(query.spans, len(words)), model.region_boxes
    return [to_hit(c, mode, model, ground(spans, words @ c.regions.T if mode == "late" else c.detail, boxes,
                                          c.payload.get("width"), c.payload.get("height"))) for c in cands]


def image_to_image(store: StoreBackend, emb: ImageEmbeddings, params: SearchParams) -> list[Hit]:
    """Search images by an image: its global vector, then its regions by MaxSim."""
    cands = staged_search(store, emb.global_vectors[0], emb.region_vectors[0], limit=params.window,
                          filter=params.filter, stages=stages_for(params))
    return [to_hit(c, "late") for c in params.page(cands)]


def image_to_text(store: StoreBackend, model: VitrModel, emb: ImageEmbeddings, size: tuple[int, int],
                  params: SearchParams) -> list[Hit]:
    """Search texts by an image; grounding maps each word of a hit's text to a query-image box."""
    mode = model.resolve_mode(params.mode)
    g, regions = emb.global_vectors[0], emb.region_vectors[0]

    def rerank(gv: np.ndarray, tokens: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        # the texts' own token lists (padding masked); each text's attention is its hit's detail
        return model.rerank_texts(g, regions, TextEmbeddings(gv, tokens))

    cands = staged_search(store, g, None if mode == "global" else regions, limit=params.window, filter=params.filter,
                          stages=stages_for(params), rerank=rerank if mode == "vitr" else None,
                          with_vectors=mode == "late")
    cands = params.page(cands)
    if mode == "global":
        return [to_hit(c, mode, model) for c in cands]
    return [to_hit(c, mode, model, ground(cut_spans(model.word_spans(c.payload.get("text", "")), len(c.regions)),
                                          c.regions @ regions.T if mode == "late" else c.detail,
                                          model.region_boxes, *size)) for c in cands]
