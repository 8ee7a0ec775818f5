"""Model configurations: JSON files parsed into ``*Cfg`` dataclasses, and the name registry."""
from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import InputError, ModelNotFoundError

CONFIG_DIR = Path(__file__).parent / "configs"
_REGISTRY: dict[str, Path] = {}


@dataclass
class BackboneCfg:
    """An open_clip backbone: a named architecture (``open_clip_model``) or a custom one."""

    embed_dim: int = 512
    open_clip_model: str | None = None
    pretrained: str | None = None
    image_size: int | None = None
    tokenizer: str | None = None  # None: open_clip's tokenizer of the model; "scenes-words"
    vision_cfg: dict[str, Any] = field(default_factory=dict)
    text_cfg: dict[str, Any] = field(default_factory=dict)


@dataclass
class LocalCfg:
    dim: int = 128
    reasoning: str = "graph"  # "graph" (relational graph filters), "attention", "none"
    layers: int = 2
    pool: int | None = None  # pool the region grid to pool x pool regions
    stem: int = 0  # channels of a convolutional region stem on the pixels (0: none)


@dataclass
class FusionCfg:
    sim_dim: int = 128
    graph_steps: int = 2
    attn_temperature: float = 10.0
    geometry: bool = True  # the role-position node (GeometryNode)


@dataclass
class ModelCfg:
    name: str
    backbone: BackboneCfg
    local: LocalCfg = field(default_factory=LocalCfg)
    fusion: FusionCfg = field(default_factory=FusionCfg)
    description: str = ""

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelCfg":
        d = copy.deepcopy(d)
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise InputError(f"unknown model config keys {sorted(unknown)}; known: {sorted(known)}")
        return cls(name=d["name"], backbone=BackboneCfg(**d.get("backbone", {})),
                   local=LocalCfg(**d.get("local", {})), fusion=FusionCfg(**d.get("fusion", {})),
                   description=d.get("description", ""))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _scan() -> None:
    if not _REGISTRY:
        for p in sorted(CONFIG_DIR.glob("*.json")):
            _REGISTRY.setdefault(p.stem, p)


def list_models() -> list[str]:
    """Names of the registered model configurations."""
    _scan()
    return sorted(_REGISTRY)


def add_model_config(path: str | Path) -> str:
    """Register a model config JSON file (or every JSON file of a folder); returns a name."""
    _scan()
    path = Path(path)
    files = sorted(path.glob("*.json")) if path.is_dir() else [path]
    name = ""
    for p in files:
        name = json.loads(p.read_text())["name"]
        _REGISTRY[name] = p
    return name


def get_model_config(name: str) -> ModelCfg:
    """The parsed config of a registered model; unknown names raise a ModelNotFoundError listing all."""
    _scan()
    if name not in _REGISTRY:
        raise ModelNotFoundError(f"unknown model {name!r}; available: {', '.join(list_models())}")
    return ModelCfg.from_dict(json.loads(_REGISTRY[name].read_text()))
