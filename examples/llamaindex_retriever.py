"""LlamaIndex: relation-aware image retrieval returning ImageNodes.

Needs: pip install 'vitr-qdrant[llamaindex]' (llama-index-core). Offline: it indexes rendered
scenes of the bundled model's world (Object Scenes, a caption of each as metadata), or your
folder with --images (and --model MODEL_DIR). Only hits the model thinks hold (calibrated
probability >= 1/2) are returned.
Each hit is a NodeWithScore(ImageNode) whose image_path (or image_url) is the stored image, so
a multimodal LLM or query engine of LlamaIndex can take the nodes as they are.

    python examples/llamaindex_retriever.py "cup above book"
"""
from __future__ import annotations

from typing import Sequence

from scenes_gallery import gallery_parser, open_gallery, probable

from vitr_qdrant.integrations.llamaindex import VitrRetriever


def main(argv: Sequence[str] | None = None) -> None:
    parser = gallery_parser("A LlamaIndex retriever over a VitrCollection.", query="cup above book")
    args = parser.parse_args(argv)
    with open_gallery(args.model, args.images, args.n, args.store, args.query) as col:
        # also: mode="global", filter={...}, prefetch=None (rank every image), candidates=...
        retriever = VitrRetriever(col, k=args.k, score_threshold=probable(col))
        hits = retriever.retrieve(args.query)
        if not hits:
            print("no image: the model thinks the query holds in none")
        for hit in hits:
            node = hit.node
            print(f"{hit.score:8.3f}  {node.image_path or node.image_url}  {node.text}")
            # node.metadata: id, score, probability, uri, per-stage scores, payload and grounding boxes


if __name__ == "__main__":
    main()
