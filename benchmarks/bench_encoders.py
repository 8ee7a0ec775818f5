"""Encoder speed on this machine: image / text encoding throughput and fusion rerank latency.

    python benchmarks/bench_encoders.py [--model vitr-scenes-s] [--threads N] > encoders.json

Prints one JSON object. Uses the bundled weights of a bundled model (speed does not depend on
the weights; a random-initialised model of the same config is used otherwise), on scenes and
captions of the model's world (Object Scenes for the default).
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch

import vitr_qdrant.encoders as E
from vitr_qdrant.encoders.data.worlds import get_world
from vitr_qdrant.encoders.factory import DEFAULT_MODEL
from vitr_qdrant.encoders.model_eval import model_world


def _timed(fn, repeat: int) -> list[float]:
    fn()  # warm-up
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--candidates", type=int, default=50)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        model = E.load_model(args.model, device="cpu")
    except (FileNotFoundError, ValueError):
        model = E.create_model(args.model, device="cpu", load_pretrained=False)
    model.head_trained = True
    world = get_world(model_world(model))
    scenes = [world.sample_scene(i, "test-iid") for i in range(args.images)]
    images = [world.render(s) for s in scenes]
    captions = [world.caption(a, rel, b, i % world.n_templates, True)
                for i, (a, rel, b) in enumerate(p[0] for p in map(world.related_pairs, scenes) if p)]
    texts = [captions[i % len(captions)] for i in range(1024)]
    img_t = _timed(lambda: model.encode_images(images), 3)
    txt_t = _timed(lambda: model.encode_texts(texts), 3)
    emb = model.encode_images(images[: args.candidates])
    q = model.encode_queries([max(captions, key=len)])[0]
    rr = np.array(_timed(lambda: model.rerank(q, emb.global_vectors, emb.region_vectors), 200))
    print(json.dumps({
        "model": model.cfg.name, "world": world.name, "device": "cpu", "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "image_encode_img_per_s": round(args.images / min(img_t), 1),
        "image_encode_note": "PIL decode+resize of 128 px scenes included",
        "rerank_query_tokens": len(q.token_vectors[0]),
        "text_encode_texts_per_s": round(len(texts) / min(txt_t), 1),
        "rerank_candidates": args.candidates,
        "rerank_ms_p50": round(float(np.percentile(rr, 50)) * 1e3, 3),
        "rerank_ms_p95": round(float(np.percentile(rr, 95)) * 1e3, 3),
    }, indent=2))


if __name__ == "__main__":
    main()
