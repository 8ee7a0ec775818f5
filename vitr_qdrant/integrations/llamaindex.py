"""LlamaIndex retriever over a VitrCollection (``pip install 'vitr-qdrant[llamaindex]'``).

    from vitr_qdrant.integrations.llamaindex import VitrRetriever
    nodes = VitrRetriever(col, k=4, score_threshold=0.0).retrieve("dog left of cat")   # or: await .aretrieve(...)
"""
from __future__ import annotations

from typing import Any

from ..params import CANDIDATES, PREFETCH
from ._common import asearch, hit_metadata, hit_text, is_url, require, search_params

require("llama_index.core", "llamaindex")

from llama_index.core.retrievers import BaseRetriever  # noqa: E402
from llama_index.core.schema import ImageNode, NodeWithScore, QueryBundle  # noqa: E402

__all__ = ["VitrRetriever"]


class VitrRetriever(BaseRetriever):
    """Relation-aware image retrieval for LlamaIndex: ``NodeWithScore(ImageNode)`` per hit.

    The node's ``image_path`` (local file) or ``image_url`` (http) is the stored uri; its text
    is the stored caption/text or the uri; its metadata holds ``id``, ``score``, ``uri``,
    ``scores``, ``payload`` and ``grounding``.

    Args:
        collection: The :class:`~vitr_qdrant.VitrCollection` (or ``AsyncVitrCollection``) to search.
        k: Number of nodes.
        mode: ``"vitr"``, ``"late"`` or ``"global"``; None: the model's best (see ``VitrCollection.search``).
        filter: A payload filter (dict or Qdrant ``models.Filter``).
        prefetch, candidates: Stage sizes (see ``VitrCollection.search``; prefetch None: no global stage).
        score_threshold: Leave out images scoring below this.
        offset: Hits to skip first.
        **kwargs: Passed to LlamaIndex's ``BaseRetriever`` (``callback_manager``, ``verbose``).

    Raises:
        InputError: a bad search parameter (also a ``ValueError``), when the retriever is made.
    """

    def __init__(self, collection: Any, k: int = 4, mode: str | None = None, filter: Any = None,
                 prefetch: int | None = PREFETCH, candidates: int = CANDIDATES, score_threshold: float | None = None,
                 offset: int = 0, **kwargs: Any):
        self.collection = collection
        self.params = search_params(k, mode=mode, filter=filter, prefetch=prefetch, candidates=candidates,
                                    score_threshold=score_threshold, offset=offset)
        super().__init__(**kwargs)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        collection = getattr(self.collection, "collection", self.collection)   # an AsyncVitrCollection's own
        return self._nodes(collection.search(query_bundle.query_str, params=self.params))

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return self._nodes(await asearch(self.collection, query_bundle.query_str, self.params))

    @staticmethod
    def _nodes(hits: list) -> list[NodeWithScore]:
        out = []
        for h in hits:
            where = {"image_url": h.uri} if is_url(h.uri) else {"image_path": h.uri}
            node = ImageNode(id_=str(h.id), text=hit_text(h), metadata=hit_metadata(h), **where)
            node.excluded_embed_metadata_keys = node.excluded_llm_metadata_keys = ["grounding", "payload", "scores"]
            out.append(NodeWithScore(node=node, score=h.score))
        return out
