"""VITR encoders: open_clip backbone, relation-reasoning local encoder, fusion head, trainer."""
from __future__ import annotations

from .config import ModelCfg, add_model_config, get_model_config, list_models
from .factory import create_model, load_model, save_model
from .model import ImageEmbeddings, TextEmbeddings, VitrModel

__all__ = ["ModelCfg", "VitrModel", "ImageEmbeddings", "TextEmbeddings", "add_model_config",
           "create_model", "get_model_config", "list_models", "load_model", "save_model"]
