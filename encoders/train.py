"""The bundled trainer: a readable loop for the two stages of a VITR model.

``clip``: the backbone, contrastively (InfoNCE on global vectors): this alone is the CLIP
baseline. ``head``: local encoders + fusion on the frozen backbone (features cached, or per step
from augmented pixels), with InfoNCE on late scores and cross-entropy + hardest-negative
triplet on fusion scores over hard negatives (the world's negatives, the partner image,
in-batch others).

Run: ``python -m vitr_qdrant.encoders.train --config cfg.json key=value ...`` (or ``vitr train``);
several GPUs: ``torchrun --nproc_per_node N -m vitr_qdrant.encoders.train ...``. A run writes a
checkpoint at every epoch end and at least every ``checkpoint_minutes``; started again with
the same options it resumes from ``out/last`` exactly where it stopped (every draw of the loop
is a function of the seed and the step).
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from ..errors import InputError
from .config import checked
from .data.record_pool import RecordSampler, build_record_pool
from .data.scene_pool import CaptionSampler, build_pool, render_default
from .data.worlds import WORLD_NAMES, get_world
from .factory import create_model
from .model import VitrModel
from .model_dir import load_model_dir, load_weights
from .modes import MODES
from .tasks import ClipTask, HeadTask, Task

log = logging.getLogger(__name__)


@dataclass
class TrainCfg:
    model: str = "vitr-scenes-s"
    stage: str = "clip"  # "clip" or "head"
    init: str | None = None  # model directory to start from (head: the clip stage's output)
    out: str = "runs/vitr-scenes-s"
    data: str = "relation-scenes"  # a world (relation-scenes, object-scenes) or a dataset file
    data_format: str | None = None  # karpathy, coco, clevr, csv, jsonl (default: guessed)
    data_split: str | None = None  # e.g. "train" for Karpathy JSON
    image_root: str | None = None
    art: list[str] | None = None  # Object Scenes: train on these art sets only (default all)
    styles: bool = False  # Object Scenes: draw pool scenes in training styles (data.styles)
    augment: float = 0.0  # strength of per-step pixel augmentation (0: none)
    pool_size: int = 40_000
    pool_cache: str | None = None
    render_size: int = 128
    seed: int = 0
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.1
    warmup_steps: int = 200
    grad_clip: float = 1.0
    flip: bool = True
    in_batch_negatives: int = 8
    triplet_weight: float = 1.0
    late_weight: float = 1.0
    ground_weight: float = 1.0  # noun-phrase grounding and role supervision (the worlds)
    hard_weight: float = 1.0  # pairwise loss: each positive above its own hard negatives
    attr_weight: float = 0.0  # each object's region predicts its attributes (the worlds)
    cache_features: bool = True  # head stage: backbone features once (no pixel augmentation)
    eval_every: int = 1  # epochs; 0 = never
    eval_images: int = 200
    eval_pairs: int = 200
    eval_art: str | None = None  # Object Scenes: evaluate on scenes in this art set only
    max_steps: int | None = None
    checkpoint_minutes: float = 10.0
    workers: int = 2
    device: str | None = None
    threads: int | None = None  # CPU threads for torch (1 is steadiest on a shared machine)
    resume: bool = True
    log_every: int = 20


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
    """Linear warmup, then cosine decay to 5 % of the peak."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps))
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def make_optimizer(params: list[tuple[str, torch.nn.Parameter]], cfg: TrainCfg, fused: bool):
    """AdamW; weight decay only on 2-D+ weights (not norms, biases, scales)."""
    decay = [p for _, p in params if p.ndim >= 2]
    other = [p for _, p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": other, "weight_decay": 0.0}]
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


def _build(cfg: TrainCfg, device: torch.device) -> VitrModel:
    """The model to train: ``cfg.model`` fresh (pretrained backbone where it has one), or for
    ``init``: the whole model (clip stage) or its backbone under a fresh head (head stage).
    Its config records the world it is trained on (None for a dataset file)."""
    if cfg.init is None:
        model = create_model(cfg.model, device=str(device))
    elif cfg.stage == "clip":
        model = load_model_dir(cfg.init, device=str(device))
    else:
        model = create_model(cfg.model, device=str(device), load_pretrained=False)
        state = load_weights(cfg.init)
        model.backbone.load_state_dict({k.removeprefix("backbone."): v for k, v in state.items()
                                        if k.startswith("backbone.")})
    model.cfg.world = cfg.data if cfg.data in WORLD_NAMES else None
    return model.train()


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


class Checkpoint:
    """``out/last``: the model (its own save format), optimizer, task extras, step, best.

    Written whole to ``last.new`` first and swapped in by renames, so a kill at any moment
    leaves one complete checkpoint (``last``, else ``last.new``, else ``last.old``)."""

    def __init__(self, out: Path):
        self.out, self.last = out, out / "last"

    def save(self, model: VitrModel, opt, task: Task, step: int, best: float, cfg: TrainCfg):
        new, old = self.out / "last.new", self.out / "last.old"
        shutil.rmtree(new, ignore_errors=True)
        model.save(new)
        torch.save({"optimizer": opt.state_dict(), "step": step, "best": best,
                    "cfg": asdict(cfg), "task": _extras(task)}, new / "trainer.pt")
        shutil.rmtree(old, ignore_errors=True)
        if self.last.exists():
            self.last.rename(old)
        new.rename(self.last)
        shutil.rmtree(old, ignore_errors=True)

    def found(self) -> Path | None:
        """The newest complete checkpoint, if any."""
        for d in (self.last, self.out / "last.new", self.out / "last.old"):
            if (d / "trainer.pt").is_file():
                return d
        return None

    def restore(self, model: VitrModel, opt, task: Task, device) -> tuple[int, float]:
        where = self.found()
        state = torch.load(where / "trainer.pt", map_location=device, weights_only=True)
        weights = load_weights(where)
        _check_same_keys(where, "model (its config)", weights, model.state_dict())
        _check_same_keys(where, "task setup (its extras)", state["task"], _extras(task))
        model.load_state_dict(weights)
        task.load_state_dict(state["task"], strict=False)
        opt.load_state_dict(state["optimizer"])
        log.info("resumed from %s at step %d", where, state["step"])
        return state["step"], state["best"]


def _check_same_keys(where: Path, what: str, saved: dict, expected: dict) -> None:
    """A checkpoint resumes only into the run that made it: the same model and task tensors."""
    if set(saved) != set(expected):
        missing, extra = sorted(set(expected) - set(saved)), sorted(set(saved) - set(expected))
        raise InputError(f"the checkpoint in {where} was made by another {what}: it lacks "
                         f"{missing[:5]} and has {extra[:5]} beyond this run's; resume with its "
                         "options, or start in a new out= folder")


def _extras(task: Task) -> dict[str, torch.Tensor]:
    """The task's own state (e.g. the late-score scale, the attribute probe), not the model's."""
    return {k: v for k, v in task.state_dict().items() if not k.startswith("model.")}


def _evaluate_and_keep(model, cfg, out: Path, step: int, best: float, logf) -> float:
    results = _eval(model, cfg)
    logf.write(json.dumps({"step": step, "eval": results}) + "\n")
    logf.flush()
    if _headline(results, cfg.stage) > best:
        best = _headline(results, cfg.stage)
        model.save(out / "best")
    return best


def train(cfg: TrainCfg) -> Path:
    """Run one stage; returns the output directory (``last/`` and ``best/`` model dirs)."""
    ddp = Dist()
    device = torch.device(cfg.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out)
    model = _build(cfg, device)
    pool, sampler = _data(cfg, model.backbone.image_size, ddp.rank)
    task = (ClipTask if cfg.stage == "clip" else HeadTask)(model, cfg, pool, sampler)
    model.head_trained = model.head_trained or cfg.stage == "head"
    params = task.trainable()
    opt = make_optimizer(params, cfg, fused=device.type == "cuda")
    ckpt = Checkpoint(out)
    step, best = 0, -math.inf
    if cfg.resume and ckpt.found() is not None:
        step, best = ckpt.restore(model, opt, task, device)
    wrapped = ddp.wrap(task)
    plan = Schedule(len(pool), cfg.batch_size, ddp.world, cfg.seed, cfg.epochs, cfg.flip,
                    cfg.max_steps)
    out.mkdir(parents=True, exist_ok=True)
    logf = open(out / "log.jsonl", "a") if ddp.main else None
    bar = tqdm(total=plan.total, initial=step, desc=f"train {cfg.stage}", disable=not ddp.main)
    t0, seen, saved_at = time.time(), 0, time.time()
    while step < plan.total:
        idx = plan.indices(step, ddp.rank)
        lr = get_lr(step, plan.total, cfg)
        for g in opt.param_groups:
            g["lr"] = lr
        losses, metrics = wrapped(idx, plan.flipped(step), step)
        loss = sum(losses.values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for _, p in params], cfg.grad_clip)
        opt.step()
        step += 1
        seen += len(idx) * ddp.world
        bar.update(1)
        if ddp.main and step % cfg.log_every == 0:
            rec = {"step": step, "epoch": (step - 1) // plan.per_epoch, "lr": lr,
                   "loss": loss.item(), **{k: v.item() for k, v in losses.items()}, **metrics,
                   "samples_per_s": seen / (time.time() - t0)}
            bar.set_postfix(loss=f"{rec['loss']:.3f}")
            logf.write(json.dumps(rec) + "\n")
            logf.flush()
        due = time.time() - saved_at >= 60 * cfg.checkpoint_minutes
        if ddp.main and (plan.epoch_end(step) or due):
            if plan.epoch_end(step) and cfg.eval_every and cfg.data in WORLD_NAMES and (
                    (step // plan.per_epoch) % cfg.eval_every == 0 or step >= plan.total):
                best = _evaluate_and_keep(model, cfg, out, step, best, logf)
            ckpt.save(model, opt, task, step, best, cfg)
            saved_at = time.time()
    bar.close()
    if ddp.main:
        logf.close()
        log.info("done: %d steps, %.1f samples/s", step, seen / max(1e-9, time.time() - t0))
    ddp.close()
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="vitr train", description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", help="JSON file of training options (see TrainCfg)")
    ap.add_argument("overrides", nargs="*", help="key=value options, e.g. stage=head epochs=3")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    train(load_train_cfg(args.config, args.overrides))


if __name__ == "__main__":
    main()
