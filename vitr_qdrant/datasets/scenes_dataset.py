"""Relation Scenes as training data (on the fly, arrays, PNG + JSONL); implemented in the
encoders package."""
from vitr_qdrant.encoders.data.scenes_dataset import *  # noqa: F401,F403
from vitr_qdrant.encoders.data.scenes_dataset import __all__  # noqa: F401
