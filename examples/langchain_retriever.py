"""LangChain: relation-aware image retrieval as a retriever, feeding a RAG prompt.

Needs: pip install 'vitr-qdrant[langchain]' (langchain-core). Offline: it indexes rendered
Relation Scenes with the bundled model (or your folder with --images, and --model MODEL_DIR).
No LLM is called: the last step prints the prompt you would send to one (a vision model can
also take the retrieved images, whose paths are in each document's metadata).

    python examples/langchain_retriever.py "red circle left of blue square"
    python examples/langchain_retriever.py "a dog left of a cat" --images ~/Pictures --model MODEL_DIR
"""
from __future__ import annotations

from typing import Sequence

from langchain_core.documents import Document
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnablePassthrough
from scenes_gallery import gallery_parser, open_gallery

from vitr_qdrant.integrations.langchain import VitrRetriever

PROMPT = ChatPromptTemplate.from_messages([
    ("system", "Answer from the retrieved images only. Each line is one image: its description and path."),
    ("human", "Images:\n{context}\n\nQuestion: {question}"),
])


def as_context(docs: list[Document]) -> str:
    return "\n".join(f"- {d.page_content} ({d.metadata['uri']}, score {d.metadata['score']:.3f})" for d in docs)


def main(argv: Sequence[str] | None = None) -> None:
    parser = gallery_parser("A LangChain retriever over a VitrCollection.", query="red circle left of blue square")
    args = parser.parse_args(argv)
    with open_gallery(args.model, args.images, args.n, args.store) as col:
        retriever = VitrRetriever(collection=col, k=args.k)   # also: mode="global", filter={...}
        for doc in retriever.invoke(args.query):
            print(f"{doc.metadata['score']:8.3f}  {doc.metadata['uri']}  {doc.page_content}")
            # doc.metadata["grounding"]: for each query word, the image box it attended to

        # A RAG chain: retrieve, format the hits as context, fill the prompt; add "| llm" to answer.
        chain = {"context": retriever | as_context, "question": RunnablePassthrough()} | PROMPT
        print("\n" + chain.invoke(args.query).to_string())


if __name__ == "__main__":
    main()
