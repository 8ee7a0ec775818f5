"""Build, save and load VITR models."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..errors import ModelFormatError, ModelNotFoundError
from .config import ModelCfg, get_model_config, list_models
from .model import VitrModel

log = logging.getLogger(__name__)
WEIGHTS_DIR = Path(__file__).parent / "weights"
DEFAULT_MODEL = "vitr-scenes-s"
CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.safetensors"


def _device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def create_model(name: str, pretrained: str | None = None, device: str | None = None,
                 load_pretrained: bool = True, **overrides) -> VitrModel:
    """A model of a registered config with a random-initialised head.

    Args:
        name: a name from :func:`list_models`.
        pretrained: override the backbone's open_clip pretrained tag or a checkpoint file.
        device: "cpu", "cuda", ...; default CUDA when available.
        load_pretrained: False builds the backbone without loading any weights.
        overrides: top-level config sections to replace, e.g. ``local={"dim": 64, ...}``.
    """
    cfg = get_model_config(name)
    d = cfg.to_dict()
    for key, value in overrides.items():
        if value is not None:
            d[key] = {**d[key], **value} if isinstance(d.get(key), dict) else value
    if pretrained is not None:
        d["backbone"]["pretrained"] = pretrained
    model = VitrModel(ModelCfg.from_dict(d), load_pretrained=load_pretrained)
    return model.to(_device(device)).eval()


def save_model(model: VitrModel, directory: str | Path) -> Path:
    """Write ``config.json`` + ``model.safetensors`` to ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    meta = {**model.cfg.to_dict(), "head_trained": model.head_trained}
    (directory / CONFIG_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(directory / WEIGHTS_FILE), metadata={"name": model.cfg.name})
    return directory


def load_model_dir(directory: str | Path, device: str | None = None) -> VitrModel:
    directory = Path(directory)
    cfg_path, w_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    if not cfg_path.is_file() or not w_path.is_file():
        raise ModelNotFoundError(f"{directory} is not a model directory: it needs {CONFIG_FILE} "
                                f"and {WEIGHTS_FILE}")
    meta = json.loads(cfg_path.read_text())
    head_trained = bool(meta.pop("head_trained", False))
    model = VitrModel(ModelCfg.from_dict(meta), load_pretrained=False)
    missing, unexpected = model.load_state_dict(load_file(str(w_path)), strict=False)
    if missing or unexpected:
        raise ModelFormatError(f"weights in {w_path} do not fit the config: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}")
    model.head_trained = head_trained
    return model.to(_device(device)).eval()


def load_model(name_or_dir: str | Path | None = None, device: str | None = None) -> VitrModel:
    """Load a VITR model.

    Args:
        name_or_dir: None for the bundled default (``vitr-scenes-s``, offline); a model
            directory (``config.json`` + ``model.safetensors``); or a registered name. A name
            with bundled weights loads them; other names (e.g. ``vitr-ViT-B-32``) build the
            pretrained open_clip backbone with an untrained head, which scores in global mode.
        device: "cpu", "cuda", ...; default CUDA when available.
    """
    if name_or_dir is None:
        name_or_dir = DEFAULT_MODEL
        if not (WEIGHTS_DIR / DEFAULT_MODEL / WEIGHTS_FILE).is_file():
            raise ModelNotFoundError(f"the bundled default model {DEFAULT_MODEL} is not installed "
                                    f"(expected under {WEIGHTS_DIR}); train one with `vitr train`")
    path = Path(name_or_dir)
    if path.is_dir():
        return load_model_dir(path, device)
    name = str(name_or_dir)
    if (WEIGHTS_DIR / name / WEIGHTS_FILE).is_file():
        return load_model_dir(WEIGHTS_DIR / name, device)
    if name not in list_models():
        raise ModelNotFoundError(f"{name!r} is neither a model directory nor a registered model; "
                         f"available: {', '.join(list_models())}")
    log.warning("model %s has no trained VITR head here: it scores in global mode until you "
                "train one (vitr train stage=head ...)", name)
    return create_model(name, device=device)
