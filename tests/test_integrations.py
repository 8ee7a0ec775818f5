"""RAG adapters with the real frameworks; each part skips cleanly when its extra is missing."""
from __future__ import annotations

import importlib
import sys

import pytest

import vitr_qdrant as vq

QUERY = "red circle left of blue square"

try:
    from langchain_tests.integration_tests import RetrieversIntegrationTests
except ImportError:  # the langchain extra (and langchain-tests) is optional
    RetrieversIntegrationTests = None


@pytest.fixture(scope="module")
def rag_collection(tiny_model, scene_files):
    """Six scene files in an in-memory collection; the first two carry a caption."""
    meta = [{"caption": f"scene {i}", "kind": "ab"[i % 2]} if i < 2 else {"kind": "ab"[i % 2]} for i in range(6)]
    col = vq.VitrCollection("rag", location=":memory:", model=tiny_model)
    col.add_images(scene_files, metadata=meta, progress=False)
    yield col
    col.close()


if RetrieversIntegrationTests is not None:
    from vitr_qdrant.integrations.langchain import VitrRetriever as LangChainRetriever

    class TestLangChainStandardSuite(RetrieversIntegrationTests):
        """langchain-tests' standard retriever suite."""

        @pytest.fixture(autouse=True)
        def _use_collection(self, rag_collection):
            type(self).collection = rag_collection

        @property
        def retriever_constructor(self):
            return LangChainRetriever

        @property
        def retriever_constructor_params(self):
            return {"collection": self.collection, "k": 4}

        @property
        def retriever_query_example(self) -> str:
            return QUERY

    def test_langchain_documents(rag_collection):
        docs = LangChainRetriever(collection=rag_collection, k=6).invoke(QUERY)
        assert len(docs) == 6
        by_uri = {d.metadata["uri"]: d for d in docs}
        captioned = [d for d in docs if d.metadata["payload"].get("caption")]
        assert len(captioned) == 2 and all(d.page_content.startswith("scene ") for d in captioned)
        assert all(d.page_content == uri for uri, d in by_uri.items() if d not in captioned)
        assert {"id", "score", "uri", "scores", "payload", "grounding"} <= set(docs[0].metadata)
        assert docs[0].metadata["grounding"][0]["word"] == "red"
        only_b = LangChainRetriever(collection=rag_collection).invoke(QUERY, filter={"kind": "b"}, k=6)
        assert len(only_b) == 3 and {d.metadata["payload"]["kind"] for d in only_b} == {"b"}
else:
    def test_langchain_adapter():
        pytest.skip("langchain-core / langchain-tests are not installed: pip install 'vitr-qdrant[dev]'")


def test_llamaindex_nodes(rag_collection):
    pytest.importorskip("llama_index.core", reason="llama-index-core is not installed: "
                        "pip install 'vitr-qdrant[llamaindex]'")
    from llama_index.core.schema import ImageNode, NodeWithScore

    from vitr_qdrant.integrations.llamaindex import VitrRetriever

    nodes = VitrRetriever(rag_collection, k=3).retrieve(QUERY)
    assert len(nodes) == 3 and all(isinstance(n, NodeWithScore) and isinstance(n.node, ImageNode) for n in nodes)
    assert [n.score for n in nodes] == sorted((n.score for n in nodes), reverse=True)
    assert all(n.node.image_path == n.node.metadata["uri"] and n.node.image_path.endswith(".png") for n in nodes)
    assert "grounding" not in nodes[0].node.get_content(metadata_mode="llm")
    filtered = VitrRetriever(rag_collection, k=6, filter={"kind": "a"}).retrieve(QUERY)
    assert len(filtered) == 3
    with pytest.raises(ValueError):
        VitrRetriever(rag_collection, k=0)


@pytest.mark.parametrize("module, extra", [("langchain", "langchain"), ("llamaindex", "llamaindex")])
def test_missing_extra_names_the_install(monkeypatch, module, extra):
    blocked = "langchain_core" if module == "langchain" else "llama_index.core"
    monkeypatch.setitem(sys.modules, blocked, None)
    monkeypatch.delitem(sys.modules, f"vitr_qdrant.integrations.{module}", raising=False)
    with pytest.raises(ImportError, match=rf"vitr-qdrant\[{extra}\]"):
        importlib.import_module(f"vitr_qdrant.integrations.{module}")


@pytest.mark.parametrize("framework", ["langchain", "llamaindex"])
def test_adapters_take_every_search_parameter_and_search_async(rag_collection, framework):
    """The adapters accept the library's search parameters (checked when made, raised as
    InputError) and their async paths await the same search off the event loop."""
    import asyncio

    pytest.importorskip("langchain_core" if framework == "langchain" else "llama_index.core")
    module = importlib.import_module(f"vitr_qdrant.integrations.{framework}")

    def make(**kw):
        return module.VitrRetriever(collection=rag_collection, **kw)

    full = rag_collection.search(QUERY, limit=6, prefetch=None, candidates=6)
    cut = full[2].score - 1e-6
    retriever = make(k=6, prefetch=None, candidates=6, score_threshold=cut, offset=1)
    want = [str(h.id) for h in full[1:3]]
    if framework == "langchain":
        sync = [d.id for d in retriever.invoke(QUERY)]
        many = asyncio.run(_gather(retriever.ainvoke(QUERY) for _ in range(4)))
        got = [[d.id for d in docs] for docs in many]
    else:
        sync = [n.node.id_ for n in retriever.retrieve(QUERY)]
        many = asyncio.run(_gather(retriever.aretrieve(QUERY) for _ in range(4)))
        got = [[n.node.id_ for n in nodes] for nodes in many]
    assert sync == want and got == [want] * 4
    for bad in (dict(k=0), dict(prefetch=0), dict(score_threshold="high"), dict(mode="clip")):
        with pytest.raises(vq.InputError):
            make(**bad)


async def _gather(coros):
    import asyncio

    return await asyncio.gather(*coros)
