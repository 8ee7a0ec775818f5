"""Fit a model's first stage on its own world and add it to its model directory (JSON out).

    python -m vitr_qdrant.encoders.fit_first_stage --model vitr-objects-s --out DIR
        [--images 30000] [--steps 1500] [--dim 128] [--hard 4] [--init] [--cache runs/first-stage-fit]

Renders ``--images`` scenes of the model's world from the ``train`` split (held-out compositions
never appear there), two captions each from the training caption sampler, encodes both with the
frozen model (cached in ``--cache``, resumable), fits :class:`~.first_stage.FirstStage` by
distillation from the model's MaxSim (:func:`~.first_stage.fit_first_stage`; ``--hard``: with its
own near misses in every step), and checks it on
``--check`` test-iid images: how often the first stage's top N holds MaxSim's top k, against the
global vector's. The model directory ``--out`` is the model with its first stage (a copy of the
model's own files, its ``config.json`` naming the first stage, plus ``first_stage.safetensors``).
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from .data.world import split_rng
from .data.worlds import get_world
from .evaluation import EVAL_SEED
from .factory import WEIGHTS_DIR, load_model
from .first_stage import FirstStage, FirstStageCfg, FitCfg, encode_all_regions, fit_first_stage, pad
from .local import late_scores

TRAIN_SEED, CHUNK, CAPTIONS, MAX_TOKENS = 7_000_000, 2000, 4, 24


def encode_split(model: Any, split: str, seed: int, n: int, cache: Path) -> dict[str, np.ndarray]:
    """Of scenes ``seed + k`` of ``split``: ``regions`` (n, R, d) and ``g`` (n, D), and of
    ``CAPTIONS`` captions of each (caption c belongs to image c // CAPTIONS) ``words`` (C, L, d),
    ``mask`` (C, L) and ``tg`` (C, D); cached in chunks."""
    world = get_world(model.cfg.world)
    cache.mkdir(parents=True, exist_ok=True)
    parts = []
    for c0 in range(0, n, CHUNK):
        path = cache / f"{split}-{seed}-{c0:07d}.npz"
        if not path.exists():
            rng = split_rng(seed + c0, split, "fs-captions")
            scenes = [world.first_scene(seed + k, split) for k in range(c0, min(n, c0 + CHUNK))]
            captions = []
            for s in scenes:
                for _ in range(CAPTIONS):
                    (a, rel, b), template, size_words = world.sample_caption(s, rng)
                    captions.append(world.caption(a, rel, b, template, size_words))
            size = max(model.backbone.image_size, world.min_render_size)   # the model resizes to its input
            emb = model.encode_images([world.render(s, size) for s in scenes], batch_size=128)
            txt = model.encode_texts(captions, batch_size=1024)
            words, mask = pad(txt.token_vectors, MAX_TOKENS)
            tmp = path.with_suffix(".tmp.npz")
            np.savez(tmp, regions=emb.region_vectors.astype(np.float16), g=emb.global_vectors.astype(np.float16),
                     words=words, mask=mask, tg=txt.global_vectors.astype(np.float16))
            tmp.rename(path)
        parts.append(np.load(path))
    return {k: np.concatenate([p[k] for p in parts]) for k in ("regions", "g", "words", "mask", "tg")}


@torch.no_grad()
def check(stage: FirstStage, regions: np.ndarray, words: np.ndarray, mask: np.ndarray, g_img: np.ndarray,
          g_txt: np.ndarray, ns: Sequence[int] = (20, 100, 200, 500), ks: Sequence[int] = (1, 10, 50)) -> dict[str, Any]:
    """Percent of MaxSim's top k (over the whole gallery) within the top N by the first stage, and by
    the global vector, for each query."""
    r = torch.from_numpy(regions.astype(np.float32))
    w, m = torch.from_numpy(words.astype(np.float32)), torch.from_numpy(mask)
    teacher = torch.cat([late_scores(w, m, r[i:i + 2048]) for i in range(0, len(r), 2048)]).T.numpy()
    first = (stage.encode_tokens(w, m) @ encode_all_regions(stage, r).T).numpy()
    top_t = np.argsort(-teacher, axis=1)
    out: dict[str, Any] = {}
    for name, scores in (("first", first), ("global", g_txt @ g_img.T)):
        top = np.argsort(-scores, axis=1)
        out[name] = {f"top{n}_holds_maxsim_top{k}": round(100 * float(np.mean(
            [len(set(top_t[q, :k]) & set(top[q, :n])) / k for q in range(len(top))])), 1) for n in ns for k in ks}
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="vitr-objects-s")
    ap.add_argument("--out", type=Path, required=True, help="model directory to write (the model with its first stage)")
    ap.add_argument("--images", type=int, default=30_000)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--texts", type=int, default=128)
    ap.add_argument("--lr", type=float, default=FitCfg.lr)
    ap.add_argument("--teacher-temperature", type=float, default=FitCfg.teacher_temperature)
    ap.add_argument("--student-temperature", type=float, default=FitCfg.student_temperature)
    ap.add_argument("--hard", type=int, default=FitCfg.hard, help="near misses per caption in each step (0: none)")
    ap.add_argument("--pool", type=int, default=FitCfg.pool, help="the near misses are drawn from this top")
    ap.add_argument("--init", action="store_true",
                    help="go on from the first stage the model has (its --dim and --hidden), not from random weights")
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--check", type=int, default=10_000, help="test-iid images of the check")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache", type=Path, default=Path("runs/first-stage-fit"))
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = load_model(a.model, device="cpu")
    t0 = time.perf_counter()
    train = encode_split(model, "train", TRAIN_SEED, a.images, a.cache)
    t_encode = time.perf_counter() - t0
    if a.init and model.first_stage is None:
        raise SystemExit(f"--init: model {a.model} has no first stage to go on from")
    stage = model.first_stage if a.init else FirstStage(model.cfg.local.dim, FirstStageCfg(dim=a.dim, hidden=a.hidden))
    cfg = FitCfg(steps=a.steps, batch=a.batch, texts=a.texts, lr=a.lr, teacher_temperature=a.teacher_temperature,
                 student_temperature=a.student_temperature, hard=a.hard, pool=a.pool)
    t0 = time.perf_counter()
    losses = fit_first_stage(stage, train["regions"], train["words"], train["mask"],
                             np.arange(len(train["words"])) // CAPTIONS, cfg)
    t_fit = time.perf_counter() - t0
    gal = encode_split(model, "test-iid", EVAL_SEED, a.check, a.cache)
    q = np.arange(0, len(gal["words"]), CAPTIONS)[: a.queries]   # one caption of each of the first images
    result = {"model": a.model, "images": a.images, "fit": vars(cfg), "init": a.init,
              "first_stage": {"dim": stage.cfg.dim, "hidden": stage.cfg.hidden},
              "encode_s": round(t_encode, 1), "fit_s": round(t_fit, 1),
              "loss_first_50": round(float(np.mean(losses[:50])), 4), "loss_last_50": round(float(np.mean(losses[-50:])), 4),
              "check": {"images": a.check, "queries": len(q),
                        **check(stage, gal["regions"], gal["words"][q], gal["mask"][q], gal["g"].astype(np.float32),
                                gal["tg"][q].astype(np.float32))}}
    model.cfg.first_stage, model.first_stage = stage.cfg, stage
    write_model_dir(model, a.model, a.out)
    (a.out / "first_stage.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


def write_model_dir(model: Any, source: str, out: Path) -> None:
    """The model's own directory files (model card, pictures) copied to ``out``, then the model
    saved there with its first stage."""
    src = Path(source) if Path(source).is_dir() else WEIGHTS_DIR / source
    if src.is_dir() and src.resolve() != out.resolve():
        shutil.copytree(src, out, dirs_exist_ok=True)
    model.save(out)


if __name__ == "__main__":
    raise SystemExit(main())
