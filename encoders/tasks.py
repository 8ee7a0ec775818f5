"""Training tasks: a model plus its loss, returning ``(losses, metrics)`` per batch.

A task names the parameters it trains (:meth:`trainable`); everything else is frozen before the
task meets DDP, so no rank waits for gradients that never come.
"""
from __future__ import annotations

import contextlib
from functools import partial
from typing import NamedTuple, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from .augment import augment_pixels
from .data.scene_pool import PhraseTargets, ScenePool, flip_caption
from .local import late_scores
from .losses import candidate_losses, info_nce
from .model import VitrModel, autocast


def normalise(model: VitrModel, images: np.ndarray, flip: bool, device,
              augment=None) -> torch.Tensor:
    """uint8 (B, S, S, 3) at the model size -> normalised pixels, as inference preprocesses;
    ``augment`` (pixels in [0, 1] -> pixels) runs before the normalisation."""
    x = torch.from_numpy(images).to(device).permute(0, 3, 1, 2).float() / 255.0
    if flip:
        x = torch.flip(x, dims=[3])
    if augment is not None:
        x = augment(x)
    bb = model.backbone
    mean = torch.tensor(bb.image_mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(bb.image_std, device=device).view(1, 3, 1, 1)
    return (x - mean) / std


def _pixels(model: VitrModel, cfg, images: np.ndarray, flip: bool, step: int) -> torch.Tensor:
    """Normalised model inputs, augmented where the config asks (deterministic per step)."""
    augment = None
    if cfg.augment:
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
        augment = partial(augment_pixels, strength=cfg.augment, gen=gen)
    return normalise(model, images, flip, model.device, augment)


EMBEDDING = "backbone.clip.token_embedding.weight"  # the text tower's word embedding


class Task(torch.nn.Module):
    """Base: the model, the config, the pool and its caption sampler."""

    def __init__(self, model: VitrModel, cfg, pool, sampler):
        super().__init__()
        self.model, self.cfg, self.pool, self.sampler = model, cfg, pool, sampler

    def trainable(self) -> list[tuple[str, torch.nn.Parameter]]:
        raise NotImplementedError

    def row_params(self) -> tuple[torch.nn.Parameter, ...]:
        """Trainable parameters of which only some rows train (the rest get no gradient)."""
        return ()

    def freeze_others(self) -> None:
        """Only the trainable parameters require gradients (what DDP is handed)."""
        keep = {id(p) for _, p in self.trainable()}
        for p in self.parameters():
            p.requires_grad_(id(p) in keep)


class ClipTask(Task):
    """Stage 1: the backbone alone, InfoNCE on global vectors."""

    def trainable(self):
        return list(self.model.backbone.named_parameters())

    def forward(self, idx: np.ndarray, flip: bool, step: int) -> tuple[dict, dict]:
        model, dev = self.model, self.model.device
        texts = [self.sampler.sample(int(i), step)[0] for i in idx]
        if flip:
            texts = [flip_caption(t) for t in texts]
        ids, _ = model.backbone.tokenize(texts)
        with autocast(dev):
            g_img, _ = model.backbone.encode_image(
                _pixels(model, self.cfg, self.pool.images[idx], flip, step))
            g_txt, _ = model.backbone.encode_text(ids.to(dev))
        scale = model.backbone.logit_scale.exp().clamp(max=100)
        logits = scale * F.normalize(g_img.float(), dim=-1) @ F.normalize(g_txt.float(), dim=-1).T
        acc = (logits.argmax(1) == torch.arange(len(idx), device=dev)).float().mean()
        return {"clip_loss": info_nce(logits)}, {"batch_acc": acc.item(), "scale": scale.item()}


class Candidates(NamedTuple):
    """One head-stage batch: texts to encode, images to encode, and the candidate sets.

    ``text_sets[b]`` (indices into ``texts``): image b's positive caption, its hard negatives
    (padded to the world's number of kinds), then k in-batch others' positives; ``image_sets[b]``
    (indices into ``images``): caption b's image, its partner, k in-batch others. ``*_valid``
    marks real, false candidates (padding and candidates that happen to be true are off).
    """

    texts: list[str]
    images: np.ndarray            # pool indices of the images to encode
    own: torch.Tensor             # (B,) position of each caption's image in ``images``
    positives: torch.Tensor       # (B,) position of each positive caption in ``texts``
    text_sets: torch.Tensor       # (B, 1 + n_neg + k)
    text_valid: torch.Tensor
    image_sets: torch.Tensor      # (B, 2 + k)
    image_valid: torch.Tensor
    targets: list[PhraseTargets | None]


class HeadTask(Task):
    """Stage 2: local encoders + fusion on the frozen backbone (its features cached once, or
    computed per step from augmented pixels). ``word_rows``: ids of words new to the tokenizer,
    whose embedding rows train with the head (the rest of the backbone stays frozen)."""

    def __init__(self, model: VitrModel, cfg, pool, sampler, word_rows: Sequence[int] = ()):
        super().__init__(model, cfg, pool, sampler)
        model.backbone.lock()
        self.word_rows = list(word_rows)
        if self.word_rows:
            emb = model.backbone.clip.token_embedding.weight
            keep = torch.zeros(emb.shape[0], 1, device=emb.device, dtype=emb.dtype)
            keep[self.word_rows] = 1
            emb.requires_grad_(True)
            emb.register_hook(lambda grad: grad * keep)
        self.late_scale = torch.nn.Parameter(torch.tensor(10.0, device=model.device).log())
        self.n_neg = len(pool.world.negative_kinds) if isinstance(pool, ScenePool) else 0
        self.attributes = None
        if cfg.attr_weight > 0 and isinstance(pool, ScenePool):
            # training-only probe: the region at an object's centre names what the object is;
            # regions are unit vectors, so the probe reads them scaled (a learned temperature,
            # from 10): unscaled, a 118-way probe learned about half as fast (measured)
            n_values = sum(map(len, pool.world.attributes.values()))
            self.attributes = torch.nn.Linear(model.cfg.local.dim, n_values, device=model.device)
            self.attr_scale = torch.nn.Parameter(torch.tensor(10.0, device=model.device).log())
        self.cache = {}
        if cfg.cache_features:
            self.cache = {flip: self._features(flip) for flip in ((False, True) if cfg.flip
                                                                  else (False,))}

    @torch.inference_mode()
    def _features(self, flip: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Backbone (global, patch tokens) for every pool image, kept in fp16 on the CPU."""
        model, dev = self.model, self.model.device
        gs, ts = [], []
        for i in tqdm(range(0, len(self.pool), 256), desc=f"cache features flip={flip}"):
            with autocast(dev):
                g, t = model.backbone.encode_image(
                    normalise(model, self.pool.images[i:i + 256], flip, dev))
            gs.append(g.float().cpu())
            ts.append(t.to(torch.float16).cpu())
        return torch.cat(gs), torch.cat(ts)

    def trainable(self):
        m = self.model
        probe = ([("attr_scale", self.attr_scale)] + list(self.attributes.named_parameters())
                 if self.attributes is not None else [])
        words = [(EMBEDDING, m.backbone.clip.token_embedding.weight)] if self.word_rows else []
        return ([("late_scale", self.late_scale)] + probe + list(m.image_local.named_parameters())
                + list(m.text_local.named_parameters()) + list(m.fusion.named_parameters())
                + words)

    def row_params(self):
        return (self.model.backbone.clip.token_embedding.weight,) if self.word_rows else ()

    # --- the batch ------------------------------------------------------------------------
    def _candidates(self, idx: np.ndarray, step: int, rng: np.random.Generator) -> Candidates:
        """The batch's captions (one positive each), the images to encode (the batch and its
        partners) and, per item, its text and image candidate sets."""
        samples = [self.sampler.sample(int(i), step) for i in idx]
        positives = [p for p, _, _ in samples]
        partner = self.pool.partner[idx]
        images = np.unique(np.concatenate([idx, partner[partner >= 0]]))
        where = {int(v): n for n, v in enumerate(images)}
        k = min(self.cfg.in_batch_negatives, len(idx) - 1)
        text_sets, image_sets = [], []
        for b, (i, (p, negs, _)) in enumerate(zip(idx, samples)):
            text_sets.append(self._text_set(int(i), p, negs, positives, _others(rng, len(idx), b, k)))
            image_sets.append(self._image_set(idx, b, p, int(partner[b]), where,
                                              _others(rng, len(idx), b, k)))
        return self._pack(idx, samples, images, where, text_sets, image_sets)

    def _text_set(self, i: int, positive: str, negatives: list[str], positives: list[str],
                  others: np.ndarray) -> tuple[list[str], list[bool]]:
        """Image i's text candidates: its positive, its hard negatives (padded with "" to the
        world's number of kinds), the positives of ``others``; and which are real negatives."""
        negatives = negatives[:self.n_neg]
        padded = negatives + [""] * (self.n_neg - len(negatives))
        texts = [positive] + padded + [positives[j] for j in others]
        valid = ([True] + [bool(t) for t in padded]
                 + [not self.sampler.is_true(i, positives[j]) for j in others])
        return texts, valid

    def _image_set(self, idx: np.ndarray, b: int, positive: str, partner: int, where: dict,
                   others: np.ndarray) -> tuple[list[int], list[bool]]:
        """Caption b's image candidates (positions in the encoded images): its image, its
        partner (or a masked stand-in), the images of ``others``; and which are real negatives."""
        rows = [where[int(idx[b])], where.get(partner, 0)] + [where[int(idx[j])] for j in others]
        valid = ([True, partner >= 0]
                 + [not self.sampler.is_true(int(idx[j]), positive) for j in others])
        return rows, valid

    def _pack(self, idx, samples, images, where, text_sets, image_sets) -> Candidates:
        """The sets as tensors on the model's device, texts given once (sorted)."""
        sets, text_valid = zip(*text_sets)
        rows, image_valid = zip(*image_sets)
        texts = sorted({t for s in sets for t in s} - {""})
        tpos = {t: n for n, t in enumerate(texts)}
        dev = self.model.device

        def as_tensor(values, dtype=torch.long) -> torch.Tensor:
            return torch.tensor(values, dtype=dtype, device=dev)

        return Candidates(
            texts, images, as_tensor([where[int(i)] for i in idx]),
            as_tensor([tpos[p] for p, _, _ in samples]),
            as_tensor([[tpos.get(t, 0) for t in s] for s in sets]), as_tensor(text_valid, torch.bool),
            as_tensor(rows), as_tensor(image_valid, torch.bool), [g for _, _, g in samples])

    def _image_features(self, images: np.ndarray, flip: bool, step: int):
        """(global vectors, region vectors) of pool images ``images``."""
        model, dev = self.model, self.model.device
        needs_pixels = model.image_local.stem is not None or not self.cache
        pixels = (_pixels(model, self.cfg, self.pool.images[images], flip, step)
                  if needs_pixels else None)
        if self.cache:
            g_all, tok_all = self.cache[flip]
            sel = torch.from_numpy(images)
            g, tokens = g_all[sel].to(dev), tok_all[sel].to(dev).float()
        else:
            with torch.no_grad():
                g, tokens = model.backbone.encode_image(pixels)
        return g, model.image_local(tokens, pixels)

    # --- the step -------------------------------------------------------------------------
    def forward(self, idx: np.ndarray, flip: bool, step: int) -> tuple[dict, dict]:
        model, cfg = self.model, self.cfg
        rng = np.random.default_rng([cfg.seed, step, int(flip)])
        c = self._candidates(idx, step, rng)
        with autocast(model.device):
            with contextlib.nullcontext() if self.word_rows else torch.no_grad():
                txt = model.text_tokens([flip_caption(t) for t in c.texts] if flip else c.texts)
            txt_g, mask = txt.global_vectors, txt.mask
            words = model.text_local(txt.tokens, mask, txt.word_embed)
            img_g, regions = self._image_features(c.images, flip, step)
            s_text = _fused(model, words, mask, txt_g, regions, img_g,
                            c.own.repeat_interleave(c.text_sets.shape[1]), c.text_sets.flatten())
            s_img = _fused(model, words, mask, txt_g, regions, img_g, c.image_sets.flatten(),
                           c.positives.repeat_interleave(c.image_sets.shape[1]))
            p_words, p_mask, p_regions = words[c.positives], mask[c.positives], regions[c.own]
            late = late_scores(p_words, p_mask, p_regions)
        s_text = s_text.float().view(len(idx), -1)
        s_img = s_img.float().view(len(idx), -1)
        ce_t, tri_t = candidate_losses(s_text, c.text_valid)
        ce_i, tri_i = candidate_losses(s_img, c.image_valid)
        losses = {"fusion_text_loss": ce_t, "fusion_image_loss": ce_i,
                  "hard_negative_loss": cfg.hard_weight * hard_negative_loss(
                      s_text[:, :1 + self.n_neg], c.text_valid[:, 1:1 + self.n_neg]),
                  "triplet_loss": cfg.triplet_weight * (tri_t + tri_i),
                  "late_loss": cfg.late_weight * late_loss(late, p_mask, self.late_scale)}
        if cfg.ground_weight > 0 and all(t is not None for t in c.targets):
            losses["grounding_loss"] = cfg.ground_weight * grounding_loss(
                model, p_words.float(), p_mask, p_regions.float(), c.targets, flip)
        if self.attributes is not None:
            losses["attribute_loss"] = cfg.attr_weight * attribute_loss(
                self.attributes, self.pool, regions.float() * self.attr_scale.exp(), c.images,
                flip, model.image_local.cfg.pool or model.image_local.grid)
        st = s_text.detach().masked_fill(~c.text_valid, float("-inf"))
        return losses, {"text_acc": (st.argmax(1) == 0).float().mean().item()}


def _others(rng: np.random.Generator, n: int, b: int, k: int) -> np.ndarray:
    """``k`` batch positions other than ``b``, drawn without replacement."""
    return rng.choice([j for j in range(n) if j != b], size=k, replace=False)


def _fused(model: VitrModel, words, mask, txt_g, regions, img_g, image_rows, text_rows):
    """Fusion scores of the (image, text) pairs given by row indices."""
    scores, _ = model.fused(words, mask, regions[image_rows], img_g[image_rows], txt_g,
                            text_rows)
    return scores


# --- the head stage's losses ----------------------------------------------------------------

def hard_negative_loss(scores: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Each positive (column 0) above each of its own hard negatives (softplus of the gap)."""
    if not valid.any():  # real data: no hard negatives
        return scores.sum() * 0
    return F.softplus(scores[:, 1:] - scores[:, :1])[valid].mean()


def late_loss(late: torch.Tensor, mask: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """InfoNCE on in-batch MaxSim scores, normalised by each caption's length."""
    late = late.float() / mask.sum(1).float().unsqueeze(0)
    return info_nce(log_scale.exp() * late)


def grounding_loss(model: VitrModel, words: torch.Tensor, mask: torch.Tensor,
                   regions: torch.Tensor, targets: list[PhraseTargets], flip: bool
                   ) -> torch.Tensor:
    """Where the data says which words name which object: the words of each noun phrase should
    attend to its object's centre, and the role weights should find the two phrases and the
    relation words between them."""
    fusion, dev = model.fusion, words.device
    where = fusion.attend(words, regions) @ model.region_centres.to(words.dtype)
    target = torch.zeros_like(where)
    on = torch.zeros(mask.shape, dtype=torch.bool, device=dev)
    span = torch.zeros(*mask.shape, 3, device=dev)
    for b, g in enumerate(targets):
        for r, ((s0, s1), (x, y)) in enumerate(((g.span_a, g.centre_a), (g.span_b, g.centre_b))):
            target[b, s0:s1] = torch.tensor([1 - x if flip else x, y], device=dev)
            on[b, s0:s1] = True
            span[b, s0:s1, r] = 1.0
        span[b, g.span_rel[0]:g.span_rel[1], 2] = 1.0
    loss = (where - target).abs().sum(-1)[on].mean()
    if fusion.geometry is not None:
        weights, _ = fusion.geometry.role_weights(words, mask)
        loss = loss - (weights * span).sum(1).clamp(min=1e-6).log().mean()
    return loss


def attribute_loss(probe: torch.nn.Linear, pool: ScenePool, regions: torch.Tensor,
                   images: np.ndarray, flip: bool, side: int) -> torch.Tensor:
    """Cross-entropy of each attribute of the world (shape, colour, size; or category, size)
    read off the region at each object's centre."""
    world = pool.world
    names = list(world.attributes.values())
    rows, cells, labels = [], [], []
    for row, i in enumerate(images):
        for o in pool.scenes[int(i)].objects:
            x = 1 - o.x if flip else o.x
            rows.append(row)
            cells.append(min(int(o.y * side), side - 1) * side + min(int(x * side), side - 1))
            labels.append([vals.index(v) for vals, v in zip(names, world.attribute_values(o))])
    logits = probe(regions[rows, cells])
    y = torch.tensor(labels, device=logits.device)
    bounds = np.cumsum([0, *map(len, names)])
    return sum(F.cross_entropy(logits[:, a:b], y[:, k])
               for k, (a, b) in enumerate(zip(bounds[:-1], bounds[1:]))) / len(names)
