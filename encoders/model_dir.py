"""Model directories, the one place models are saved and loaded: ``config.json`` (the model
config, ``head_trained``, the format version and the library version that wrote it) next to
``model.safetensors``. Weights are read with safetensors only."""
from __future__ import annotations

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
FORMAT_VERSION = 1
"""The layout written here. A config without ``format_version`` was written before the field
existed, in this same layout."""
CONFIG_FILE, WEIGHTS_FILE, CARD_FILE = "config.json", "model.safetensors", "MODEL_CARD.md"


def save_model(model: VitrModel, directory: str | Path) -> Path:
    """Write ``config.json`` + ``model.safetensors`` to ``directory`` (created if missing)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    meta = {"format_version": FORMAT_VERSION, "library_version": __version__, **model.cfg.to_dict(),
            "head_trained": model.head_trained}
    (directory / CONFIG_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    state = {k: v.detach().cpu().contiguous() for k, v in model.core_state_dict().items()}
    save_file(state, str(directory / WEIGHTS_FILE), metadata={"name": model.cfg.name})
    if model.first_stage is not None:
        first = {k: v.detach().cpu().contiguous() for k, v in model.first_stage.state_dict().items()}
        save_file(first, str(directory / FIRST_STAGE_FILE), metadata={"name": model.cfg.name})
    return directory


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


def load_weights(directory: str | Path) -> dict[str, torch.Tensor]:
    """The state dict of a model directory (its format checked first, see :func:`read_config`)."""
    read_config(directory)
    return load_file(str(Path(directory) / WEIGHTS_FILE))


def load_model_dir(directory: str | Path, device: str | None = None) -> VitrModel:
    """The model saved in ``directory`` by :func:`save_model`, in eval mode on ``device``.

    Raises:
        ModelNotFoundError, ModelFormatError: see :func:`read_config`; also weights that do not fit the config.
    """
    cfg, head_trained = read_config(directory)
    model = VitrModel(cfg, load_pretrained=False)
    missing, unexpected = model.load_state_dict(load_file(str(Path(directory) / WEIGHTS_FILE)), strict=False)
    missing = [k for k in missing if not k.startswith(FIRST_STAGE_PREFIX)]
    if missing or unexpected:
        raise ModelFormatError(f"weights in {directory} do not fit the config: missing {missing[:5]}, "
                               f"unexpected {unexpected[:5]}")
    _load_first_stage(model, Path(directory))
    model.head_trained = head_trained
    card = Path(directory) / CARD_FILE
    model.card_text = card.read_text(encoding="utf-8") if card.is_file() else ""
    model.source = str(Path(directory).resolve())
    return model.to(pick_device(device)).eval()
