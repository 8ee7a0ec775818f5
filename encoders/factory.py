"""Build VITR models by name, or load them by name or directory (:func:`load_model`)."""
from __future__ import annotations

import logging
from pathlib import Path

from ..errors import ModelNotFoundError
from .config import ModelCfg, get_model_config, list_models
from .model import VitrModel, pick_device
from .model_dir import load_model_dir
from .model_files import WEIGHTS_DIR, WEIGHTS_FILE

log = logging.getLogger(__name__)
DEFAULT_MODEL = "vitr-objects-s"


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
    return model.to(pick_device(device)).eval()


def load_model(name_or_dir: str | Path | None = None, device: str | None = None) -> VitrModel:
    """Load a VITR model.

    Args:
        name_or_dir: None for the bundled default (``vitr-objects-s``, offline); a model
            directory (``config.json`` + ``model.safetensors``); or a registered name. A name
            with bundled weights loads them; other names (e.g. ``vitr-ViT-B-32``) build the
            pretrained open_clip backbone with an untrained head, which scores in global mode.
        device: "cpu", "cuda", ...; default CUDA when available.

    Raises:
        ModelNotFoundError: no such directory or name (the message lists the names).
        ModelFormatError: a model directory written in a newer format, or weights that do not fit.
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
    model = create_model(name, device=device)   # first: a backbone that cannot load is the one message
    log.warning("model %s has no trained VITR head here: it scores in global mode until you "
                "train one (vitr train stage=head ...)", name)
    return model
