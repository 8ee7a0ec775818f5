"""LangChain retriever over a VitrCollection (``pip install 'vitr-qdrant[langchain]'``).

    from vitr_qdrant.integrations.langchain import VitrRetriever
    retriever = VitrRetriever(collection=col, k=4, score_threshold=0.0)
    docs = retriever.invoke("dog left of cat")          # or: await retriever.ainvoke(...)
"""
from __future__ import annotations

from typing import Any, Optional

from ..errors import InputError
from ..params import CANDIDATES, PREFETCH
from ._common import SEARCH_OPTIONS, asearch, hit_metadata, hit_text, require, search_params

require("langchain_core", "langchain")

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun  # noqa: E402
from langchain_core.documents import Document  # noqa: E402
from langchain_core.retrievers import BaseRetriever  # noqa: E402
from pydantic import ConfigDict, Field, ValidationError  # noqa: E402

__all__ = ["VitrRetriever"]


class VitrRetriever(BaseRetriever):
    """Relation-aware image retrieval for LangChain.

    Each ``Document`` has the image's caption or text (when stored in its payload) or else its
    uri as ``page_content``, and ``metadata`` with ``id``, ``score``, ``probability``, ``uri``,
    ``scores`` (per stage), ``payload`` and ``grounding``. ``invoke(query, k=..., filter=...,
    score_threshold=...)`` overrides the defaults for one call; ``ainvoke`` awaits the search off
    the event loop.

    Attributes:
        collection: The :class:`~vitr_qdrant.VitrCollection` (or ``AsyncVitrCollection``) to search.
        k: Number of documents.
        mode: ``"vitr"``, ``"late"`` or ``"global"``; None: the model's best (see ``VitrCollection.search``).
        filter: A payload filter (dict or Qdrant ``models.Filter``) applied to every search.
        prefetch, candidates: Stage sizes (see ``VitrCollection.search``; prefetch None: no global stage).
        score_threshold: Leave out images scoring below this: a prompt gets no image the model
            scores as not matching.
        offset: Hits to skip first.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    collection: Any = Field(description="the VitrCollection to search")
    k: int = 4
    mode: Optional[str] = None
    filter: Any = None
    prefetch: Optional[int] = PREFETCH
    candidates: int = CANDIDATES
    score_threshold: Optional[float] = None
    offset: int = 0

    def __init__(self, **data: Any):
        try:
            super().__init__(**data)
        except ValidationError as exc:   # the library's error family, as every public call raises
            raise InputError(f"VitrRetriever: {exc}") from None
        self._params()   # a bad search parameter is an InputError when the retriever is made

    def _params(self, **overrides: Any) -> Any:
        values = {name: overrides.get(name, getattr(self, name)) for name in SEARCH_OPTIONS}
        return search_params(overrides.get("k", self.k), **values)

    def _documents(self, hits: list) -> list[Document]:
        return [Document(page_content=hit_text(h), metadata=hit_metadata(h), id=str(h.id)) for h in hits]

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun,
                                **kwargs: Any) -> list[Document]:
        collection = getattr(self.collection, "collection", self.collection)   # an AsyncVitrCollection's own
        return self._documents(collection.search(query, params=self._params(**kwargs)))

    async def _aget_relevant_documents(self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun,
                                       **kwargs: Any) -> list[Document]:
        return self._documents(await asearch(self.collection, query, self._params(**kwargs)))
