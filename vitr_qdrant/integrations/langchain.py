"""LangChain retriever over a VitrCollection (``pip install 'vitr-qdrant[langchain]'``).

    from vitr_qdrant.integrations.langchain import VitrRetriever
    retriever = VitrRetriever(collection=col, k=4)
    docs = retriever.invoke("red circle left of blue square")
"""
from __future__ import annotations

from typing import Any

from ._common import hit_metadata, hit_text, require

require("langchain_core", "langchain")

from langchain_core.callbacks import CallbackManagerForRetrieverRun  # noqa: E402
from langchain_core.documents import Document  # noqa: E402
from langchain_core.retrievers import BaseRetriever  # noqa: E402
from pydantic import ConfigDict, Field  # noqa: E402

__all__ = ["VitrRetriever"]


class VitrRetriever(BaseRetriever):
    """Relation-aware image retrieval for LangChain.

    Each ``Document`` has the image's caption or text (when stored in its payload) or else its
    uri as ``page_content``, and ``metadata`` with ``id``, ``score``, ``uri``, ``scores`` (per
    stage), ``payload`` and ``grounding``. ``invoke(query, k=..., filter=..., mode=...)``
    overrides the defaults for one call.

    Attributes:
        collection: The :class:`~vitr_qdrant.VitrCollection` to search.
        k: Number of documents.
        mode: ``"vitr"``, ``"late"`` or ``"global"``; None: the model's best (see ``VitrCollection.search``).
        filter: A payload filter (dict or Qdrant ``models.Filter``) applied to every search.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    collection: Any = Field(description="the VitrCollection to search")
    k: int = Field(4, gt=0)
    mode: str | None = None
    filter: Any = None

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun,
                                **kwargs: Any) -> list[Document]:
        hits = self.collection.search(query, limit=kwargs.get("k", self.k), filter=kwargs.get("filter", self.filter),
                                      mode=kwargs.get("mode", self.mode))
        return [Document(page_content=hit_text(h), metadata=hit_metadata(h), id=str(h.id)) for h in hits]
