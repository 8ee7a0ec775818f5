"""``python -m vitr_qdrant.cli``: the ``vitr`` command."""
from .command import main

raise SystemExit(main())
