"""LlamaIndex: relation-aware image retrieval returning ImageNodes.

Needs: pip install 'vitr-qdrant[llamaindex]' (llama-index-core). Offline: it indexes rendered
Relation Scenes with the bundled model (or your folder with --images, and --model MODEL_DIR).
Each hit is a NodeWithScore(ImageNode) whose image_path (or image_url) is the stored image, so
a multimodal LLM or query engine of LlamaIndex can take the nodes as they are.

    python examples/llamaindex_retriever.py "green triangle above yellow star"
"""
from __future__ import annotations

from typing import Sequence

from scenes_gallery import gallery_parser, open_gallery

from vitr_qdrant.integrations.llamaindex import VitrRetriever


def main(argv: Sequence[str] | None = None) -> None:
    parser = gallery_parser("A LlamaIndex retriever over a VitrCollection.", query="green triangle above yellow star")
    args = parser.parse_args(argv)
    with open_gallery(args.model, args.images, args.n, args.store) as col:
        retriever = VitrRetriever(col, k=args.k)   # also: mode="global", filter={...}
        for hit in retriever.retrieve(args.query):
            node = hit.node
            print(f"{hit.score:8.3f}  {node.image_path or node.image_url}  {node.text}")
            # node.metadata: id, score, uri, per-stage scores, payload and grounding boxes


if __name__ == "__main__":
    main()
