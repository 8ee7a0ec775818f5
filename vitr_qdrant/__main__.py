"""``python -m vitr_qdrant``: the ``vitr`` command."""
from .cli import main

raise SystemExit(main())
