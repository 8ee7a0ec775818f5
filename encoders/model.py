"""VitrModel: backbone + local encoders + fusion head, with the public scoring API."""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from .backbone import Backbone
from .config import ModelCfg
from .first_stage import FIRST_STAGE_PREFIX, FirstStage
from .fusion import FusionHead, TextSide
from .images import ImageInput, load_image, preprocess
from .local import ImageLocalEncoder, TextLocalEncoder, late_scores
from .modes import resolve_mode


@dataclass
class ImageEmbeddings:
    """``global_vectors`` (n, D) and ``region_vectors`` (n, R, d), L2-normalised float32; with a
    first stage also ``first_vectors`` (n, F)."""

    global_vectors: np.ndarray
    region_vectors: np.ndarray
    first_vectors: np.ndarray | None = None


@dataclass
class TextEmbeddings:
    """``global_vectors`` (n, D) and ``token_vectors``: one (m_i, d) array per text; with a first
    stage also ``first_vectors`` (n, F)."""

    global_vectors: np.ndarray
    token_vectors: list[np.ndarray]
    first_vectors: np.ndarray | None = None


@dataclass
class TextQuery:
    """One text query encoded once (:meth:`VitrModel.encode_queries`): everything each stage
    of a search needs, so the text is tokenized and encoded one time only.

    Attributes:
        text: The query text.
        spans: Its words and their token positions (``[(word, [positions])]``, as
            :meth:`VitrModel.word_spans`), for grounding.
        unknown_words: Its words the model's vocabulary lacks (each once).
        global_vector: (D,) L2-normalised; stage 1 and the ``global`` mode.
        token_vectors: (m, d) one vector a valid token; stage 2's MaxSim.
        first_vector: (F,) the first-stage vector (None: the model has no first stage).
        head: The query's part of the fusion head, computed once for all its candidates
            (None: the model has no trained head).
        encoder: The weights hash of the model that encoded it (a query only searches with it).
    """

    text: str
    spans: list[tuple[str, list[int]]]
    unknown_words: list[str]
    global_vector: np.ndarray
    token_vectors: np.ndarray
    first_vector: np.ndarray | None
    head: TextSide | None
    encoder: str


class TextTokens(NamedTuple):
    """What the text local encoder reads: (T, D) global vectors, (T, L, W) token features,
    (T, L) mask, and with ``local.word_embed`` (T, L, W) token input embeddings."""

    global_vectors: torch.Tensor
    tokens: torch.Tensor
    mask: torch.Tensor
    word_embed: torch.Tensor | None


def pick_device(device: str | torch.device | None) -> torch.device:
    """``device``, or by default CUDA when available, else the CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def autocast(device: torch.device):
    """bf16 autocast on CUDA; a no-op context on CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        texts = [texts]
    texts = list(texts)
    if not texts:
        raise InputError("texts is empty: pass at least one non-empty string")
    for t in texts:
        if not isinstance(t, str) or not t.strip():
            raise InputError(f"every text must be a non-empty string (got {t!r})")
    return texts


class VitrModel(nn.Module):
    """A VITR model. Scores come in three modes: ``global`` (the backbone's cosine: the CLIP
    baseline), ``late`` (MaxSim of token vectors over region vectors) and ``vitr`` (fusion)."""

    def __init__(self, cfg: ModelCfg, load_pretrained: bool = True):
        super().__init__()
        self.cfg = cfg
        self.backbone = Backbone(cfg.backbone, load_pretrained=load_pretrained)
        bb = self.backbone
        self.image_local = ImageLocalEncoder(bb.image_width, bb.grid, cfg.local)
        self.text_local = TextLocalEncoder(bb.text_width, cfg.local)
        self.fusion = FusionHead(cfg.local.dim, cfg.backbone.embed_dim, cfg.fusion)
        self.first_stage = FirstStage(cfg.local.dim, cfg.first_stage) if cfg.first_stage else None
        self.head_trained = False
        self.card_text = ""  # a bundled model's MODEL_CARD.md (set when loaded from its directory)
        self.source: str | None = None  # the directory it was loaded from, if any (collections record it)
        self._fingerprint: dict | None = None

    def __repr__(self) -> str:
        """One line; ``nn.Module``'s would list every layer (``print(model.backbone)`` still does)."""
        bb, n_params = self.cfg.backbone, sum(p.numel() for p in self.parameters())
        source = f"{bb.open_clip_model}/{bb.pretrained}" if bb.pretrained else (bb.open_clip_model or "custom")
        return (f"VitrModel({self.cfg.name!r}, backbone={source}, image_size={self.backbone.image_size}, "
                f"global_dim={bb.embed_dim}, regions={len(self.region_boxes)}x{self.cfg.local.dim}, "
                f"params={n_params / 1e6:.2f}M, head_trained={self.head_trained}, device={self.device})")

    # --- geometry ------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def region_boxes(self) -> np.ndarray:
        """(R, 4) boxes (x0, y0, x1, y1) of the regions, normalised to the model input."""
        return self.image_local.boxes.cpu().numpy()

    @property
    def region_centres(self) -> torch.Tensor:
        b = self.image_local.boxes
        return torch.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2], dim=-1)

    # --- tensor-level encoders (used by the trainer too) ---------------------------------
    def pixels(self, images: Sequence[ImageInput]) -> torch.Tensor:
        bb = self.backbone
        size = bb.image_size
        return torch.stack([preprocess(load_image(im, fit=size), size, bb.image_mean, bb.image_std) for im in images])

    def image_features(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        g, tokens = self.backbone.encode_image(pixels)
        return g, self.image_local(tokens, pixels)

    def text_tokens(self, texts: list[str], tokenized: tuple[torch.Tensor, torch.Tensor] | None = None
                    ) -> "TextTokens":
        """Backbone global vectors, token features and mask with the valid tokens first; with
        ``local.word_embed`` also each token's input embedding (None otherwise). ``tokenized``:
        the texts' ``(ids, mask)`` when already tokenized."""
        ids, mask = tokenized if tokenized is not None else self.backbone.tokenize(texts)
        length = self.backbone.decisive_length(ids)   # the padding after it changes nothing: not run
        ids, mask = ids[:, :length].to(self.device), mask[:, :length].to(self.device)
        g, tokens = self.backbone.encode_text(ids)
        words = (self.backbone.token_embeddings(ids).to(tokens.dtype)
                 if self.cfg.local.word_embed else None)
        # Valid tokens first (open_clip's start-of-text token is masked out), padding after.
        order = torch.argsort((~mask).int(), dim=1, stable=True)

        def first(x: torch.Tensor | None) -> torch.Tensor | None:
            return None if x is None else x.gather(1, order.unsqueeze(-1).expand_as(x))

        return TextTokens(g, first(tokens), mask.gather(1, order), first(words))

    def word_spans(self, text: str) -> list[tuple[str, list[int]]]:
        """The words of ``text`` and the positions of their token vectors (as ``encode_texts``
        returns them): ``[(word, [token positions])]``."""
        return self.backbone.tokenizer.word_spans(text)

    def unknown_words(self, text: str) -> list[str]:
        """The words of ``text`` this model's vocabulary does not have (each once, in order):
        they reach it as one unknown token and carry no meaning. Empty for open_clip's BPE."""
        return self.backbone.tokenizer.unknown_words(text)

    @property
    def card(self) -> str:
        """What the model is and the world it was trained on, then its model card if it has one."""
        from .data.worlds import WORLD_NAMES, get_world

        if self.cfg.world in WORLD_NAMES:
            trained = f"trained on {get_world(self.cfg.world).summary}"
        elif self.head_trained:
            trained = "its head trained on its user's data"
        else:
            trained = "its VITR head is not trained: it scores in global mode"
        head = f"{self.cfg.name}: {self.cfg.description or 'a VITR model'} ({trained})."
        return head + (f"\n\n{self.card_text}" if self.card_text else "")

    def text_features(self, texts: list[str], tokenized: tuple[torch.Tensor, torch.Tensor] | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        t = self.text_tokens(texts, tokenized)
        return t.global_vectors, self.text_local(t.tokens, t.mask, t.word_embed), t.mask

    def fused(self, words, mask, regions, img_global, txt_global, text_index=None):
        """Fusion scores of K pairs (texts given once, ``text_index`` naming each pair's);
        see FusionHead.forward."""
        return self.fusion(words, mask, regions, self.region_centres, img_global, txt_global,
                           text_index)

    def pair_scores(self, mode: str, img_g: torch.Tensor, regions: torch.Tensor,
                    txt_g: torch.Tensor, words: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """All (image, text) scores (I, T) in ``mode`` from feature tensors."""
        if mode == "global":
            return F.normalize(img_g, dim=-1) @ F.normalize(txt_g, dim=-1).T
        if mode == "late":
            return late_scores(words, mask, regions)
        n_i, n_t = img_g.shape[0], txt_g.shape[0]
        ii = torch.arange(n_i, device=img_g.device).repeat_interleave(n_t)
        tt = torch.arange(n_t, device=img_g.device).repeat(n_i)
        scores, _ = self.fused(words, mask, regions[ii], img_g[ii], txt_g, tt)
        return scores.view(n_i, n_t)

    # --- public API -----------------------------------------------------------------------
    @torch.inference_mode()
    def encode_images(self, images: Sequence[ImageInput], batch_size: int = 64) -> ImageEmbeddings:
        """Global and region vectors for images (PIL, paths, bytes or HxWx3 uint8 arrays)."""
        images = list(images)
        parts = [self.encode_pixels(self.pixels(images[i:i + batch_size]))
                 for i in range(0, len(images), batch_size)]
        if not parts:
            return ImageEmbeddings(np.zeros((0, self.cfg.backbone.embed_dim), np.float32),
                                   np.zeros((0, len(self.region_boxes), self.cfg.local.dim), np.float32))
        return ImageEmbeddings(np.concatenate([p.global_vectors for p in parts]),
                               np.concatenate([p.region_vectors for p in parts]),
                               None if parts[0].first_vectors is None else
                               np.concatenate([p.first_vectors for p in parts]))

    @torch.inference_mode()
    def encode_pixels(self, pixels: torch.Tensor) -> ImageEmbeddings:
        """Embeddings of preprocessed model inputs (n, 3, S, S), on any device (e.g. images
        decoded and resized on the GPU by :func:`~.images.preprocess_tensors`)."""
        with autocast(self.device):
            g, r = self.image_features(pixels.to(self.device, non_blocking=True))
        first = None if self.first_stage is None else self.first_stage.encode_regions(r.float()).cpu().numpy()
        return ImageEmbeddings(F.normalize(g.float(), dim=-1).cpu().numpy(), r.float().cpu().numpy(), first)

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str], batch_size: int = 256) -> TextEmbeddings:
        """Global vectors and per-token vectors (padding removed) for texts."""
        texts = _check_texts(texts)
        parts = [self._embed_texts(texts[i:i + batch_size]) for i in range(0, len(texts), batch_size)]
        firsts = [p.first_vectors for p in parts if p.first_vectors is not None]
        return TextEmbeddings(np.concatenate([p.global_vectors for p in parts]),
                              [t for p in parts for t in p.token_vectors], np.concatenate(firsts) if firsts else None)

    @torch.inference_mode()
    def encode_queries(self, texts: Sequence[str]) -> list[TextQuery]:
        """Each text as a :class:`TextQuery`: one tokenization and one model pass for all of
        them, and each query's part of the fusion head (a search then calls the model once more,
        to rerank its candidates)."""
        texts = _check_texts(texts)
        tok = self.backbone.tokenizer.encode(texts)
        emb, dev = self._embed_texts(texts, (tok.ids, tok.mask)), self.device
        encoder, out = self.fingerprint["weights_sha256"], []
        for i, text in enumerate(texts):
            head = None
            if self.head_trained:
                words = torch.from_numpy(emb.token_vectors[i]).to(dev)[None]
                with autocast(dev):
                    head = self.fusion.text_side(words, torch.ones(words.shape[:2], dtype=torch.bool, device=dev),
                                                 torch.from_numpy(emb.global_vectors[i:i + 1]).to(dev))
            out.append(TextQuery(text, tok.spans[i], tok.unknown[i], emb.global_vectors[i], emb.token_vectors[i],
                                 None if emb.first_vectors is None else emb.first_vectors[i], head, encoder))
        return out

    def _embed_texts(self, texts: list[str], tokenized: tuple[torch.Tensor, torch.Tensor] | None = None
                     ) -> TextEmbeddings:
        """One model pass over ``texts`` (tokenized here unless ``tokenized`` is given)."""
        with autocast(self.device):
            g, w, m = self.text_features(texts, tokenized)
        first = None if self.first_stage is None else self.first_stage.encode_tokens(w.float(), m).cpu().numpy()
        w, m = w.float().cpu(), m.cpu()
        return TextEmbeddings(F.normalize(g.float(), dim=-1).cpu().numpy(),
                              [w[j, : int(m[j].sum())].numpy() for j in range(len(w))], first)

    def resolve_mode(self, mode: str | None) -> str:
        """The mode this model scores in when asked for ``mode`` (see :func:`.modes.resolve_mode`):
        an explicit one is honoured or refused, None is ``vitr`` (``global`` without a trained head)."""
        return resolve_mode(mode, self.head_trained, self.cfg.name)

    @torch.inference_mode()
    def score_embeddings(self, images: ImageEmbeddings, texts: TextEmbeddings,
                         mode: str | None = None, chunk: int = 4096) -> np.ndarray:
        """Scores [n_images, n_texts] from stored embeddings (what a store holds), in ``mode``
        (one of :data:`~.modes.MODES`; None: the model's best)."""
        mode = self.resolve_mode(mode)
        dev = self.device
        img_g = torch.from_numpy(images.global_vectors).to(dev)
        regions = torch.from_numpy(images.region_vectors).to(dev)
        txt_g = torch.from_numpy(texts.global_vectors).to(dev)
        words, mask = pad_tokens(texts.token_vectors, dev)
        if mode != "vitr":
            return self.pair_scores(mode, img_g, regions, txt_g, words, mask).cpu().numpy()
        out = torch.empty(len(img_g), len(txt_g))
        rows = max(1, chunk // max(1, len(txt_g)))
        for i in range(0, len(img_g), rows):
            with autocast(dev):
                s = self.pair_scores(mode, img_g[i:i + rows], regions[i:i + rows], txt_g,
                                     words, mask)
            out[i:i + rows] = s.float().cpu()
        return out.numpy()

    def score(self, images: Sequence[ImageInput], texts: Sequence[str], mode: str | None = None
              ) -> np.ndarray:
        """Relevance scores ``[len(images), len(texts)]``; higher is more relevant.

        Args:
            mode: ``"vitr"`` (fusion), ``"late"`` (MaxSim of the embeddings) or ``"global"`` (the
                CLIP baseline); None: ``vitr``, or ``global`` for a model without a trained head.

        Raises:
            InputError: an unknown mode, or empty texts.
            HeadNotTrainedError: ``mode="vitr"`` on a model without a trained head.
        """
        texts = _check_texts(texts)
        return self.score_embeddings(self.encode_images(images), self.encode_texts(texts), mode)

    @torch.inference_mode()
    def rerank(self, query: TextQuery, global_vectors: np.ndarray,
               region_vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fusion scores (k,) of one query against k stored candidates, and each query token's
        attention over the candidates' regions (k, m, R) for grounding."""
        if query.head is None:
            raise InputError(f"the query was encoded by a model without a trained head; {self.cfg.name} "
                             "reranks only queries it encoded with its head trained")
        dev, k = self.device, len(global_vectors)
        with autocast(dev):
            scores, attn = self.fusion.pairs(
                query.head, torch.from_numpy(np.asarray(region_vectors)).to(dev).float(), self.region_centres,
                torch.from_numpy(np.asarray(global_vectors, np.float32)).to(dev),
                torch.zeros(k, dtype=torch.long, device=dev))
        return scores.float().cpu().numpy(), attn.float().cpu().numpy()

    @torch.inference_mode()
    def rerank_texts(self, image_global: np.ndarray, image_regions: np.ndarray, texts: TextEmbeddings
                     ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Fusion scores (k,) of one image (its global (D,) and regions (R, d) vectors) against k
        stored texts, and each text's token attention over the image's regions ((m_i, R) each,
        its own tokens only) for grounding."""
        dev, k = self.device, len(texts.token_vectors)
        words, mask = pad_tokens(texts.token_vectors, dev)
        regions = torch.from_numpy(np.asarray(image_regions, np.float32)).to(dev)
        img_g = torch.from_numpy(np.asarray(image_global, np.float32)).to(dev)
        with autocast(dev):
            scores, attn = self.fused(words, mask, regions.expand(k, *regions.shape), img_g.expand(k, *img_g.shape),
                                      torch.from_numpy(texts.global_vectors).to(dev))
        attn = attn.float().cpu().numpy()
        return scores.float().cpu().numpy(), [attn[i, : len(t)] for i, t in enumerate(texts.token_vectors)]

    def probability(self, score: float, mode: str) -> float | None:
        """The calibrated probability that a text holds for an image given their ``mode`` score
        (Platt scaling stored in the config's ``calibration``); None if this mode has none."""
        fit = (self.cfg.calibration or {}).get(mode)
        if fit is None:
            return None
        a, b = fit
        return float(1.0 / (1.0 + math.exp(-min(max(a * score + b, -60.0), 60.0))))

    def score_for_probability(self, probability: float = 0.5, mode: str = "vitr") -> float | None:
        """The ``mode`` score at which :meth:`probability` is ``probability`` (a ``score_threshold``
        that keeps the hits the model thinks more likely true than not); None without a calibration."""
        fit = (self.cfg.calibration or {}).get(mode)
        if fit is None:
            return None
        if not 0.0 < probability < 1.0:
            raise InputError(f"probability must be strictly between 0 and 1, got {probability!r}")
        a, b = fit
        return float((math.log(probability / (1.0 - probability)) - b) / a)

    def core_state_dict(self) -> dict[str, torch.Tensor]:
        """The state dict without the first stage: ``model.safetensors`` of a model directory."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith(FIRST_STAGE_PREFIX)}

    def save(self, directory: str | Path) -> Path:
        """Write ``config.json`` + ``model.safetensors`` to ``directory`` (see ``load_model``)."""
        from .model_files import save_model

        return save_model(self, directory)

    @property
    def fingerprint(self) -> dict:
        """What a store checks: name, dimensions and a hash of the weights (the first stage's
        left out: it changes no stored ``global`` or ``regions`` vector, and a collection records
        its own hash, see :meth:`~.first_stage.FirstStage.weights_sha256`)."""
        if self._fingerprint is None:
            from .model_files import state_sha256

            self._fingerprint = {
                "name": self.cfg.name, "global_dim": self.cfg.backbone.embed_dim,
                "region_dim": self.cfg.local.dim, "n_regions": len(self.region_boxes),
                "head_trained": self.head_trained, "weights_sha256": state_sha256(self.core_state_dict())}
        return dict(self._fingerprint)


def pad_tokens(token_vectors: list[np.ndarray], device: torch.device
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack (m_i, d) arrays into (T, L, d) zero-padded and a (T, L) bool mask."""
    n, d = len(token_vectors), token_vectors[0].shape[1]
    length = max(len(t) for t in token_vectors)
    words = torch.zeros(n, length, d)
    mask = torch.zeros(n, length, dtype=torch.bool)
    for i, t in enumerate(token_vectors):
        words[i, : len(t)] = torch.from_numpy(np.asarray(t, np.float32))
        mask[i, : len(t)] = True
    return words.to(device), mask.to(device)
