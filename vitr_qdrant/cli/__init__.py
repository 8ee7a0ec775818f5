"""The ``vitr`` command, one module per group of subcommands: ``command`` (the parser,
:func:`main`, search / info / drop / upgrade), ``index``, ``serve``, ``tools`` (train, eval,
bench, demo) and ``store`` (the collection options every subcommand shares). It is the top of
the library: it may import every other part (the collection and its values at the top,
``sources``, ``ingest``, ``serve``, ``demo``, the encoders and connectors), and no part of the
library imports it; ``python -m vitr_qdrant`` and the ``vitr`` console script are its callers.
"""
from .command import main

__all__ = ["main"]
