"""Real-dataset loaders (Karpathy JSON, COCO, RefCOCOg, CLEVR, CSV, JSONL); implemented in the
encoders package."""
from vitr_qdrant.encoders.data.formats import *  # noqa: F401,F403
from vitr_qdrant.encoders.data.formats import __all__  # noqa: F401
