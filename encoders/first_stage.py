"""The first-stage vector: one dense vector per image and per query whose cosine keeps what the
model ranks first, so that a search's first stage (HNSW inside Qdrant) hands stage 2 the images
MaxSim over the whole collection would rank at the top.

It reads only what a collection stores: an image's vector comes from its region vectors, a
query's from its token vectors, so a collection's first-stage vectors can be rebuilt from the
stored vectors without re-encoding an image. It is fitted on frozen features by distillation from
the model's own MaxSim (:func:`fit_first_stage`): within a batch of images, each caption's
softmax over the images by MaxSim is the target of the softmax by first-stage cosine.

The first stage is not part of the model's fingerprint: it changes no stored ``global`` or
``regions`` vector, and a collection records its first stage's own hash instead.
"""
from __future__ import annotations

import hashlib
import logging
import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import FirstStageCfg

logger = logging.getLogger(__name__)
FIRST_STAGE_PREFIX = "first_stage."
"""The state-dict keys of a model's first stage (saved in their own file of a model directory)."""
FIRST_STAGE_FILE = "first_stage.safetensors"


class FirstStage(nn.Module):
    """Regions -> max over regions of an MLP; tokens -> sum over tokens of another; L2-normalised.

    A max over regions says which concepts appear anywhere in the image; a sum over tokens weighs
    the concepts a query names. Their cosine is a bag-of-concepts score: what MaxSim's sum over
    tokens of the best region rewards, without the relation (stage 2 and 3 judge that).
    """

    def __init__(self, region_dim: int, cfg: FirstStageCfg):
        super().__init__()
        self.cfg = cfg
        self.image = nn.Sequential(nn.Linear(region_dim, cfg.hidden), nn.GELU(), nn.Linear(cfg.hidden, cfg.dim))
        self.text = nn.Sequential(nn.Linear(region_dim, cfg.hidden), nn.GELU(), nn.Linear(cfg.hidden, cfg.dim))
        self._sha256: str | None = None

    def _load_from_state_dict(self, *args, **kwargs):   # new weights: a new hash
        self._sha256 = None
        super()._load_from_state_dict(*args, **kwargs)

    def encode_regions(self, regions: torch.Tensor) -> torch.Tensor:
        """(n, R, d) region vectors -> (n, dim) unit vectors."""
        return F.normalize(self.image(regions).amax(dim=1), dim=-1)

    def encode_tokens(self, words: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(T, L, d) token vectors (padding anywhere) and their (T, L) mask -> (T, dim) unit vectors."""
        return F.normalize((self.text(words) * mask.unsqueeze(-1).to(words.dtype)).sum(dim=1), dim=-1)

    def weights_sha256(self) -> str:
        """What a collection records of the first stage its vectors came from (computed once:
        :func:`fit_first_stage` forgets it)."""
        if self._sha256 is None:
            h = hashlib.sha256()
            for name, t in sorted(self.state_dict().items()):
                h.update(name.encode())
                h.update(t.detach().cpu().float().contiguous().numpy().tobytes())
            self._sha256 = h.hexdigest()
        return self._sha256


@dataclass
class FitCfg:
    """Distillation of a first stage: steps of ``batch`` images and one caption of each of the
    first ``texts`` of them; every caption's target is its softmax over all the step's images.

    With ``hard`` > 0, each step's images also hold, for each caption, ``hard`` images drawn from
    its top ``pool`` by the first stage itself (every image's vector recomputed every ``refresh``
    steps): the images it confuses with the caption's own, where MaxSim's order among near
    misses is what stage 1 has to learn.
    """

    steps: int = 3000
    batch: int = 1024
    texts: int = 128
    lr: float = 2e-3
    teacher_temperature: float = 0.1
    student_temperature: float = 0.05
    hard: int = 0
    pool: int = 50
    refresh: int = 100
    seed: int = 0


def _batches(n_images: int, cfg: FitCfg) -> Iterator[np.ndarray]:
    rng = np.random.default_rng(cfg.seed)
    for _ in range(cfg.steps):
        yield rng.choice(n_images, size=min(cfg.batch, n_images), replace=False)


def fit_first_stage(stage: FirstStage, regions: np.ndarray, words: np.ndarray, mask: np.ndarray,
                    caption_image: np.ndarray, cfg: FitCfg = FitCfg(), log_every: int = 100) -> list[float]:
    """Fit ``stage`` on frozen features; returns the loss of every step.

    Args:
        regions: (N, R, d) region vectors of N images (float16 or float32).
        words, mask: (C, L, d) token vectors of C captions, zero-padded, and their (C, L) mask.
        caption_image: (C,) the image each caption was written for (several captions per image).
    """
    from .local import late_scores

    by_image = [np.flatnonzero(caption_image == i) for i in range(len(regions))]
    usable = np.array([i for i, caps in enumerate(by_image) if len(caps)])
    stage._sha256 = None
    opt = torch.optim.AdamW(stage.parameters(), lr=cfg.lr, weight_decay=0.01)
    rng, losses, index = np.random.default_rng(cfg.seed + 1), [], None
    stage.train()
    for step, pick in enumerate(_batches(len(usable), cfg)):
        imgs = usable[pick]
        caps = np.array([rng.choice(by_image[i]) for i in imgs[:cfg.texts]])
        length = int(mask[caps].sum(1).max())   # the batch's longest caption: MaxSim costs its length
        w = torch.from_numpy(words[caps, :length].astype(np.float32))
        m = torch.from_numpy(mask[caps, :length])
        if cfg.hard:
            if step % cfg.refresh == 0:
                index = encode_all_regions(stage, regions)[torch.from_numpy(usable)]
            imgs = np.union1d(imgs, usable[_near_misses(stage, w, m, index, cfg, rng)])
        r = torch.from_numpy(regions[imgs].astype(np.float32))
        with torch.no_grad():
            teacher = late_scores(w, m, r).T          # (texts, images): MaxSim
        student = stage.encode_tokens(w, m) @ stage.encode_regions(r).T
        target = F.softmax(teacher / cfg.teacher_temperature, dim=-1)
        loss = F.kl_div(F.log_softmax(student / cfg.student_temperature, dim=-1), target, reduction="batchmean")
        lr = cfg.lr * 0.5 * (1 + math.cos(math.pi * step / cfg.steps))
        for group in opt.param_groups:
            group["lr"] = lr
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        if log_every and (step + 1) % log_every == 0:
            logger.info("first stage step %d/%d: loss %.4f", step + 1, cfg.steps, np.mean(losses[-log_every:]))
    stage.eval()
    return losses


@contextmanager
def _evaluating(stage: FirstStage) -> Iterator[None]:
    """``stage`` in eval mode, then back in the mode it was in."""
    was_training = stage.training
    stage.eval()
    try:
        yield
    finally:
        stage.train(was_training)


@torch.no_grad()
def encode_all_regions(stage: FirstStage, regions: np.ndarray | torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """The first-stage vectors (n, dim) of n images' region vectors (n, R, d), ``chunk`` at a time."""
    with _evaluating(stage):
        return torch.cat([stage.encode_regions(torch.as_tensor(regions[i:i + chunk]).float())
                          for i in range(0, len(regions), chunk)])


@torch.no_grad()
def _near_misses(stage: FirstStage, words: torch.Tensor, mask: torch.Tensor, index: torch.Tensor, cfg: FitCfg,
                 rng: np.random.Generator) -> np.ndarray:
    """Positions in ``index`` of ``cfg.hard`` images drawn from each caption's top ``cfg.pool``."""
    with _evaluating(stage):
        top = torch.topk(stage.encode_tokens(words, mask) @ index.T, min(cfg.pool, len(index)), dim=1).indices.numpy()
    return np.concatenate([rng.choice(row, size=min(cfg.hard, len(row)), replace=False) for row in top])


def pad(token_vectors: Sequence[np.ndarray], length: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One (m_i, d) array per text -> (T, L, d) zero-padded float16 and a (T, L) bool mask."""
    length = length or max(len(t) for t in token_vectors)
    d = token_vectors[0].shape[1]
    words = np.zeros((len(token_vectors), length, d), np.float16)
    mask = np.zeros((len(token_vectors), length), bool)
    for i, t in enumerate(token_vectors):
        words[i, : len(t)], mask[i, : len(t)] = t[:length], True
    return words, mask
