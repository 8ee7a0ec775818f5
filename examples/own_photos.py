"""Search your own photo folder with a pretrained open_clip backbone (`vitr-ViT-B-32`).

Needs: vitr-qdrant installed, and open_clip's ViT-B-32 (OpenAI) weights: downloaded by
open_clip on first use (internet, about 350 MB, then cached), or a local checkpoint file given
with --pretrained. Without a trained VITR head the model searches in global mode (the CLIP
baseline, which does not understand relations); train a head on Flickr30K
(examples/train_head_flickr30k.sh) and pass its directory as --model for relation-aware search.

    python examples/own_photos.py ~/Pictures "a dog on a sofa" "a red car next to a tree"
    python examples/own_photos.py ~/Pictures "a dog" --pretrained ~/ckpt/open_clip_vit_b_32.bin
    python examples/own_photos.py ~/Pictures "a dog left of a cat" --model runs/flickr30k-head/last
    python examples/own_photos.py ~/Pictures --like ~/Pictures/beach.jpg

The collection persists (in $VITR_QDRANT_HOME, or --store): running again only adds new photos.
"""
from __future__ import annotations

import argparse
from typing import Sequence

import vitr_qdrant as vq


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Index a photo folder and search it by text or by image.")
    ap.add_argument("folder", help="folder of photos (searched recursively)")
    ap.add_argument("queries", nargs="*", help="text queries")
    ap.add_argument("--like", help="also find the photos most similar to this image (path or URL)")
    ap.add_argument("--model", default="vitr-ViT-B-32", help="registered name or a trained model directory")
    ap.add_argument("--pretrained", help="local open_clip checkpoint file for the backbone (no download)")
    ap.add_argument("--collection", default="photos")
    ap.add_argument("--store", help="store directory (default: $VITR_QDRANT_HOME or the user data dir)")
    ap.add_argument("--limit", type=int, default=5)
    ap.add_argument("--device", help="cpu, cuda, ... (default: CUDA when available)")
    args = ap.parse_args(argv)

    if args.pretrained:   # a registered name with the backbone weights from a local file
        model = vq.create_model(args.model, pretrained=args.pretrained, device=args.device)
    else:                 # a name (open_clip downloads its weights) or a directory written by `vitr train`
        model = vq.load_model(args.model, device=args.device)
    mode = "vitr" if model.head_trained else "global"
    print(f"model {model.cfg.name}: searching in {mode} mode")

    # One collection per model: opening it with another model is an error, not silent garbage.
    with vq.VitrCollection(args.collection, path=args.store, model=model) as col:
        report = col.add_images(args.folder)   # bad files are reported, never raised
        print(report)
        print(f"{len(col)} photos in collection {args.collection!r}")
        for query in args.queries:
            print(f"\n{query!r}")
            for hit in col.search(query, limit=args.limit, mode=mode):
                print(f"  {hit.score:7.3f}  {hit.uri}")
        if args.like:
            print(f"\nlike {args.like}")
            for hit in col.search_by_image(args.like, limit=args.limit):
                print(f"  {hit.score:7.3f}  {hit.uri}")


if __name__ == "__main__":
    main()
