"""What a training run starts from and what it records: ``init=`` resolved (a model directory
or a registered name), the parent's record, the reference a head-stage model keeps to its frozen
backbone, the captions' new words, the default learning rate."""
from __future__ import annotations

import json
import logging
import shlex
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..errors import InputError, ModelNotFoundError
from .config import list_models
from .data.worlds import WORLD_NAMES, get_world
from .factory import WEIGHTS_DIR, create_model
from .model import VitrModel
from .model_dir import WEIGHTS_FILE, load_model_dir, state_sha256
from .tokenizer import grow_vocabulary, new_words

if TYPE_CHECKING:
    from .train import TrainCfg

log = logging.getLogger(__name__)

FINETUNE_LR = 1e-4
"""The default learning rate of a head stage that continues a trained head (``lr`` unset): a
tenth of a fresh head's, so a few steps on a small set adapt the head instead of overwriting it."""
FRESH_LR = 1e-3


def _init_source(init: str) -> Path | str:
    """Where ``init=`` points: a model directory (a registered name's bundled weights included),
    or a registered name without weights (its pretrained backbone is built)."""
    if Path(init).is_dir():
        return Path(init)
    if (WEIGHTS_DIR / init / WEIGHTS_FILE).is_file():
        return WEIGHTS_DIR / init
    if init in list_models():
        return init
    raise ModelNotFoundError(
        f"init={init!r} is neither a model directory nor a registered model; registered: "
        f"{', '.join(list_models())} (bundled weights: "
        f"{', '.join(sorted(p.name for p in WEIGHTS_DIR.iterdir() if p.is_dir()))}, in {WEIGHTS_DIR})")


def _start_from(cfg: TrainCfg, device: torch.device) -> tuple[VitrModel, str | Path | None]:
    """The model ``init`` (or ``model``) names, as saved, and where it came from."""
    if cfg.init is None:
        return create_model(cfg.model, device=str(device)), None
    source = _init_source(cfg.init)
    if isinstance(source, str):
        return create_model(source, device=str(device)), source
    return load_model_dir(source, device=str(device)), source


def _backbone_ref(model: VitrModel, source: str | Path | None, model_name: str) -> dict | None:
    """What a head-stage model stores instead of its frozen backbone: where that backbone can be
    found again (a model directory, a bundled or registered name) and its hash; None where it
    cannot be (a randomly initialised backbone is stored whole)."""
    bb = model.cfg.backbone
    if isinstance(source, Path) and source.resolve().parent == WEIGHTS_DIR.resolve():
        ref = {"name": source.name}
    elif isinstance(source, Path):
        ref = {"path": str(source.resolve()), "name": model.cfg.name}
    elif bb.open_clip_model and bb.pretrained and not Path(bb.pretrained).expanduser().is_file():
        ref = {"name": source or model_name, "registered": True}
    else:
        return None
    return {**ref, "sha256": state_sha256(model.state_dict(), "backbone."), "stored": []}


def build_model(cfg: TrainCfg, device: torch.device) -> tuple[VitrModel, dict | None]:
    """The model to train and the record of its parent (None without ``init``): ``init`` whole
    (clip stage; head stage with a trained head, unless ``head=new``), or its backbone under a
    fresh head. It takes its own name; its config records the world it is trained on (None for a
    dataset file); a head-stage model references its frozen backbone instead of storing it."""
    model, source = _start_from(cfg, device)
    parent = None if source is None else {
        "name": model.cfg.name, "weights_sha256": state_sha256(model.state_dict()),
        "source": cfg.init, "head_trained": model.head_trained}
    head_only = cfg.stage == "head" and not cfg.store_backbone
    ref = _backbone_ref(model, source, cfg.model) if head_only else None
    if cfg.stage == "head" and (cfg.head == "new" or not model.head_trained):
        fresh = VitrModel(model.cfg, load_pretrained=False).to(device)
        fresh.backbone.load_state_dict(model.backbone.state_dict())
        model = fresh
    model.backbone_ref, model.card_text, model._fingerprint = ref, "", None
    model.cfg.name = cfg.name or Path(cfg.out).resolve().name
    model.cfg.world = cfg.data if cfg.data in WORLD_NAMES else None
    return model.train(), parent


def default_lr(cfg: TrainCfg, model: VitrModel) -> float:
    """``lr``, else the fine-tune rate for a head stage continuing a trained head, else the fresh one."""
    if cfg.lr is not None:
        return cfg.lr
    return FINETUNE_LR if cfg.stage == "head" and model.head_trained else FRESH_LR


def _pool_texts(cfg: TrainCfg, pool) -> list[str]:
    """Every word the training captions may use: a world's vocabulary, or a file's captions."""
    if cfg.data in WORLD_NAMES:
        return [" ".join(get_world(cfg.data).words)]
    return [c for captions in pool.captions for c in captions]


def learn_words(cfg: TrainCfg, model: VitrModel, pool) -> tuple[list[str], list[int]]:
    """Grow a word tokenizer by the captions' new words (their embedding rows returned to train),
    or stop before the first step where ``new_words=refuse`` or where it cannot grow."""
    words = new_words(model.backbone.tokenizer, _pool_texts(cfg, pool))
    if not words:
        return [], []
    shown = ", ".join(words[:20]) + (f" and {len(words) - 20} more" if len(words) > 20 else "")
    if cfg.new_words == "refuse":
        raise InputError(f"the captions use {len(words)} words {model.cfg.name} does not know "
                         f"({shown}); train with new_words=learn to add them to its vocabulary, "
                         "or rewrite those captions in its words")
    try:
        ids = grow_vocabulary(model.backbone, words)
    except ValueError as e:
        raise InputError(f"the captions use {len(words)} words {model.cfg.name} does not know "
                         f"({shown}), and it cannot learn them: {e}; rewrite those captions in "
                         "its words, or train a model with open_clip's tokenizer") from e
    log.info("learning %d new words: %s", len(words), shown)
    return words, ids


def _command(cfg: TrainCfg) -> str:
    """The ``vitr train`` command line of ``cfg``'s options that differ from the defaults."""
    default = type(cfg)()
    parts = [f"{f.name}={shlex.quote(v if isinstance(v, str) else json.dumps(v))}"
             for f in fields(cfg) if (v := getattr(cfg, f.name)) != getattr(default, f.name)]
    return " ".join(["vitr train", *parts])


def training_record(cfg: TrainCfg, parent: dict | None, pool, words: list[str]) -> dict:
    """What ``config.json`` says of how the model was made (steps and evaluation at the end)."""
    continued = cfg.stage == "head" and parent and parent["head_trained"] and cfg.head == "continue"
    head = None if cfg.stage == "clip" else "continued from the parent's" if continued else "fresh"
    return {"stage": cfg.stage, "parent": parent, "head": head, "command": _command(cfg),
            "data": {"source": cfg.data, "format": cfg.data_format, "split": cfg.data_split,
                     "images": len(pool)},
            "new_words": words, "lr": cfg.lr, "steps": None, "evaluation": None}
