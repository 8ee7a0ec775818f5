"""open_clip backbone: global image/text vectors plus patch and token features."""
from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from ..errors import InputError, ModelNotFoundError
from .config import BackboneCfg
from . import openclip_adapter as oc
from .hub import offline_unless_reachable, weights_cached
from .tokenizer import create_tokenizer

log = logging.getLogger(__name__)
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


def _build_clip(cfg: BackboneCfg, load_pretrained: bool) -> nn.Module:
    import open_clip

    if cfg.open_clip_model is None:
        if cfg.pretrained:
            raise InputError("a custom backbone (no open_clip_model) takes no pretrained tag")
        return open_clip.CLIP(embed_dim=cfg.embed_dim, vision_cfg=cfg.vision_cfg,
                              text_cfg=cfg.text_cfg)
    name, pretrained = cfg.open_clip_model, cfg.pretrained if load_pretrained else None
    if pretrained and Path(pretrained).expanduser().is_file():
        pretrained = str(Path(pretrained).expanduser())
    hub_name = name.startswith("hf-hub:")
    if not hub_name and (not pretrained or Path(pretrained).is_file()):
        return open_clip.create_model(name, pretrained=pretrained)
    what = f"open_clip {name!r}" + ("" if hub_name else f" weights {pretrained!r}")
    fix = "pass a local checkpoint file as pretrained"
    with offline_unless_reachable() as online:
        if not online and not hub_name and not weights_cached(name, pretrained):
            raise ModelNotFoundError(f"could not load {what}: the hub cannot be reached (offline?) and they are "
                               f"not in the local cache; {fix}")
        try:
            return open_clip.create_model(name) if hub_name else open_clip.create_model(name, pretrained=pretrained)
        except (RuntimeError, OSError) as e:
            where = "" if online else " (offline)"
            raise ModelNotFoundError(f"could not load {what}{where}: {' '.join(str(e).split())}; {fix}") from e


class Backbone(nn.Module):
    """Wraps an open_clip CLIP model.

    ``encode_image`` -> (global (B, D), patch tokens (B, P, W)); ``encode_text`` ->
    (global (B, D), token features (B, L, W'), mask (B, L)).
    """

    def __init__(self, cfg: BackboneCfg, load_pretrained: bool = True):
        super().__init__()
        self.cfg = cfg
        self.clip = _build_clip(cfg, load_pretrained)
        oc.check(self.clip)
        visual = self.clip.visual
        self.image_size = int(cfg.image_size or _first(visual.image_size))
        self.grid = self.image_size // _first(visual.patch_size)
        self.image_mean = tuple(getattr(visual, "image_mean", None) or OPENAI_MEAN)
        self.image_std = tuple(getattr(visual, "image_std", None) or OPENAI_STD)
        text_cfg = cfg.text_cfg
        self.tokenizer = create_tokenizer(cfg.tokenizer, cfg.open_clip_model,
                                          text_cfg.get("vocab_size", 49408),
                                          text_cfg.get("context_length", 77), cfg.extra_words)
        self.image_width = visual.transformer.width if hasattr(visual, "transformer") else None
        self.text_width = oc.text_width(self.clip)

    def lock(self) -> None:
        """Freeze both towers (the head trains on frozen CLIP features, as in the paper)."""
        for p in self.clip.parameters():
            p.requires_grad_(False)
        self.clip.eval()

    def encode_image(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return oc.image_tokens(self.clip.visual, pixels)

    def encode_text(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return oc.encode_text(self.clip, ids)

    def decisive_length(self, ids: torch.Tensor) -> int:
        """The leading token positions that decide the text features (see the adapter's)."""
        return oc.decisive_length(self.clip, ids)

    def token_embeddings(self, ids: torch.Tensor) -> torch.Tensor:
        """The text tower's input embedding of each token (B, L, text_width)."""
        embedding = oc.token_embedding(self.clip)
        if embedding is None:
            raise ValueError("word_embed needs open_clip's built-in text tower (this model's is "
                             f"{type(self.clip.text).__name__})")
        return embedding(ids)

    def tokenize(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.tokenizer(texts)

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.clip.logit_scale


def _first(v) -> int:
    return int(v[0] if isinstance(v, (tuple, list)) else v)
