"""Losses: InfoNCE on global and late scores, hardest-negative triplet on fusion scores."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def info_nce(logits: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE on an (n, n) image-text logit matrix with matches on the diagonal."""
    target = torch.arange(logits.shape[0], device=logits.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def candidate_losses(scores: torch.Tensor, valid: torch.Tensor, margin: float = 0.2
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Losses over candidate sets whose first column is the positive.

    scores (n, c) fusion scores, valid (n, c) bool (False for padding and for candidates that
    are true as well). Returns (cross-entropy over each set, VSE++ hardest-negative triplet on
    the sigmoid of the scores).
    """
    masked = scores.masked_fill(~valid, float("-inf"))
    ce = F.cross_entropy(masked, torch.zeros(len(scores), dtype=torch.long,
                                             device=scores.device))
    prob = torch.sigmoid(scores)
    neg = prob[:, 1:].masked_fill(~valid[:, 1:], float("-inf")).max(dim=1).values
    has_neg = valid[:, 1:].any(dim=1)
    triplet = F.relu(margin - prob[:, 0] + neg)[has_neg]
    return ce, triplet.mean() if len(triplet) else scores.sum() * 0
