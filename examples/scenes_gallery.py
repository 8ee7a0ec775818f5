"""Helper of the RAG examples: a collection of your own images, or of captioned rendered scenes
of the model's world (Object Scenes for the bundled default).

Needs: vitr-qdrant installed. Offline with the bundled model (or --model MODEL_DIR).
Not an example by itself: `langchain_retriever.py` and `llamaindex_retriever.py` import it.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import vitr_qdrant as vq
from vitr_qdrant.demo.run import OBJECT_QUERIES, SPLIT, gallery_jobs, render_gallery, scene_of
from vitr_qdrant.encoders.data.worlds import get_world
from vitr_qdrant.encoders.model_eval import model_world


def describe(world, seed: int, split: str = SPLIT, swap: tuple[int, ...] = ()) -> str:
    """Up to three relations that hold in a gallery scene (as drawn: a twin's centres exchanged),
    as text an LLM can read."""
    scene = scene_of(world.name, seed, split, tuple(swap))
    facts = [world.caption(a, rel, b) for a, rel, b in world.related_pairs(scene)[:3]]
    return "; ".join(facts) or ", ".join(o.phrase() for o in scene.objects)


def open_gallery(model: str | None, images: str | None, n: int, store: str | None,
                 query: str | None = None) -> vq.VitrCollection:
    """Your folder ``images``, else ``n`` rendered scenes with a ``caption`` in their payload
    (and, for a demo query of the world, scene pairs where it holds in one and its swap in the other)."""
    store = Path(store or tempfile.mkdtemp(prefix="vitr-rag-"))
    model = vq.load_model(model)
    col = vq.VitrCollection("rag", path=store / "store", model=model)
    if images:
        print(col.add_images(images))
    else:   # the payload's caption becomes the document text of each hit
        world = get_world(model_world(model))
        jobs = gallery_jobs(world, n, [q for q in OBJECT_QUERIES if q[0] == query and world.name == "object-scenes"])
        paths = render_gallery(store / "images", world, jobs)
        print(col.add_images(paths, metadata=[{"caption": describe(world, *job)} for job in jobs]))
    return col


def probable(col: vq.VitrCollection, probability: float = 0.5) -> float | None:
    """The vitr score at which the model's calibrated probability is ``probability``: a
    ``score_threshold`` that keeps only hits the model thinks hold (None for an uncalibrated model)."""
    return col.model.score_for_probability(probability, "vitr")


def gallery_parser(description: str, query: str) -> argparse.ArgumentParser:
    """The RAG examples' options: the query, the images (or scenes), the model, k."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("query", nargs="?", default=query)
    ap.add_argument("--images", help="your image folder (default: render scenes of the model's world)")
    ap.add_argument("--n", type=int, default=200, help="scenes to render")
    ap.add_argument("--model", help="model name or directory (default: the bundled default model)")
    ap.add_argument("--store", help="working directory (default: a new temporary one)")
    ap.add_argument("-k", type=int, default=4)
    return ap
