"""Model directories, the one place models are saved and loaded: ``config.json`` (the model
config, ``head_trained``, the format version and the library version that wrote it) next to
``model.safetensors``. Weights are read with safetensors only. Writing them (and the file names,
the format version and the weights hash) is :mod:`.model_files`, which imports no model code.

A head-stage model may store its head only: ``backbone_ref`` in ``config.json`` names the frozen
backbone it was trained on (a model directory's ``path`` and/or a registered ``name``, and the
``sha256`` of that backbone's tensors); loading resolves it and checks the hash. Tensors listed
in its ``stored`` (e.g. a token embedding grown by new words) are in the directory's own file."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from .._version import __version__
from ..errors import ModelFormatError, ModelNotFoundError
from .config import ModelCfg, get_model_config, list_models
from .first_stage import FIRST_STAGE_FILE, FIRST_STAGE_PREFIX
from .model import VitrModel, pick_device
from .model_files import (BACKBONE, CARD_FILE, CONFIG_FILE, FORMAT_VERSION, WEIGHTS_DIR, WEIGHTS_FILE,
                          state_sha256)

logger = logging.getLogger(__name__)


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
    path, name = ref.get("path"), ref.get("name")
    if path and (Path(path) / CONFIG_FILE).is_file():
        state, where = load_weights(path), f"the model directory {path}"
    elif name and (WEIGHTS_DIR / name / WEIGHTS_FILE).is_file():
        state, where = load_weights(WEIGHTS_DIR / name), f"the bundled model {name}"
    elif name and ref.get("registered") and name in list_models():
        state, where = VitrModel(get_model_config(name)).state_dict(), f"the registered model {name}"
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
