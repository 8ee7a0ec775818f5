"""Quickstart: relation-aware image search in the embedded Qdrant store, offline.

Needs: vitr-qdrant installed (`make install`, or `pip install -e .` in the repository). Nothing
else: it uses the bundled default model and renders its own images in the world that model was
trained on (Object Scenes for the default). If the model is not installed it says so and falls
back to random weights (the search runs, the hits mean nothing).

    python examples/quickstart.py                          # 300 scenes in a temporary store
    python examples/quickstart.py --n 2000 --store ./store --model MODEL_DIR
"""
from __future__ import annotations

import argparse
import tempfile
from typing import Sequence

import vitr_qdrant as vq
from vitr_qdrant.encoders import VitrModel
from vitr_qdrant.encoders.data.worlds import get_world
from vitr_qdrant.encoders.evaluation import EVAL_SEED
from vitr_qdrant.encoders.factory import DEFAULT_MODEL
from vitr_qdrant.encoders.model_eval import model_world

FIRST_SEED = EVAL_SEED       # evaluation scenes, far from the seeds the model was trained on
HOLDS = {True: "yes", False: "NO", None: "n/a"}


def load(model: str | None) -> VitrModel:
    try:
        return vq.load_model(model)   # None: the bundled default
    except vq.ModelNotFoundError as exc:
        print(f"NOTE: {exc}\n      Falling back to {DEFAULT_MODEL} with RANDOM weights: the search runs, "
              "its hits mean nothing. Pass --model MODEL_DIR for a trained model.\n")
        return vq.create_model(DEFAULT_MODEL)


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Relation-aware search over rendered scenes.")
    ap.add_argument("--n", type=int, default=300, help="number of scenes to index")
    ap.add_argument("--model", help="model name or directory (default: the bundled default model)")
    ap.add_argument("--store", help="store directory (default: a new temporary one)")
    ap.add_argument("--top", type=int, default=5, help="hits per query")
    args = ap.parse_args(argv)
    model = load(args.model)
    world = get_world(model_world(model))

    # 1. Images: rendered scenes as PIL images (paths, folders, URLs, bytes and arrays work too).
    scenes = [world.sample_scene(FIRST_SEED + i, "test-iid") for i in range(args.n)]
    images = [world.render(scene, 128) for scene in scenes]

    # 2. Index them. Without path=, collections live in $VITR_QDRANT_HOME (default
    #    ~/.local/share/vitr-qdrant); ids are ours here (else a hash of each image).
    store = args.store or tempfile.mkdtemp(prefix="vitr-quickstart-")
    with vq.VitrCollection("quickstart", path=store, model=model) as col:
        report = col.add_images(images, ids=list(range(args.n)))
        print(f"{report.added} added, {report.skipped} already there, {len(report.failed)} failed -> {store}")

        # 3. A relation that holds in one scene, then its swap: CLIP-style search cannot tell them apart.
        a, rel, b = next(pairs[0] for pairs in map(world.related_pairs, scenes) if pairs)
        for query in (world.caption(a, rel, b), world.caption(b, rel, a)):
            print(f"\n{query!r}")
            for hit in col.search(query, limit=args.top):   # mode="vitr": prefetch, MaxSim, fusion
                grounded = ", ".join(f"{g.word}@{tuple(round(v) for v in g.box)}" for g in hit.grounding[:3])
                print(f"  scene {hit.id:>5}  score {hit.score:8.3f}  holds: {HOLDS[world.truth(scenes[hit.id], query)]:<4}"
                      f"  {grounded}")


if __name__ == "__main__":
    main()
