"""Local encoders: image regions with relation reasoning, and text tokens."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from .config import LocalCfg


class RelationalGraphFilter(nn.Module):
    """One relational graph filter (the paper's local reasoning block).

    Dense region-region affinities from the regions' features (content and position) aggregate
    context for every region; a per-region gate decides how much of it to let in, so a region
    can carry what stands around it (and where) without losing what it is.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.gate = nn.Linear(2 * dim, dim)
        self.norm = nn.LayerNorm(dim)
        self.scale = dim ** -0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        affinity = torch.softmax(self.q(x) @ self.k(x).transpose(1, 2) * self.scale, dim=-1)
        context = affinity @ self.v(x)
        gate = torch.sigmoid(self.gate(torch.cat([x, context], dim=-1)))
        return self.norm(x + gate * context)


def grid_boxes(grid: int, pool: int | None = None) -> torch.Tensor:
    """Boxes (x0, y0, x1, y1), normalised to the model input, of the region grid, row-major."""
    n = pool or grid
    edges = torch.linspace(0, 1, n + 1)
    y0, x0 = torch.meshgrid(edges[:-1], edges[:-1], indexing="ij")
    return torch.stack([x0, y0, x0 + 1 / n, y0 + 1 / n], dim=-1).reshape(-1, 4)


class ConvRegionStem(nn.Module):
    """A small CNN on the pixels, pooled to the region grid: fine shape detail per region.

    A ViT's patch embedding sees an object of a few pixels through one linear map of a patch
    that cuts it at an arbitrary offset; three strided convolutions and two more at the grid's
    resolution (receptive field about 47 px) see its outline whole.
    """

    def __init__(self, channels: int, dim: int, widths: list[int] | None = None):
        super().__init__()
        widths = list(widths or [channels // 2] + [channels] * 4)
        if len(widths) != 5:
            raise ValueError(f"the conv stem has five convolutions: got widths {widths}")
        ins, strides = [3, *widths[:-1]], (2, 2, 2, 1, 1)
        self.convs = nn.Sequential(*(m for i, o, s in zip(ins, widths, strides)
                                     for m in (nn.Conv2d(i, o, 3, s, 1), nn.GELU())))
        self.proj = nn.Sequential(nn.LayerNorm(widths[-1]), nn.Linear(widths[-1], dim))

    def forward(self, pixels: torch.Tensor, side: int) -> torch.Tensor:
        """(B, 3, H, W) normalised pixels -> (B, side * side, dim), row-major like the grid."""
        x = F.adaptive_avg_pool2d(self.convs(pixels), side)
        return self.proj(x.flatten(2).transpose(1, 2))


class ImageLocalEncoder(nn.Module):
    """Patch tokens (+ a conv stem's features) + 2-D position -> projection -> relation
    reasoning -> region vectors."""

    def __init__(self, in_dim: int, grid: int, cfg: LocalCfg):
        super().__init__()
        self.cfg, self.grid = cfg, grid
        self.register_buffer("boxes", grid_boxes(grid, cfg.pool), persistent=False)
        self.proj = nn.Sequential(nn.LayerNorm(in_dim), nn.Linear(in_dim, cfg.dim))
        self.stem = ConvRegionStem(cfg.stem, cfg.dim, cfg.stem_widths) if cfg.stem else None
        self.pos = nn.Linear(4, cfg.dim)
        if cfg.reasoning == "graph":
            blocks = [RelationalGraphFilter(cfg.dim) for _ in range(cfg.layers)]
        elif cfg.reasoning == "attention":
            blocks = [nn.TransformerEncoderLayer(cfg.dim, max(1, cfg.dim // 32), 2 * cfg.dim,
                                                 dropout=0.0, batch_first=True)
                      for _ in range(cfg.layers)]
        elif cfg.reasoning == "none":
            blocks = []
        else:
            raise InputError(f"unknown reasoning {cfg.reasoning!r}; use graph, attention or none")
        self.blocks = nn.ModuleList(blocks)
        self.out = nn.Linear(cfg.dim, cfg.dim)

    def forward(self, tokens: torch.Tensor, pixels: torch.Tensor | None = None) -> torch.Tensor:
        """Backbone tokens (B, [1 +] grid**2, in_dim), and with a stem the pixels they came
        from -> (B, R, dim) L2-normalised region vectors."""
        patches = tokens[:, -self.grid * self.grid:]  # drop a class token if present
        if self.cfg.pool:
            b, _, w = patches.shape
            img = patches.transpose(1, 2).reshape(b, w, self.grid, self.grid)
            patches = F.adaptive_avg_pool2d(img, self.cfg.pool).flatten(2).transpose(1, 2)
        x = self.proj(patches) + self.pos(self.boxes.to(patches.dtype))
        if self.stem is not None:
            if pixels is None:
                raise InputError("this model's region encoder has a conv stem: pass the pixels")
            x = x + self.stem(pixels.to(x.dtype), self.cfg.pool or self.grid)
        for block in self.blocks:
            x = block(x)
        return F.normalize(self.out(x), dim=-1)


class TextLocalEncoder(nn.Module):
    """Token features -> projection -> L2-normalised token vectors (padding zeroed).

    With ``cfg.word_embed`` it also reads each token's input embedding (``word_embed``, ``in_dim``
    wide too), normalised and projected on its own and added: the word itself reaches the head
    even where the tower's outputs for two words are nearly equal."""

    def __init__(self, in_dim: int, cfg: LocalCfg):
        super().__init__()
        self.in_dim = in_dim
        self.proj = nn.Sequential(nn.LayerNorm(in_dim), nn.Linear(in_dim, cfg.dim))
        self.word = (nn.Sequential(nn.LayerNorm(in_dim), nn.Linear(in_dim, cfg.dim))
                     if cfg.word_embed else None)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor,
                word_embed: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L, in_dim) token features, (B, L) mask, and for a ``word_embed`` encoder the
        (B, L, in_dim) input embeddings -> (B, L, dim)."""
        h = self.proj(tokens)
        if self.word is not None:
            if word_embed is None:
                raise InputError("this text local encoder reads each token's input embedding: "
                                 "pass word_embed (VitrModel.text_tokens gives it)")
            h = h + self.word(word_embed)
        return F.normalize(h, dim=-1) * mask.unsqueeze(-1).to(tokens.dtype)


def late_scores(words: torch.Tensor, mask: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
    """MaxSim: for each (text, image), sum over the text's tokens of the max over regions.

    words (T, L, d) with padding zeroed, mask (T, L), regions (I, R, d) -> (I, T).
    """
    sims = torch.einsum("tld,ird->itlr", words, regions)
    best = sims.max(dim=-1).values * mask.unsqueeze(0).to(sims.dtype)
    return best.sum(dim=-1)
