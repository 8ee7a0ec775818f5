"""LlamaIndex retriever over a VitrCollection (``pip install 'vitr-qdrant[llamaindex]'``).

    from vitr_qdrant.integrations.llamaindex import VitrRetriever
    nodes = VitrRetriever(col, k=4).retrieve("red circle left of blue square")
"""
from __future__ import annotations

from typing import Any

from ..errors import InputError
from ._common import hit_metadata, hit_text, is_url, require

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
        collection: The :class:`~vitr_qdrant.VitrCollection` to search.
        k: Number of nodes.
        mode: ``"vitr"``, ``"late"`` or ``"global"``; None: the model's best (see ``VitrCollection.search``).
        filter: A payload filter (dict or Qdrant ``models.Filter``).
        **kwargs: Passed to LlamaIndex's ``BaseRetriever`` (``callback_manager``, ``verbose``).
    """

    def __init__(self, collection: Any, k: int = 4, mode: str | None = None, filter: Any = None, **kwargs: Any):
        if k <= 0:
            raise InputError(f"k must be positive, got {k}")
        self.collection, self.k, self.mode, self.filter = collection, k, mode, filter
        super().__init__(**kwargs)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = self.collection.search(query_bundle.query_str, limit=self.k, filter=self.filter, mode=self.mode)
        out = []
        for h in hits:
            where = {"image_url": h.uri} if is_url(h.uri) else {"image_path": h.uri}
            node = ImageNode(id_=str(h.id), text=hit_text(h), metadata=hit_metadata(h), **where)
            node.excluded_embed_metadata_keys = node.excluded_llm_metadata_keys = ["grounding", "payload", "scores"]
            out.append(NodeWithScore(node=node, score=h.score))
        return out
