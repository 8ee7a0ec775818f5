"""The bundled trainer: a readable loop for the two stages of a VITR model.

``clip``: the backbone, contrastively (InfoNCE on global vectors): this alone is the CLIP
baseline. ``head``: local encoders + fusion on the frozen backbone (features cached, or per step
from augmented pixels), with InfoNCE on late scores and cross-entropy + hardest-negative
triplet on fusion scores over hard negatives (the world's negatives, the partner image,
in-batch others).

Fine-tuning: ``init=`` a model directory or a registered name; a head stage continues a trained
head (``head=new``: a fresh one) at :data:`FINETUNE_LR` unless ``lr=`` says otherwise; words of
the captions a word tokenizer lacks are learned (see :func:`.tokenizer.grow_vocabulary`) or
refused before the first step. The result is its own model (``name=``), its ``config.json``
recording parent, data, command and final evaluation; a head-stage model directory references
its frozen backbone instead of copying it (``store_backbone=true`` copies).

Run: ``python -m vitr_qdrant.encoders.train --config cfg.json key=value ...`` (or ``vitr train``;
``vitr train --help`` lists every option);
several GPUs: ``torchrun --nproc_per_node N -m vitr_qdrant.encoders.train ...``. A run writes a
checkpoint at every epoch end and at least every ``checkpoint_minutes``; started again with
the same options it resumes from ``out/last`` exactly where it stopped (every draw of the loop
is a function of the seed and the step).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from ..errors import InputError
from .config import checked, describe_options, option
from .data.record_pool import RecordSampler, build_record_pool
from .data.scene_pool import CaptionSampler, build_pool, render_default
from .data.worlds import WORLD_NAMES, get_world
from .model import VitrModel
from .model_dir import read_config
from .model_files import write_config
from .checkpoint import Checkpoint
from .finetune import FINETUNE_LR, FRESH_LR, build_model, default_lr, learn_words, training_record
from .modes import MODES
from .tasks import EMBEDDING, ClipTask, HeadTask, Task

log = logging.getLogger(__name__)


@dataclass
class TrainCfg:
    """The trainer's options (``vitr train key=value ...``); each one's help is its meaning."""

    model: str = option("vitr-scenes-s", "registered model config to build when there is no init= "
                        "(with init=, the architecture is init's)")
    stage: str = option("clip", "clip (the backbone, InfoNCE on global vectors) or head (local "
                        "encoders + fusion on the frozen backbone)")
    init: str | None = option(None, "model to start from: a model directory or a registered name "
                              "(bundled weights, e.g. vitr-objects-s); head stage: its backbone, "
                              "and its head when trained (see head=)")
    head: str = option("continue", "head stage with a trained init: continue (fine-tune its head) "
                       "or new (a fresh head on its backbone)")
    name: str | None = option(None, "the trained model's name (its fingerprint; collections "
                              "indexed with it name it); default: the last part of out")
    out: str = option("runs/vitr-scenes-s", "run folder: last/ (checkpoint and model), best/, "
                      "log.jsonl")
    data: str = option("relation-scenes", "a world (relation-scenes, object-scenes) or a captions "
                       "file (JSONL/CSV with keys image and caption; Karpathy, COCO, CLEVR)")
    data_format: str | None = option(None, "karpathy, coco, clevr, csv, jsonl (default: guessed "
                                     "from the file)")
    data_split: str | None = option(None, "keep only this split of the file (e.g. train)")
    image_root: str | None = option(None, "folder of the images (default: the file's folder)")
    eval_data: str | None = option(None, "held-out captions file (data_format) evaluated at the "
                                   "end of training and recorded in the model (worlds: their "
                                   "test sets)")
    store_backbone: bool = option(False, "head stage: store a copy of the frozen backbone in "
                                  "the model directories (self-contained, to ship or move) "
                                  "instead of a reference to where it came from")
    new_words: str = option("learn", "captions with words a word tokenizer lacks: learn (grow "
                            "the vocabulary; new embedding rows start as the unknown token's) or "
                            "refuse (stop before the first step, exit 2)")
    art: list[str] | None = option(None, "Object Scenes: train on these art sets only (default "
                                   "all)")
    styles: bool = option(False, "Object Scenes: draw pool scenes in training styles")
    augment: float = option(0.0, "strength of per-step pixel augmentation (0: none)")
    pool_size: int = option(40_000, "worlds: scenes rendered for the training pool")
    pool_cache: str | None = option(None, "worlds: .npz file caching the rendered pool")
    render_size: int = option(128, "worlds: pixels the scenes are drawn at before resizing")
    seed: int = option(0, "seed of every draw (resumes are exact)")
    epochs: int = option(10, "passes over the pool (max_steps overrides)")
    batch_size: int = option(128, "images per step (per process)")
    lr: float | None = option(None, f"peak learning rate; default {FRESH_LR:g}, or {FINETUNE_LR:g}"
                              " for a head stage continuing a trained head")
    weight_decay: float = option(0.1, "AdamW weight decay of 2-D weights")
    warmup_steps: int = option(200, "linear warmup steps (capped at a tenth of the run)")
    grad_clip: float = option(1.0, "gradient norm clip")
    flip: bool = option(True, "mirror images (and swap left/right in captions) at random")
    in_batch_negatives: int = option(8, "head stage: other captions/images of the batch per item")
    triplet_weight: float = option(1.0, "head stage: hardest-negative triplet loss weight")
    late_weight: float = option(1.0, "head stage: late (MaxSim) InfoNCE weight")
    ground_weight: float = option(1.0, "head stage: noun-phrase grounding and role supervision "
                                  "(worlds)")
    hard_weight: float = option(1.0, "head stage: each positive above its own hard negatives")
    attr_weight: float = option(0.0, "head stage: regions predict their objects' attributes "
                                "(worlds)")
    cache_features: bool = option(True, "head stage: compute backbone features once (no pixel "
                                  "augmentation)")
    eval_every: int = option(1, "evaluate on the world's test sets every N epochs (0: never)")
    eval_images: int = option(200, "worlds: images per evaluation set")
    eval_pairs: int = option(200, "worlds: swapped pairs per evaluation set")
    eval_art: str | None = option(None, "Object Scenes: evaluate on this art set only")
    max_steps: int | None = option(None, "stop after this many steps (default: epochs)")
    checkpoint_minutes: float = option(10.0, "write last/ at least this often (and each epoch end, "
                                       "and on Ctrl-C)")
    workers: int = option(2, "processes/threads rendering or loading images")
    device: str | None = option(None, "cpu, cuda, ... (default: CUDA when available)")
    threads: int | None = option(None, "CPU threads for torch (1 is steadiest on a shared "
                                 "machine)")
    resume: bool = option(True, "continue from out/last when it exists")
    log_every: int = option(20, "write a log.jsonl line every N steps (and at the first and "
                            "last)")


def load_train_cfg(path: str | None, overrides: list[str]) -> TrainCfg:
    """A TrainCfg from an optional JSON file and ``key=value`` overrides (JSON-parsed values)."""
    d = json.loads(Path(path).read_text()) if path else {}
    for item in overrides:
        key, _, value = item.partition("=")
        try:
            d[key] = json.loads(value)
        except json.JSONDecodeError:
            d[key] = value
    return TrainCfg(**checked(TrainCfg, d, "training option"))


def get_lr(step: int, total: int, cfg: TrainCfg) -> float:
    """Linear warmup (``warmup_steps``, at most a tenth of the run), then cosine decay to 5 % of
    the peak."""
    peak = FRESH_LR if cfg.lr is None else cfg.lr
    warmup = max(1, min(cfg.warmup_steps, total // 10))
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def make_optimizer(params: list[tuple[str, torch.nn.Parameter]], cfg: TrainCfg, fused: bool,
                   rows: tuple = ()):
    """AdamW; weight decay only on 2-D+ weights (not norms, biases, scales). ``rows``: parameters
    of which only some rows train (new words' embeddings): no decay (it would move the frozen
    rows), and at least the fresh learning rate (the rows are new)."""
    rows = {id(p) for p in rows}
    decay = [p for _, p in params if p.ndim >= 2 and id(p) not in rows]
    other = [p for _, p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": other, "weight_decay": 0.0}]
    if rows:
        groups.append({"params": [p for _, p in params if id(p) in rows], "weight_decay": 0.0,
                       "lr_scale": max(1.0, FRESH_LR / cfg.lr)})
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.98), fused=fused)


class Dist:
    """torchrun's environment, or a single process."""

    def __init__(self):
        self.world = int(os.environ.get("WORLD_SIZE", 1))
        self.rank = int(os.environ.get("RANK", 0))
        if self.world > 1:
            backend = "nccl" if torch.cuda.is_available() else "gloo"
            dist.init_process_group(backend)
            if torch.cuda.is_available():
                torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))

    @property
    def main(self) -> bool:
        return self.rank == 0

    def wrap(self, task: Task) -> torch.nn.Module:
        """The task under DDP, handed only the parameters it trains (the rest frozen)."""
        task.freeze_others()
        if self.world == 1:
            return task
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(task)

    def close(self) -> None:
        if self.world > 1:
            dist.destroy_process_group()


@dataclass
class Schedule:
    """Which pool indices and flip each step uses: pure functions of (seed, step), so a
    resumed run continues exactly where it stopped."""

    n: int
    batch: int
    world: int
    seed: int
    epochs: int
    flip: bool
    max_steps: int | None = None

    @property
    def per_epoch(self) -> int:
        return max(1, self.n // (self.batch * self.world))

    @property
    def total(self) -> int:
        return self.max_steps or self.per_epoch * self.epochs

    def indices(self, step: int, rank: int) -> np.ndarray:
        epoch, b = divmod(step, self.per_epoch)
        perm = np.random.default_rng(self.seed + epoch).permutation(self.n)
        start = (b * self.world + rank) * self.batch
        return perm[start:start + self.batch]

    def flipped(self, step: int) -> bool:
        return self.flip and bool(np.random.default_rng([self.seed, step, 7]).random() < 0.5)

    def epoch_end(self, step: int) -> bool:
        return step % self.per_epoch == 0 or step >= self.total


def _check_options(cfg: TrainCfg) -> None:
    """Options with a closed set of values, checked before anything is built."""
    for key, allowed in (("stage", ("clip", "head")), ("head", ("continue", "new")),
                         ("new_words", ("learn", "refuse"))):
        if getattr(cfg, key) not in allowed:
            raise InputError(f"{key}={getattr(cfg, key)!r}: expected one of {allowed}")


def _data(cfg: TrainCfg, size: int, rank: int):
    """The training pool and its caption sampler: a world's scenes or a real dataset."""
    if cfg.data in WORLD_NAMES:
        if (cfg.styles or cfg.art) and not get_world(cfg.data).art_sets:
            raise InputError(f"styles= and art= need a world with art sets (object-scenes), not "
                             f"{cfg.data}")
        renderer = render_default
        if cfg.styles:
            from .data.styles import StyledRenderer

            renderer = StyledRenderer()
        pool = build_pool(cfg.pool_size, size, cfg.render_size, cfg.seed, cfg.workers,
                          cfg.pool_cache, world=cfg.data, art=cfg.art, renderer=renderer)
        return pool, CaptionSampler(pool, cfg.seed + rank)
    extra = {"image_root": cfg.image_root} if cfg.image_root else {}
    pool = build_record_pool(cfg.data, size, cfg.data_format, cfg.data_split, cfg.workers,
                             **extra)
    return pool, RecordSampler(pool, cfg.seed + rank)


_EVAL_SETS: dict = {}


def _eval(model: VitrModel, cfg: TrainCfg) -> dict:
    """The protocol on small test-iid and test-comp sets of the world (built once per process)."""
    from .evaluation import build_eval_set, evaluate
    from .model_eval import CachedScorer

    model.eval()
    modes = ("global",) if cfg.stage == "clip" else MODES
    out = {}
    for split in ("test-iid", "test-comp"):
        key = (cfg.data, split, cfg.eval_images, cfg.eval_pairs, cfg.eval_art)
        if key not in _EVAL_SETS:
            _EVAL_SETS[key] = build_eval_set(split, n_images=cfg.eval_images,
                                             n_pairs=cfg.eval_pairs, world=cfg.data,
                                             art=cfg.eval_art)
        cache = CachedScorer(model)
        for mode in modes:
            out[f"{split}/{mode}"] = evaluate(cache.scorer(mode), _EVAL_SETS[key])
    model.train()
    return out


def _headline(results: dict, stage: str) -> float:
    """What ``best/`` keeps: test-iid rsum plus swap accuracy, both in percent."""
    r = results[f"test-iid/{'global' if stage == 'clip' else 'vitr'}"]
    return float(r["rsum"]) + float(r["swap_acc"] or 0.0)


def _evaluate_and_keep(run: "Run") -> None:
    """The world's test sets now; ``best/`` keeps the model with the best headline so far."""
    run.results = _eval(run.model, run.cfg)
    run.logf.write(json.dumps({"step": run.step, "eval": run.results}) + "\n")
    run.logf.flush()
    if _headline(run.results, run.cfg.stage) > run.best:
        run.best = _headline(run.results, run.cfg.stage)
        run.model.save(run.out / "best")


@dataclass
class Run:
    """One stage's state: what the loop reads and advances."""

    cfg: TrainCfg
    ddp: Dist
    model: VitrModel
    task: Task
    wrapped: torch.nn.Module
    params: list
    opt: torch.optim.Optimizer
    plan: Schedule
    ckpt: Checkpoint
    step: int = 0
    best: float = -math.inf
    seen: int = 0
    t0: float = field(default_factory=time.time)
    saved_at: float = field(default_factory=time.time)
    results: dict | None = None   # the last evaluation on the world's test sets
    logf: Any = None
    bar: Any = None
    stop: bool = False            # Ctrl-C: checkpoint after this step, then stop

    @property
    def out(self) -> Path:
        return Path(self.cfg.out)

    @property
    def samples_per_s(self) -> float:
        return self.seen / max(1e-9, time.time() - self.t0)


def _prepare(cfg: TrainCfg, ddp: Dist, device: torch.device) -> Run:
    """Model, data, new words, task, optimizer and schedule; resumed from ``out/last`` if there."""
    model, parent = build_model(cfg, device)
    cfg = replace(cfg, lr=default_lr(cfg, model))
    pool, sampler = _data(cfg, model.backbone.image_size, ddp.rank)
    words, rows = learn_words(cfg, model, pool)
    if rows and model.backbone_ref:
        model.backbone_ref["stored"] = [EMBEDDING]
    model.cfg.training = training_record(cfg, parent, pool, words)
    task = (ClipTask(model, cfg, pool, sampler) if cfg.stage == "clip"
            else HeadTask(model, cfg, pool, sampler, word_rows=rows))
    model.head_trained = model.head_trained or cfg.stage == "head"
    params = task.trainable()
    opt = make_optimizer(params, cfg, fused=device.type == "cuda", rows=task.row_params())
    run = Run(cfg, ddp, model, task, task, params, opt,
              Schedule(len(pool), cfg.batch_size, ddp.world, cfg.seed, cfg.epochs, cfg.flip,
                       cfg.max_steps), Checkpoint(Path(cfg.out)))
    if cfg.resume and run.ckpt.found() is not None:
        run.step, run.best = run.ckpt.restore(model, opt, task, device)
    run.wrapped = ddp.wrap(task)
    return run


def _step(run: Run) -> dict:
    """One optimizer step; the losses and metrics of its batch."""
    idx = run.plan.indices(run.step, run.ddp.rank)
    lr = get_lr(run.step, run.plan.total, run.cfg)
    for g in run.opt.param_groups:
        g["lr"] = lr * g.get("lr_scale", 1.0)
    losses, metrics = run.wrapped(idx, run.plan.flipped(run.step), run.step)
    loss = sum(losses.values())
    run.opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_([p for _, p in run.params], run.cfg.grad_clip)
    run.opt.step()
    run.step += 1
    run.seen += len(idx) * run.ddp.world
    return {"step": run.step, "epoch": (run.step - 1) // run.plan.per_epoch, "lr": lr,
            "loss": loss.item(), **{k: v.item() for k, v in losses.items()}, **metrics}


def _report(run: Run, rec: dict) -> None:
    """The progress bar's loss and samples/s; a log line at step 1, every ``log_every`` and at
    the last step."""
    run.bar.update(1)
    run.bar.set_postfix(loss=f"{rec['loss']:.3f}", samples_s=f"{run.samples_per_s:.1f}")
    if run.step in (1, run.plan.total) or run.step % run.cfg.log_every == 0:
        run.logf.write(json.dumps({**rec, "samples_per_s": run.samples_per_s}) + "\n")
        run.logf.flush()


def _checkpoint_when_due(run: Run) -> None:
    """At each epoch end (evaluating when due) and every ``checkpoint_minutes``: ``last/``."""
    plan, cfg = run.plan, run.cfg
    end = plan.epoch_end(run.step)
    if end and cfg.eval_every and cfg.data in WORLD_NAMES and (
            (run.step // plan.per_epoch) % cfg.eval_every == 0 or run.step >= plan.total):
        _evaluate_and_keep(run)
    if end or time.time() - run.saved_at >= 60 * cfg.checkpoint_minutes:
        _save(run)


def _save(run: Run) -> None:
    run.ckpt.save(run.model, run.opt, run.task, run.step, run.best, run.cfg)
    run.saved_at = time.time()


@contextlib.contextmanager
def _ctrl_c_stops_after_the_step(run: Run):
    """A first Ctrl-C lets the current step finish and asks the loop to checkpoint and stop; a
    second one stops at once (the last checkpoint remains)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if run.stop:
            raise KeyboardInterrupt
        run.stop = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _loop(run: Run) -> None:
    """Steps until the schedule ends or Ctrl-C; only the main process logs and checkpoints."""
    while run.step < run.plan.total and not run.stop:
        rec = _step(run)
        if run.ddp.main:
            _report(run, rec)
            _checkpoint_when_due(run)
    if run.stop and run.ddp.main:
        _save(run)


def _final_evaluation(run: Run) -> dict | None:
    """``eval_data`` scored by the trained model, else the world's last evaluation, else None."""
    if run.cfg.eval_data is None:
        return {"world": run.cfg.data, "results": run.results} if run.results else None
    from .file_eval import evaluate_file

    result = evaluate_file(run.model.eval(), run.cfg.eval_data, run.cfg.data_format,
                           image_root=run.cfg.image_root)
    run.model.train()
    return result


def _summary(evaluation: dict | None) -> str:
    if evaluation is None:
        return ("not evaluated (train with eval_data=FILE, or run vitr eval --data FILE "
                "--model DIR)")
    if "metrics" in evaluation:
        m = evaluation["metrics"]
        return (f"evaluation on {evaluation['data']} ({evaluation['images']} images, {evaluation['mode']}): "
                f"t2i R@1 {m['t2i_r1']:.1f}, i2t R@1 {m['i2t_r1']:.1f}, rsum {m['rsum']:.1f}")
    key, r = next((k, v) for k, v in evaluation["results"].items() if k.startswith("test-iid"))
    return f"evaluation {key}: t2i R@1 {r['t2i_r1']:.1f}, rsum {r['rsum']:.1f}, swap {r['swap_acc']}"


def _finish(run: Run) -> Path:
    """Record steps and evaluation in ``last/`` (its config and generated model card); print the
    closing line."""
    final = run.out / "last"
    evaluation = _final_evaluation(run)
    run.model.cfg.training.update(steps=run.step, evaluation=evaluation)
    write_config(run.model, final)
    log.info("done: %d steps, %.1f samples/s", run.step, run.samples_per_s)
    return final


def closing_line(directory: Path) -> str:
    """What ``vitr train`` prints last: the model's name and directory, and its evaluation."""
    cfg, _ = read_config(directory)
    return (f"vitr train: model {cfg.name!r} is in {directory} (vitr index --model {directory}); "
            f"{_summary((cfg.training or {}).get('evaluation'))}")


def train(cfg: TrainCfg) -> Path:
    """Run one stage; returns the trained model's directory (``out/last``; the world runs also
    keep ``out/best``). Ctrl-C checkpoints after the current step (rerun to resume)."""
    _check_options(cfg)
    ddp = Dist()
    device = torch.device(cfg.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    run = _prepare(cfg, ddp, device)
    run.out.mkdir(parents=True, exist_ok=True)
    run.logf = open(run.out / "log.jsonl", "a") if ddp.main else None
    run.bar = tqdm(total=run.plan.total, initial=run.step, desc=f"train {cfg.stage}",
                   disable=not ddp.main)
    try:
        with _ctrl_c_stops_after_the_step(run):
            _loop(run)
    finally:
        run.bar.close()
        if run.logf:
            run.logf.close()
    final = _finish(run) if ddp.main and not run.stop else run.out / "last"
    ddp.close()
    if run.stop:
        log.warning("interrupted at step %d; the checkpoint is in %s", run.step, final)
        raise KeyboardInterrupt
    return final


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="vitr train", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="options (key=value; values are JSON, e.g. art='[\"noto\"]'):\n"
        + describe_options(TrainCfg))
    ap.add_argument("--config", help="JSON file of training options (the keys below)")
    ap.add_argument("overrides", nargs="*", help="key=value options, e.g. stage=head epochs=3")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    cfg = load_train_cfg(args.config, args.overrides)
    main_rank = int(os.environ.get("RANK", 0)) == 0
    try:
        final = train(cfg)
    except KeyboardInterrupt:
        if main_rank:
            print(f"vitr train: interrupted; the checkpoint is in {Path(cfg.out) / 'last'}: run "
                  "the same command again to resume", file=sys.stderr, flush=True)
        raise
    if main_rank:
        print(closing_line(final), flush=True)


if __name__ == "__main__":
    main()
