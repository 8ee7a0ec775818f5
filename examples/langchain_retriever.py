"""LangChain: relation-aware image retrieval as a retriever, feeding a RAG prompt.

Needs: pip install 'vitr-qdrant[langchain]' (langchain-core). Offline: it indexes rendered scenes
of the bundled model's world (Object Scenes: everyday objects, each with a caption of what holds
in it as metadata), or your folder with --images (and --model MODEL_DIR). Only hits the model
thinks hold (calibrated probability >= 1/2, as score_threshold) reach the prompt. No LLM is
called: the last step prints the prompt you would send to one (a vision model can also take the
retrieved images, whose paths are in each document's metadata).

    python examples/langchain_retriever.py "dog left of cat"
    python examples/langchain_retriever.py "a dog left of a cat" --images ~/Pictures --model MODEL_DIR
"""
from __future__ import annotations

from typing import Sequence

from langchain_core.documents import Document
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnablePassthrough
from scenes_gallery import gallery_parser, open_gallery, probable

from vitr_qdrant.integrations.langchain import VitrRetriever

PROMPT = ChatPromptTemplate.from_messages([
    ("system", "Answer from the retrieved images only. Each line is one image: what holds in it, its "
               "path, and how likely the retriever thinks the question's scene is in it. If there are "
               "no images, say that none was found."),
    ("human", "Images:\n{context}\n\nQuestion: {question}"),
])


def as_context(docs: list[Document]) -> str:
    if not docs:
        return "(none: the model thinks the question's scene is in no stored image)"
    return "\n".join(f"- {d.page_content} ({d.metadata['uri']}; {_likely(d.metadata['probability'])})" for d in docs)


def _likely(p: float | None) -> str:
    return "match not calibrated" if p is None else f"matches with probability {p:.0%}"


def main(argv: Sequence[str] | None = None) -> None:
    parser = gallery_parser("A LangChain retriever over a VitrCollection.", query="dog left of cat")
    args = parser.parse_args(argv)
    with open_gallery(args.model, args.images, args.n, args.store, args.query) as col:
        # also: mode="global", filter={...}, prefetch=None (rank every image), candidates=...
        retriever = VitrRetriever(collection=col, k=args.k, score_threshold=probable(col))
        for doc in retriever.invoke(args.query):
            print(f"{doc.metadata['score']:8.3f}  p={doc.metadata['probability']}  {doc.metadata['uri']}  "
                  f"{doc.page_content}")
            # doc.metadata["grounding"]: for each query word, the image box it attended to

        # A RAG chain: retrieve, format the hits as context, fill the prompt; add "| llm" to answer.
        chain = {"context": retriever | as_context, "question": RunnablePassthrough()} | PROMPT
        print("\n" + chain.invoke(args.query).to_string())


if __name__ == "__main__":
    main()
