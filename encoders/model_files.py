"""The files of a model directory and how they are written: their names, the format version,
:func:`save_model` (``config.json`` + ``model.safetensors``, and a first stage's own file),
:func:`write_config` with the model card of a trained model, and :func:`state_sha256` (the
weights hash of a fingerprint). It imports no model code (the model is only a type here), so
:mod:`.model` can use it (``VitrModel.save``, ``VitrModel.fingerprint``); reading and loading a
directory is :mod:`.model_dir`, which builds models."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors.torch import save_file

from .._version import __version__
from .config import ModelCfg
from .first_stage import FIRST_STAGE_FILE

if TYPE_CHECKING:
    from .model import VitrModel

FORMAT_VERSION = 2
"""The layout written here. A config without ``format_version`` was written before the field
existed, in the layout of version 1; version 2 adds ``backbone_ref``, the ``training`` record
and a word tokenizer's ``extra_words``."""
BACKBONE = "backbone."
CONFIG_FILE, WEIGHTS_FILE, CARD_FILE = "config.json", "model.safetensors", "MODEL_CARD.md"
WEIGHTS_DIR = Path(__file__).parent / "weights"
"""The bundled models' directories, one per name."""


def save_model(model: VitrModel, directory: str | Path) -> Path:
    """Write ``config.json`` + ``model.safetensors`` to ``directory`` (created if missing)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    write_config(model, directory)
    ref = getattr(model, "backbone_ref", None)
    state = {k: v.detach().cpu().contiguous() for k, v in model.core_state_dict().items()}
    if ref:
        state = {k: v for k, v in state.items() if not k.startswith(BACKBONE) or k in ref["stored"]}
    save_file(state, str(directory / WEIGHTS_FILE), metadata={"name": model.cfg.name})
    if model.first_stage is not None:
        first = {k: v.detach().cpu().contiguous() for k, v in model.first_stage.state_dict().items()}
        save_file(first, str(directory / FIRST_STAGE_FILE), metadata={"name": model.cfg.name})
    return directory


def write_config(model: VitrModel, directory: str | Path) -> None:
    """``config.json`` of ``model`` (and its backbone reference); for a model the trainer made
    (``cfg.training``), also its generated ``MODEL_CARD.md``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    meta = {"format_version": FORMAT_VERSION, "library_version": __version__, **model.cfg.to_dict(),
            "head_trained": model.head_trained}
    if getattr(model, "backbone_ref", None):
        meta["backbone_ref"] = model.backbone_ref
    (directory / CONFIG_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    if model.cfg.training:
        (directory / CARD_FILE).write_text(model_card(model.cfg, getattr(model, "backbone_ref", None)),
                                           encoding="utf-8")


def model_card(cfg: ModelCfg, ref: dict | None = None) -> str:
    """The model card of a trained model, from its config's ``training`` record."""
    t = cfg.training or {}
    parent, data = t.get("parent"), t.get("data") or {}
    steps = ("a checkpoint written during training" if t.get("steps") is None
             else f"{t['steps']} steps")
    lines = [f"# {cfg.name}", "", f"Trained with vitr-qdrant {__version__}: the {t.get('stage')} "
             f"stage, {steps} at peak learning rate {t.get('lr')}.", ""]
    if parent:
        lines += [f"- Parent: `{parent['name']}` (from `{parent['source']}`, weights sha256 "
                  f"`{parent['weights_sha256'][:16]}`)."]
    else:
        lines += ["- Parent: none (trained from the registered config)."]
    lines += [f"- Data: `{data.get('source')}` ({data.get('images')} images"
              + (f", format {data['format']}" if data.get("format") else "")
              + (f", split {data['split']}" if data.get("split") else "") + ").",
              f"- Command: `{t.get('command')}`"]
    if t.get("head"):
        lines += [f"- Head: {t['head']}."]
    if ref:
        lines += [f"- Backbone: frozen, not stored here: that of `{ref.get('path') or ref.get('name')}`"
                  f" (sha256 `{ref['sha256'][:16]}`); keep it where it is to load this model."]
    new = t.get("new_words") or []
    lines += ["", "## Vocabulary", ""]
    if new:
        lines += [f"Words learned in this training ({len(new)}), each starting from the unknown "
                  f"token's embedding: {', '.join(new)}."]
    extra = cfg.backbone.extra_words
    if extra and extra != new:
        lines += [f"All words beyond the tokenizer's list ({len(extra)}): {', '.join(extra)}."]
    if not new and not extra:
        lines += ["No words beyond its tokenizer's."]
    lines += ["", "## Evaluation at the end of training", "", _card_evaluation(t.get("evaluation"))]
    return "\n".join(lines) + "\n"


def _card_evaluation(evaluation: dict | None) -> str:
    if not evaluation:
        return "None recorded (train with eval_data=FILE, or run `vitr eval --data FILE --model DIR`)."
    if "metrics" in evaluation:
        tables = {f"{evaluation['data']} ({evaluation['mode']}, {evaluation['images']} images)":
                  evaluation["metrics"]}
    else:
        tables = {f"{evaluation['world']} {k}": v for k, v in evaluation["results"].items()}
    keys = ("i2t_r1", "i2t_r5", "t2i_r1", "t2i_r5", "rsum")
    rows = ["| set | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for name, m in tables.items():
        rows.append(f"| {name} | " + " | ".join(
            "-" if m.get(k) is None else f"{m[k]:.1f}" for k in keys) + " |")
    return "\n".join(rows)


def state_sha256(state: dict[str, torch.Tensor], prefix: str = "") -> str:
    """SHA-256 of the tensors whose names start with ``prefix``, in name order (the weights hash
    of a fingerprint with no prefix; a backbone's with ``"backbone."``)."""
    h = hashlib.sha256()
    for name, t in sorted(state.items()):
        if name.startswith(prefix):
            h.update(name.encode())
            h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
