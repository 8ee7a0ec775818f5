"""The one place that reaches into an open_clip model's internals.

open_clip's public ``encode_text`` returns the pooled vector only; VITR also needs the token
features before pooling, so it runs the built-in text tower step by step, as open_clip's own
``CLIP.encode_text`` does. Those steps use the attributes listed below, which open_clip does not
promise to keep. :func:`check` verifies them once, when a backbone is built, and names what is
missing, so a release that moves one fails with one clear message instead of deep in a search.

Tested with the open_clip_torch versions pinned in pyproject.toml (``SUPPORTED``): 3.1 is the
first release whose ``text_global_pool`` takes the end-of-text id (``eos_token_id``).
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ModelError

SUPPORTED = ">=3.1,<4"
# open_clip.CLIP (the built-in text tower): what encode_text reads
TEXT_ATTRS = ("token_embedding", "positional_embedding", "transformer", "transformer.width",
              "transformer.get_cast_dtype", "ln_final", "attn_mask", "text_pool_type",
              "text_projection")
# open_clip.CustomTextCLIP: its text module returns (pooled, tokens) when output_tokens is set
CUSTOM_TEXT_ATTRS = ("text", "text.width", "text.output_tokens")
VISUAL_ATTRS = ("visual", "visual.image_size", "visual.patch_size", "visual.output_tokens")
# a module-level function of open_clip.transformer
POOL_FUNCTION = "open_clip.transformer.text_global_pool"


def _has(obj, dotted: str) -> bool:
    for part in dotted.split("."):
        if not hasattr(obj, part):
            return False
        obj = getattr(obj, part)
    return True


def missing_attrs(clip) -> list[str]:
    """The attributes of ``clip`` (and of open_clip) the adapter needs and cannot find."""
    text = CUSTOM_TEXT_ATTRS if hasattr(clip, "text") else TEXT_ATTRS
    missing = [a for a in (*VISUAL_ATTRS, *text) if not _has(clip, a)]
    if not hasattr(clip, "text"):
        try:
            from open_clip.transformer import text_global_pool  # noqa: F401
        except ImportError:
            missing.append(POOL_FUNCTION)
    return missing


def check(clip) -> None:
    """Raise :class:`ModelError` naming every attribute ``clip`` lacks (see the module doc)."""
    missing = missing_attrs(clip)
    if missing:
        raise ModelError(f"this open_clip model ({type(clip).__name__}, open_clip_torch "
                         f"{_version()}) lacks what vitr-qdrant reads from it: {', '.join(missing)}; "
                         f"install a supported open_clip_torch ({SUPPORTED})")


def _version() -> str:
    try:
        from importlib.metadata import version
        return version("open_clip_torch")
    except Exception:  # not installed as a distribution (a source checkout)
        return "version unknown"


def text_width(clip) -> int:
    """The width of the text tower's token features."""
    return clip.text.width if hasattr(clip, "text") else clip.transformer.width


def encode_text(clip, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(pooled and projected (B, D), token features after the final norm (B, L, W))."""
    if hasattr(clip, "text"):  # CustomTextCLIP
        clip.text.output_tokens = True
        pooled, tokens = clip.text(ids)
        return pooled, tokens
    from open_clip.transformer import text_global_pool

    cast, length = clip.transformer.get_cast_dtype(), ids.shape[1]   # ids may be cut short: see decisive_length
    mask = None if clip.attn_mask is None else clip.attn_mask[:length, :length]
    x = clip.token_embedding(ids).to(cast) + clip.positional_embedding[:length].to(cast)
    x = clip.ln_final(clip.transformer(x, attn_mask=mask))
    pooled = text_global_pool(x, ids, clip.text_pool_type,
                              eos_token_id=getattr(clip, "text_eos_id", None))
    proj = clip.text_projection
    if proj is not None:
        pooled = proj(pooled) if isinstance(proj, nn.Linear) else pooled @ proj
    return pooled, x


def decisive_length(clip, ids: torch.Tensor) -> int:
    """How many leading positions of ``ids`` (B, L) decide :func:`encode_text`'s output at the
    valid tokens: up to the last non-padding token where the built-in tower is causal and pools
    at or before end-of-text (padding after it changes nothing then); else all ``L``."""
    if hasattr(clip, "text") or clip.attn_mask is None or clip.text_pool_type not in ("argmax", "eos", "first"):
        return ids.shape[1]
    used = (ids != 0).any(dim=0).nonzero()
    return int(used.max()) + 1 if len(used) else 1


def token_embedding(clip) -> nn.Embedding | None:
    """The built-in text tower's input embedding; None for a custom text module."""
    return None if hasattr(clip, "text") else clip.token_embedding


def set_token_embedding(clip, embedding: nn.Embedding) -> None:
    """Replace the built-in text tower's input embedding (a grown vocabulary)."""
    clip.token_embedding = embedding
    if hasattr(clip, "vocab_size"):
        clip.vocab_size = embedding.num_embeddings


def image_tokens(visual, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(pooled (B, D), patch tokens (B, P, W)) from the vision tower."""
    visual.output_tokens = True
    pooled, tokens = visual(pixels)
    return pooled, tokens
