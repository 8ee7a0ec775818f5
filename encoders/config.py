"""Model configurations: JSON files parsed into ``*Cfg`` dataclasses, and the name registry."""
from __future__ import annotations

import copy
import json
import textwrap
import types
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

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
    # words a word tokenizer learned after its list (fine-tuning on captions that use them);
    # their ids follow the list's, in this order (see tokenizer.grow_vocabulary)
    extra_words: list[str] = field(default_factory=list)
    vision_cfg: dict[str, Any] = field(default_factory=dict)
    text_cfg: dict[str, Any] = field(default_factory=dict)


@dataclass
class LocalCfg:
    dim: int = 128
    reasoning: str = "graph"  # "graph" (relational graph filters), "attention", "none"
    layers: int = 2
    pool: int | None = None  # pool the region grid to pool x pool regions
    stem: int = 0  # channels of a convolutional region stem on the pixels (0: none)
    stem_widths: list[int] | None = None  # its five convolutions' channels (default c/2, c x4)
    # The text local encoder also reads each token's input embedding (the word itself): a frozen
    # CLIP text tower trained on global vectors alone may leave its token outputs nearly equal.
    word_embed: bool = False


@dataclass
class FusionCfg:
    sim_dim: int = 128
    graph_steps: int = 2
    attn_temperature: float = 10.0
    geometry: bool = True  # the role-position node (GeometryNode)


@dataclass
class FirstStageCfg:
    """The first stage of :mod:`.first_stage`: the size of its vector (``dim``) and of its
    per-vector MLPs (``hidden``)."""

    dim: int = 128
    hidden: int = 256


@dataclass
class ModelCfg:
    name: str
    backbone: BackboneCfg
    local: LocalCfg = field(default_factory=LocalCfg)
    fusion: FusionCfg = field(default_factory=FusionCfg)
    description: str = ""
    world: str | None = None  # the world a model was trained on (relation-scenes, object-scenes)
    first_stage: FirstStageCfg | None = None  # a first-stage vector fitted for this model (first_stage.py)
    # per mode, [a, b] of P(the text holds for the image) = sigmoid(a * score + b), fitted on the
    # model's evaluation data (calibration.py); not part of the weights' fingerprint
    calibration: dict | None = None
    # how the trainer made it: parent (name, weights hash), data, command, final evaluation,
    # new words (written by vitr train; the model card is generated from it)
    training: dict[str, Any] | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelCfg":
        """The config of a JSON dict; unknown keys and values of the wrong type are an InputError."""
        d = copy.deepcopy(d)
        for key, section in (("backbone", BackboneCfg), ("local", LocalCfg), ("fusion", FusionCfg),
                             ("first_stage", FirstStageCfg)):
            if d.get(key) is not None:
                d[key] = section(**checked(section, d[key], f"{key} config key"))
        return cls(**checked(cls, d, "model config key"))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def checked(cls: type, values: Mapping[str, Any], what: str) -> dict[str, Any]:
    """``values`` for the fields of dataclass ``cls``, type-checked against its annotations (an int
    is taken where a float is expected). ``what`` names one key in messages, e.g. "training option".

    Raises:
        InputError: an unknown key, or a value of another type than its field's.
    """
    hints = typing.get_type_hints(cls)
    unknown = set(values) - set(hints)
    if unknown:
        raise InputError(f"unknown {what}s {sorted(unknown)}; known: {sorted(hints)}")
    return {key: _typed(value, hints[key], f"{what} {key}") for key, value in values.items()}


def option(default: Any = None, help: str = "", factory: Any = None) -> Any:
    """A dataclass field with its meaning (``help``), which :func:`describe_options` prints."""
    if factory is not None:
        return field(default_factory=factory, metadata={"help": help})
    return field(default=default, metadata={"help": help})


def describe_options(cls: type) -> str:
    """One line per field of dataclass ``cls``: ``name=default`` and its meaning, so a command's
    help is generated from the config it parses and cannot drift from it."""
    from dataclasses import MISSING, fields

    hints = typing.get_type_hints(cls)
    lines = []
    for f in fields(cls):
        default = f.default_factory() if f.default_factory is not MISSING else f.default
        hint = hints[f.name]
        kind = hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")
        meaning = textwrap.fill(f.metadata.get("help", ""), 96, initial_indent=" " * 6,
                                break_on_hyphens=False,
                                subsequent_indent=" " * 6)
        lines.append(f"  {f.name}={json.dumps(default)}  ({kind})\n{meaning}")
    return "\n".join(lines)


def _typed(value: Any, hint: Any, where: str) -> Any:
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    for option in typing.get_args(hint) if union else (hint,):
        base = typing.get_origin(option) or option
        if option is Any or (value is None and option is type(None)):
            return value
        if base is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(base, type) and isinstance(value, base) and not (base is int and isinstance(value, bool)):
            return value
    kinds = " or ".join("None" if a is type(None) else getattr(a, "__name__", str(a))
                        for a in (typing.get_args(hint) if union else (hint,)))
    raise InputError(f"{where}={value!r} must be {kinds}")


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
