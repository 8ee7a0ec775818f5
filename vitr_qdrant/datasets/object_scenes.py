"""Object Scenes v1 (shared/specs/object-scenes.md); implemented in the encoders package."""
from vitr_qdrant.encoders.data.object_scenes import *  # noqa: F401,F403
from vitr_qdrant.encoders.data.object_scenes import __all__  # noqa: F401
