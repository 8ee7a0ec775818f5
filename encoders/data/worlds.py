"""The worlds by name: ``relation-scenes`` and ``object-scenes``."""
from __future__ import annotations

import importlib

from .world import World

WORLD_NAMES = ("relation-scenes", "object-scenes")
_MODULES = {"relation-scenes": ".relation_scenes", "object-scenes": ".object_scenes"}


def get_world(world: str | World) -> World:
    """The world of a name (or the world itself); unknown names raise a ValueError."""
    if isinstance(world, World):
        return world
    if world not in _MODULES:
        raise ValueError(f"unknown world {world!r}; expected one of {WORLD_NAMES}")
    return importlib.import_module(_MODULES[world], __package__).WORLD
