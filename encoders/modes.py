"""The three modes of a VITR model's score, and the one place a requested mode is checked.

``global`` is the backbone's cosine (the CLIP baseline), ``late`` the MaxSim of token vectors
over region vectors, ``vitr`` the fusion head's score. An explicit mode is honoured or refused,
never swapped for another; no mode means the model's best one.
"""
from __future__ import annotations

import logging

from ..errors import HeadNotTrainedError, InputError

log = logging.getLogger(__name__)
MODES = ("vitr", "late", "global")


def resolve_mode(mode: str | None, head_trained: bool, model_name: str) -> str:
    """The mode to score in: ``mode`` itself, or for None ``vitr`` (``global`` without a trained head).

    Raises:
        InputError: an unknown mode.
        HeadNotTrainedError: ``vitr`` asked of a model without a trained fusion head.
    """
    if mode is None:
        if head_trained:
            return "vitr"
        log.warning("model %s has no trained VITR head: scoring in global mode", model_name)
        return "global"
    if mode not in MODES:
        raise InputError(f"unknown mode {mode!r}; expected one of {MODES} (or None: the model's best)")
    if mode == "vitr" and not head_trained:
        raise HeadNotTrainedError(
            f"model {model_name} has no trained VITR head, so it has no 'vitr' score: use mode='global' "
            f"(the CLIP baseline) or 'late' (MaxSim), or train a head: vitr train stage=head init=...")
    return mode
