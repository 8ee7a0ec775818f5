"""Relation Scenes v1 (shared/specs/relation-scenes.md); implemented in the encoders package."""
from vitr_qdrant.encoders.data.relation_scenes import *  # noqa: F401,F403
from vitr_qdrant.encoders.data.relation_scenes import __all__  # noqa: F401
