"""Training tasks: a model plus its loss, returning ``(losses, metrics)`` per batch."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from .data.relation_scenes import COLORS, SHAPES, SIZES
from .data.scene_pool import CaptionSampler, ScenePool, flip_caption
from .data.scenes_dataset import NEGATIVE_KINDS
from .local import late_scores
from .losses import candidate_losses, info_nce
from .model import VitrModel, autocast


def normalise(model: VitrModel, images: np.ndarray, flip: bool, device) -> torch.Tensor:
    """uint8 (B, S, S, 3) at the model size -> normalised pixels, as inference preprocesses."""
    x = torch.from_numpy(images).to(device).permute(0, 3, 1, 2).float() / 255.0
    if flip:
        x = torch.flip(x, dims=[3])
    bb = model.backbone
    mean = torch.tensor(bb.image_mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(bb.image_std, device=device).view(1, 3, 1, 1)
    return (x - mean) / std


ATTRIBUTES = (list(SHAPES), list(COLORS), list(SIZES))  # what the attribute probe names
N_NEG = len(NEGATIVE_KINDS)  # hard negatives per caption at most: one of each kind


class ClipTask(torch.nn.Module):
    """Stage 1: the backbone alone, InfoNCE on global vectors."""

    def __init__(self, model: VitrModel, cfg, pool, sampler: CaptionSampler):
        super().__init__()
        self.model, self.cfg, self.pool, self.sampler = model, cfg, pool, sampler

    def trainable(self):
        return list(self.model.backbone.named_parameters())

    def forward(self, idx: np.ndarray, flip: bool) -> tuple[dict, dict]:
        model, dev = self.model, self.model.device
        texts = [self.sampler.sample(int(i))[0] for i in idx]
        if flip:
            texts = [flip_caption(t) for t in texts]
        ids, _ = model.backbone.tokenize(texts)
        with autocast(dev):
            g_img, _ = model.backbone.encode_image(normalise(model, self.pool.images[idx], flip,
                                                             dev))
            g_txt, _ = model.backbone.encode_text(ids.to(dev))
        scale = model.backbone.logit_scale.exp().clamp(max=100)
        logits = scale * F.normalize(g_img.float(), dim=-1) @ F.normalize(g_txt.float(), dim=-1).T
        loss = info_nce(logits)
        acc = (logits.argmax(1) == torch.arange(len(idx), device=dev)).float().mean()
        return {"clip_loss": loss}, {"batch_acc": acc.item(), "scale": scale.item()}


class HeadTask(torch.nn.Module):
    """Stage 2: local encoders + fusion on the frozen backbone's cached features."""

    def __init__(self, model: VitrModel, cfg, pool, sampler: CaptionSampler):
        super().__init__()
        self.model, self.cfg, self.pool, self.sampler = model, cfg, pool, sampler
        model.backbone.lock()
        self.late_scale = torch.nn.Parameter(torch.tensor(10.0, device=model.device).log())
        # training-only probe: the region at an object's centre names its shape, colour and size
        self.attributes = torch.nn.Linear(model.cfg.local.dim, sum(map(len, ATTRIBUTES)),
                                          device=model.device)
        self.cache = {False: self._features(False)}
        if cfg.flip:
            self.cache[True] = self._features(True)

    @torch.inference_mode()
    def _features(self, flip: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Backbone (global, patch tokens) for every pool image, kept in bf16/fp16."""
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
        return ([("late_scale", self.late_scale)] + list(self.attributes.named_parameters())
                + list(m.image_local.named_parameters())
                + list(m.text_local.named_parameters()) + list(m.fusion.named_parameters()))

    def _texts(self, idx: np.ndarray, k: int, rng: np.random.Generator):
        """Per image: positive, hard negatives, then k in-batch others' positives."""
        sets, valid = [], []
        samples = [self.sampler.sample(int(i)) for i in idx]
        pos = [p for p, _, _ in samples]
        self._grounds = [g for _, _, g in samples]
        for b, (i, (p, negs, _)) in enumerate(zip(idx, samples)):
            others = rng.choice([j for j in range(len(idx)) if j != b], size=k, replace=False)
            cands = [p] + negs + [""] * (N_NEG - len(negs)) + [pos[j] for j in others]
            ok = [True] + [bool(t) for t in cands[1:1 + N_NEG]] + [
                not self.sampler.is_true(int(i), pos[j]) for j in others]
            sets.append(cands)
            valid.append(ok)
        return pos, sets, valid

    def _grounding_loss(self, words, mask, regions, flip: bool) -> torch.Tensor | None:
        """Where the data says which words name which object (Relation Scenes): the words of
        each noun phrase should attend to its object, and the role weights should find the two
        phrases and the relation words between them. None for data without such grounding."""
        if self.cfg.ground_weight <= 0 or any(g is None for g in self._grounds):
            return None
        fusion, dev = self.model.fusion, words.device
        where = fusion.attend(words, regions) @ self.model.region_centres.to(words.dtype)
        target = torch.zeros_like(where)
        on = torch.zeros(mask.shape, dtype=torch.bool, device=dev)
        span = torch.zeros(*mask.shape, 3, device=dev)
        for b, g in enumerate(self._grounds):
            for r, ((s0, s1), (x, y)) in enumerate(((g.span_a, g.centre_a),
                                                    (g.span_b, g.centre_b))):
                target[b, s0:s1] = torch.tensor([1 - x if flip else x, y], device=dev)
                on[b, s0:s1] = True
                span[b, s0:s1, r] = 1.0
            span[b, g.span_a[1]:g.span_b[0], 2] = 1.0
        loss = (where - target).abs().sum(-1)[on].mean()
        if fusion.geometry is not None:
            weights, _ = fusion.geometry.role_weights(words, mask)
            loss = loss - (weights * span).sum(1).clamp(min=1e-6).log().mean()
        return loss

    def _attribute_loss(self, regions: torch.Tensor, img_ids: np.ndarray, flip: bool) -> torch.Tensor:
        """Cross-entropy of shape, colour and size read off the region at each object's centre."""
        local = self.model.image_local
        side = local.cfg.pool or local.grid
        rows, cells, labels = [], [], []
        for row, i in enumerate(img_ids):
            for o in self.pool.scenes[int(i)].objects:
                x = 1 - o.x if flip else o.x
                rows.append(row)
                cells.append(min(int(o.y * side), side - 1) * side + min(int(x * side), side - 1))
                labels.append([names.index(v)
                               for names, v in zip(ATTRIBUTES, (o.shape, o.color, o.size_name))])
        logits = self.attributes(regions[rows, cells].float())
        y = torch.tensor(labels, device=logits.device)
        bounds = np.cumsum([0, *map(len, ATTRIBUTES)])
        return sum(F.cross_entropy(logits[:, a:b], y[:, k])
                   for k, (a, b) in enumerate(zip(bounds[:-1], bounds[1:]))) / len(ATTRIBUTES)

    def forward(self, idx: np.ndarray, flip: bool) -> tuple[dict, dict]:
        model, dev, cfg = self.model, self.model.device, self.cfg
        rng = np.random.default_rng(int(idx[0]) * 7919 + int(flip))
        k = min(cfg.in_batch_negatives, len(idx) - 1)
        pos, sets, tvalid = self._texts(idx, k, rng)
        # Image side: the caption's image, its partner (the pair exchanged), k others.
        partner = self.pool.partner[idx]
        img_ids = np.unique(np.concatenate([idx, partner[partner >= 0]]))
        where = {int(v): n for n, v in enumerate(img_ids)}
        icands, ivalid = [], []
        for b, i in enumerate(idx):
            others = rng.choice([j for j in range(len(idx)) if j != b], size=k, replace=False)
            cand = [where[int(i)], where.get(int(partner[b]), 0)] + [where[int(idx[j])]
                                                                      for j in others]
            icands.append(cand)
            ivalid.append([True, partner[b] >= 0] + [not self.sampler.is_true(int(idx[j]), pos[b])
                                                     for j in others])
        texts = sorted({t for s in sets for t in s if t})
        tpos = {t: n for n, t in enumerate(texts)}
        enc_texts = [flip_caption(t) for t in texts] if flip else texts
        g_all, tok_all = self.cache[flip]
        sel = torch.from_numpy(img_ids)
        with autocast(dev):
            with torch.no_grad():
                txt_g, txt_tok, mask = model.text_tokens(enc_texts)
            words = model.text_local(txt_tok, mask)
            pixels = (normalise(model, self.pool.images[img_ids], flip, dev)
                      if model.image_local.stem is not None else None)
            regions = model.image_local(tok_all[sel].to(dev).float(), pixels)
            img_g = g_all[sel].to(dev)
            # text-side candidate sets
            t_idx = torch.tensor([[tpos.get(t, 0) for t in s] for s in sets], device=dev)
            t_img = torch.tensor([where[int(i)] for i in idx], device=dev)
            ti = t_img.repeat_interleave(t_idx.shape[1])
            tt = t_idx.flatten()
            s_text, _ = model.fused(words[tt], mask[tt], regions[ti], img_g[ti], txt_g[tt])
            # image-side candidate sets
            i_idx = torch.tensor(icands, device=dev)
            p_txt = torch.tensor([tpos[p] for p in pos], device=dev)
            ii = i_idx.flatten()
            it = p_txt.repeat_interleave(i_idx.shape[1])
            s_img, _ = model.fused(words[it], mask[it], regions[ii], img_g[ii], txt_g[it])
            # late interaction, in-batch
            late = late_scores(words[p_txt], mask[p_txt], regions[t_img])
            ground = self._grounding_loss(words[p_txt], mask[p_txt], regions[t_img], flip)
        late = late.float() / mask[p_txt].sum(1).float().unsqueeze(0)
        tv = torch.tensor(tvalid, device=dev)
        iv = torch.tensor(ivalid, device=dev)
        ce_t, tri_t = candidate_losses(s_text.float().view(len(idx), -1), tv)
        ce_i, tri_i = candidate_losses(s_img.float().view(len(idx), -1), iv)
        late_loss = info_nce(self.late_scale.exp() * late)
        hard = s_text.float().view(len(idx), -1)[:, :1 + N_NEG]
        hard_valid = tv[:, 1:1 + N_NEG]
        pairwise = (F.softplus(hard[:, 1:] - hard[:, :1])[hard_valid].mean()
                    if hard_valid.any() else hard.sum() * 0)  # real data: no hard negatives
        losses = {"fusion_text_loss": ce_t, "fusion_image_loss": ce_i,
                  "hard_negative_loss": cfg.hard_weight * pairwise,
                  "triplet_loss": cfg.triplet_weight * (tri_t + tri_i),
                  "late_loss": cfg.late_weight * late_loss}
        if ground is not None:
            losses["grounding_loss"] = cfg.ground_weight * ground
        if cfg.attr_weight > 0 and isinstance(self.pool, ScenePool):
            losses["attribute_loss"] = cfg.attr_weight * self._attribute_loss(regions, img_ids, flip)
        st = s_text.detach().view(len(idx), -1).masked_fill(~tv, float("-inf"))
        metrics = {"text_acc": (st.argmax(1) == 0).float().mean().item()}
        return losses, metrics
