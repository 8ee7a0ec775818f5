"""The VITR fusion module: relation reasoning over word-to-region alignments plus the global
similarity, pooled by a GRU to one relevance score.

Works on stored vectors only (region and global vectors of the image, token and global vectors
of the text), so a store can rerank candidates without touching images again.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .config import FusionCfg


class TextSide(NamedTuple):
    """The texts' part of the fusion head (:meth:`FusionHead.text_side`): their words, mask and
    global vectors, each word's identity node, and the geometry's role weights (None without)."""

    words: torch.Tensor
    mask: torch.Tensor
    txt_global: torch.Tensor
    ident: torch.Tensor
    roles: tuple[torch.Tensor, torch.Tensor] | None


class GraphReasoning(nn.Module):
    """One step of similarity-graph reasoning: nodes attend to nodes, then update."""

    def __init__(self, dim: int):
        super().__init__()
        self.q, self.k, self.update = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, nodes: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        logits = self.q(nodes) @ self.k(nodes).transpose(1, 2) / nodes.shape[-1] ** 0.5
        logits = logits.masked_fill(~mask.unsqueeze(1), float("-inf"))
        edges = torch.softmax(logits, dim=-1)
        return self.norm(nodes + F.relu(self.update(edges @ nodes)))


class GeometryNode(nn.Module):
    """Where the query's roles sit, as one extra graph node.

    Each word gets soft weights for three roles (the two related phrases and the relation)
    from its token vector in context; the role-weighted sums of the words' attended region
    centres say where each phrase was found, and the relation role's context vector says what
    was asked. Their bilinear combination forms a node, so the reasoning compares positions
    instead of having to recover them from similarities.
    """

    def __init__(self, local_dim: int, dim: int, max_len: int = 80):
        super().__init__()
        self.position = nn.Embedding(max_len, local_dim)
        self.context = nn.TransformerEncoderLayer(local_dim, 2, 2 * local_dim, dropout=0.0,
                                                  batch_first=True)
        self.roles = nn.Linear(local_dim, 3)
        self.rel = nn.Linear(local_dim, dim)
        self.offset = nn.Linear(6, dim)
        self.mlp = nn.Sequential(nn.Linear(2 * dim + 6, dim), nn.ReLU(), nn.Linear(dim, dim))
        self.direction = nn.Linear(local_dim, 2)  # the relation as a direction in the image

    def role_weights(self, words: torch.Tensor, mask: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """(T, L, 3) per-role distributions over the words, and the words in context."""
        pos = self.position(torch.arange(words.shape[1], device=words.device))
        ctx = self.context(words + pos, src_key_padding_mask=~mask)
        logits = self.roles(ctx).masked_fill(~mask.unsqueeze(-1), float("-inf"))
        return torch.softmax(logits, dim=1), ctx

    def forward(self, roles: tuple[torch.Tensor, torch.Tensor], where: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """From each pair's text roles (:meth:`role_weights`, (K, L, 3) and (K, L, d)) and its
        words' attended centres (K, L, 2): the node (K, dim) and a direct score (K,): how far
        the second phrase lies from the first along the direction the relation words name."""
        weights, ctx = roles
        a, b = (torch.einsum("kl,klc->kc", weights[..., r], where) for r in (0, 1))
        geo = torch.cat([a, b, b - a], dim=-1) * 4  # (K, 6), centres in [0, 1] scaled up
        rel_ctx = torch.einsum("kl,kld->kd", weights[..., 2], ctx)
        rel = self.rel(rel_ctx)
        direct = (self.direction(rel_ctx) * (b - a) * 4).sum(-1)
        return self.mlp(torch.cat([geo, rel, rel * self.offset(geo)], dim=-1)), direct


class FusionHead(nn.Module):
    """Scores (text, image) pairs from (words, mask, regions, region centres, globals)."""

    def __init__(self, local_dim: int, global_dim: int, cfg: FusionCfg):
        super().__init__()
        h = cfg.sim_dim
        self.log_temp = nn.Parameter(torch.tensor(float(cfg.attn_temperature)).log())
        self.word_sim = nn.Linear(local_dim, h)
        self.word_id = nn.Linear(local_dim, h)
        self.word_pos = nn.Linear(2, h)
        self.global_sim = nn.Linear(global_dim, h)
        self.geometry = GeometryNode(local_dim, h) if cfg.geometry else None
        self.graph = nn.ModuleList(GraphReasoning(h) for _ in range(cfg.graph_steps))
        self.gru = nn.GRU(h, h, batch_first=True)
        self.score = nn.Linear(h, 1)
        self.geometry_score = nn.Linear(h, 1) if cfg.geometry else None

    def attend(self, words: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
        """Word-to-region attention (K, L, R)."""
        logits = words @ regions.transpose(1, 2) * self.log_temp.exp()
        return torch.softmax(logits, dim=-1)

    def text_side(self, words: torch.Tensor, mask: torch.Tensor, txt_global: torch.Tensor) -> "TextSide":
        """What depends on the texts alone (words (T, L, d), mask (T, L) bool, txt_global (T, D)),
        computed once per text: a query's part of the head, reused for every candidate."""
        roles = self.geometry.role_weights(words, mask) if self.geometry is not None else None
        return TextSide(words, mask, txt_global, self.word_id(words), roles)

    def forward(self, words: torch.Tensor, mask: torch.Tensor, regions: torch.Tensor,
                centres: torch.Tensor, img_global: torch.Tensor, txt_global: torch.Tensor,
                text_index: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores of K (text, image) pairs: words (T, L, d), mask (T, L) bool and txt_global
        (T, D) per text; regions (K, R, d) and img_global (K, D) per pair; centres (R, 2);
        ``text_index`` (K,) the text of each pair (default: pair k has text k, T = K).
        Returns scores (K,) and the word-to-region attention (K, L, R)."""
        return self.pairs(self.text_side(words, mask, txt_global), regions, centres, img_global, text_index)

    def pairs(self, text: "TextSide", regions: torch.Tensor, centres: torch.Tensor, img_global: torch.Tensor,
              text_index: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`forward` from the texts' :meth:`text_side`."""
        if text_index is None:
            text_index = torch.arange(len(text.words), device=text.words.device)
        ident, roles = text.ident[text_index], text.roles
        words, mask, txt_global = text.words[text_index], text.mask[text_index], text.txt_global[text_index]
        attn = self.attend(words, regions)
        attended = attn @ regions
        where = attn @ centres.to(attn.dtype)
        word_nodes = (F.normalize(self.word_sim((words - attended) ** 2), dim=-1)
                      + ident + self.word_pos(where))
        g = F.normalize(img_global, dim=-1) - F.normalize(txt_global, dim=-1)
        global_node = F.normalize(self.global_sim(g ** 2), dim=-1).unsqueeze(1)
        extra, shortcut = [global_node], 0.0
        if roles is not None:
            geo, direct = self.geometry(tuple(r[text_index] for r in roles), where)
            extra.append(geo.unsqueeze(1))
            shortcut = self.geometry_score(geo).squeeze(-1) + direct
        nodes = torch.cat([*extra, word_nodes], dim=1)
        node_mask = torch.cat([torch.ones_like(mask[:, :1])] * len(extra) + [mask], dim=1)
        for step in self.graph:
            nodes = step(nodes, node_mask)
        out, _ = self.gru(nodes)
        last = node_mask.long().sum(dim=1) - 1
        pooled = out[torch.arange(out.shape[0]), last]
        return self.score(pooled).squeeze(-1) + shortcut, attn
