"""Model directories, the one place models are saved and loaded: ``config.json`` (the model
config, ``head_trained``, the format version and the library version that wrote it) next to
``model.safetensors``. Weights are read with safetensors only.

A head-stage model may store its head only: ``backbone_ref`` in ``config.json`` names the frozen
backbone it was trained on (a model directory's ``path`` and/or a registered ``name``, and the
``sha256`` of that backbone's tensors); loading resolves it and checks the hash. Tensors listed
in its ``stored`` (e.g. a token embedding grown by new words) are in the directory's own file."""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from .._version import __version__
from ..errors import ModelFormatError, ModelNotFoundError
from .config import ModelCfg
from .first_stage import FIRST_STAGE_FILE, FIRST_STAGE_PREFIX
from .model import VitrModel, pick_device

logger = logging.getLogger(__name__)
FORMAT_VERSION = 2
"""The layout written here. A config without ``format_version`` was written before the field
existed, in the layout of version 1; version 2 adds ``backbone_ref``, the ``training`` record
and a word tokenizer's ``extra_words``."""
BACKBONE = "backbone."
CONFIG_FILE, WEIGHTS_FILE, CARD_FILE = "config.json", "model.safetensors", "MODEL_CARD.md"


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


def read_config(directory: str | Path) -> tuple[ModelCfg, bool]:
    """The model config of a model directory and whether its head was trained.

    Raises:
        ModelNotFoundError: ``directory`` lacks ``config.json`` or ``model.safetensors``.
        ModelFormatError: a format version this library does not know (written by a newer one).
    """
    directory = Path(directory)
    if not (directory / CONFIG_FILE).is_file() or not (directory / WEIGHTS_FILE).is_file():
        raise ModelNotFoundError(f"{directory} is not a model directory: it needs {CONFIG_FILE} and {WEIGHTS_FILE}")
    meta: dict[str, Any] = json.loads((directory / CONFIG_FILE).read_text())
    version, written_by = meta.pop("format_version", FORMAT_VERSION), meta.pop("library_version", "an older version")
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= FORMAT_VERSION:
        raise ModelFormatError(
            f"{directory} holds a model in format version {version!r} (written by vitr-qdrant {written_by}); "
            f"this vitr-qdrant ({__version__}) reads format versions up to {FORMAT_VERSION}: "
            f"upgrade it (pip install -U vitr-qdrant)")
    head_trained = bool(meta.pop("head_trained", False))
    meta.pop("backbone_ref", None)
    return ModelCfg.from_dict(meta), head_trained


def _load_first_stage(model: VitrModel, directory: Path) -> None:
    """The first stage's weights (``first_stage.safetensors``); a config that names a first stage
    whose file is missing loads without one (stage 1 then searches ``global`` alone)."""
    if model.first_stage is None:
        return
    path = directory / FIRST_STAGE_FILE
    if not path.is_file():
        logger.warning("%s names a first stage but has no %s: searches use the global vector alone "
                       "in stage 1", directory, FIRST_STAGE_FILE)
        model.first_stage = None
        return
    try:
        model.first_stage.load_state_dict(load_file(str(path)))
    except RuntimeError as exc:
        raise ModelFormatError(f"{path} does not fit the config's first_stage: {exc}") from exc


def backbone_ref(directory: str | Path) -> dict | None:
    """The frozen backbone a model directory references instead of storing it, if any."""
    read_config(directory)
    return json.loads((Path(directory) / CONFIG_FILE).read_text()).get("backbone_ref")


def state_sha256(state: dict[str, torch.Tensor], prefix: str = "") -> str:
    """SHA-256 of the tensors whose names start with ``prefix``, in name order (the weights hash
    of a fingerprint with no prefix; a backbone's with ``"backbone."``)."""
    h = hashlib.sha256()
    for name, t in sorted(state.items()):
        if name.startswith(prefix):
            h.update(name.encode())
            h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def load_weights(directory: str | Path) -> dict[str, torch.Tensor]:
    """The state dict of a model directory (its format checked first, see :func:`read_config`),
    a referenced backbone resolved (see :func:`resolve_backbone`)."""
    ref = backbone_ref(directory)
    own = load_file(str(Path(directory) / WEIGHTS_FILE))
    return {**resolve_backbone(ref, directory), **own} if ref else own


def resolve_backbone(ref: dict, directory: str | Path) -> dict[str, torch.Tensor]:
    """The backbone tensors ``ref`` names: those of its model directory ``path``, else of the
    bundled or registered model ``name``; checked against its ``sha256``.

    Raises:
        ModelNotFoundError: neither can be found (the message says which backbone is missing).
        ModelFormatError: the one found is not the backbone the model was trained on.
    """
    from .factory import WEIGHTS_DIR, create_model   # factory imports this module
    from .config import list_models

    path, name = ref.get("path"), ref.get("name")
    if path and (Path(path) / CONFIG_FILE).is_file():
        state, where = load_weights(path), f"the model directory {path}"
    elif name and (WEIGHTS_DIR / name / WEIGHTS_FILE).is_file():
        state, where = load_weights(WEIGHTS_DIR / name), f"the bundled model {name}"
    elif name and ref.get("registered") and name in list_models():
        state, where = create_model(name, device="cpu").state_dict(), f"the registered model {name}"
    else:
        raise ModelNotFoundError(
            f"{directory} stores its trained head only: its frozen backbone is that of "
            f"{' / '.join(filter(None, (path, name)))} (backbone sha256 {ref['sha256'][:12]}...), "
            f"which is not found here; put that model directory back at {path}, or load the "
            "model where it is")
    state = {k: v for k, v in state.items() if k.startswith(BACKBONE)}
    if state_sha256(state) != ref["sha256"]:
        raise ModelFormatError(
            f"{directory} was trained on the backbone of {where} as it was then (sha256 "
            f"{ref['sha256'][:12]}...), but that backbone has changed since "
            f"({state_sha256(state)[:12]}...): restore it, or train the head again")
    return state


def load_model_dir(directory: str | Path, device: str | None = None) -> VitrModel:
    """The model saved in ``directory`` by :func:`save_model`, in eval mode on ``device``.

    Raises:
        ModelNotFoundError, ModelFormatError: see :func:`read_config`; also weights that do not fit the config.
    """
    cfg, head_trained = read_config(directory)
    model = VitrModel(cfg, load_pretrained=False)
    missing, unexpected = model.load_state_dict(load_weights(directory), strict=False)
    missing = [k for k in missing if not k.startswith(FIRST_STAGE_PREFIX)]
    if missing or unexpected:
        raise ModelFormatError(f"weights in {directory} do not fit the config: missing {missing[:5]}, "
                               f"unexpected {unexpected[:5]}")
    _load_first_stage(model, Path(directory))
    model.head_trained = head_trained
    model.backbone_ref = backbone_ref(directory)
    card = Path(directory) / CARD_FILE
    model.card_text = card.read_text(encoding="utf-8") if card.is_file() else ""
    model.source = str(Path(directory).resolve())
    return model.to(pick_device(device)).eval()
