"""VITR encoders: open_clip backbone, relation-reasoning local encoder, fusion head, trainer.

Names load on first use: importing this package (e.g. for :data:`~.modes.MODES`) loads no torch.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if __name__ != "vitr_qdrant.encoders":  # e.g. `import encoders` in a checkout: a second copy of the code
    raise ImportError(f"this folder is the package vitr_qdrant.encoders: import that, not {__name__!r}")

from .._lazy import lazy_getattr  # noqa: E402

if TYPE_CHECKING:
    from .config import ModelCfg, add_model_config, get_model_config, list_models
    from .factory import create_model, load_model
    from .model import ImageEmbeddings, TextEmbeddings, TextQuery, VitrModel
    from .model_dir import save_model
    from .modes import MODES

_LAZY = {
    "ModelCfg": ".config", "add_model_config": ".config", "get_model_config": ".config", "list_models": ".config",
    "create_model": ".factory", "load_model": ".factory", "save_model": ".model_dir",
    "ImageEmbeddings": ".model", "TextEmbeddings": ".model", "TextQuery": ".model", "VitrModel": ".model", "MODES": ".modes",
}
__all__ = sorted(_LAZY)
__getattr__ = lazy_getattr(__name__, _LAZY, globals())


def __dir__() -> list[str]:
    return __all__
