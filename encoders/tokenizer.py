"""Tokenizers: word-level ones for the worlds' vocabularies, or open_clip's BPE."""
from __future__ import annotations

import math
import re
from typing import Iterable, NamedTuple, Sequence

import torch

from . import openclip_adapter as oc
from .data.relation_scenes import COLORS, SHAPES, SIZES

# A word's id is its position + 2: these lists may only grow at their end (shipped models).
SCENE_WORDS = (*COLORS, *SHAPES, *SIZES, "left", "right", "of", "above", "below", "to",
               "the", "a", "an", "is", "there", "and", "on", "in")
OBJECT_WORDS = ("dog", "cat", "horse", "cow", "pig", "sheep", "goat", "rabbit", "mouse",
                "chicken", "duck", "owl", "eagle", "penguin", "fish", "whale", "dolphin",
                "octopus", "crab", "frog", "turtle", "snake", "crocodile", "elephant", "lion",
                "tiger", "bear", "koala", "monkey", "gorilla", "camel", "deer", "fox", "wolf",
                "rhino", "squirrel", "snail", "butterfly", "bee", "ant", "ladybug", "spider",
                "car", "bus", "truck", "tractor", "ambulance", "bicycle", "motorcycle", "scooter",
                "train", "airplane", "helicopter", "rocket", "sailboat", "ship", "canoe", "apple",
                "banana", "orange", "pear", "strawberry", "cherry", "lemon", "watermelon",
                "pineapple", "peach", "kiwi", "avocado", "tomato", "carrot", "potato", "eggplant",
                "mushroom", "pepper", "pizza", "burger", "hot", "croissant", "cake", "egg",
                "cheese", "donut", "cookie", "ice", "cream", "cup", "bottle", "wine", "glass",
                "knife", "spoon", "bed", "light", "bulb", "clock", "book", "phone", "laptop",
                "television", "camera", "key", "umbrella", "soccer", "ball", "basketball",
                "guitar", "hat", "shoe", "handbag", "backpack", "pencil", "door", "balloon",
                "gift", "candle", "tree", "cactus", "rose", "sunflower", "house", "castle",
                "small", "large", "left", "right", "of", "above", "below", "to", "the", "a", "an",
                "is", "there", "with", "its", "it")
# each word tokenizer's list, and the world whose vocabulary it holds (a test checks they agree)
WORD_TOKENIZERS = {"scenes-words": (SCENE_WORDS, "relation-scenes"),
                   "objects-words": (OBJECT_WORDS, "object-scenes")}
PAD, UNK = 0, 1


class Tokenized(NamedTuple):
    """One tokenization of texts: ``ids`` and ``mask`` (T, L) as the text tower reads them, and
    per text its words with their token positions (see ``word_spans``) and its unknown words."""

    ids: torch.Tensor
    mask: torch.Tensor
    spans: list[list[tuple[str, list[int]]]]
    unknown: list[list[str]]


class WordTokenizer:
    """Lower-cased words to ids; padding 0, unknown 1, end-of-text the highest id (so open_clip's
    argmax pooling finds it). Returns ``(ids, mask)`` like :func:`tokenize` below."""

    def __init__(self, words: tuple[str, ...], vocab_size: int, context_length: int):
        if vocab_size < len(words) + 3:
            raise ValueError(f"vocab_size must be >= {len(words) + 3} for {len(words)} words")
        self.vocab = {w: i + 2 for i, w in enumerate(words)}
        self.eot = vocab_size - 1
        self.context_length = context_length

    def unknown_words(self, text: str) -> list[str]:
        """The words of ``text`` outside the vocabulary, in order, each once."""
        return self.encode([text]).unknown[0]

    def __call__(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encode(texts)[:2]

    def word_spans(self, text: str) -> list[tuple[str, list[int]]]:
        """``[(word, [token positions])]``, positions counted over the valid tokens (one a word;
        the end-of-text token left out)."""
        return self.encode([text]).spans[0]

    def encode(self, texts: list[str]) -> Tokenized:
        """Ids, mask, word spans and unknown words of ``texts``, from one pass over each."""
        ids = torch.zeros(len(texts), self.context_length, dtype=torch.long)
        spans, unknown = [], []
        for row, text in enumerate(texts):
            every = re.findall(r"[a-z]+", text.lower())
            words = every[: self.context_length - 1]
            toks = [self.vocab.get(w, UNK) for w in words] + [self.eot]
            ids[row, : len(toks)] = torch.tensor(toks)
            spans.append([(w, [i]) for i, w in enumerate(words)])
            unknown.append(list(dict.fromkeys(w for w in every if w not in self.vocab)))
        return Tokenized(ids, ids != PAD, spans, unknown)


class OpenClipTokenizer:
    """open_clip's tokenizer; the mask keeps the tokens after start-of-text up to end-of-text."""

    def __init__(self, model_name: str):
        import open_clip

        self._tok = open_clip.get_tokenizer(model_name)

    def __call__(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        ids = self._tok(texts)
        pos = torch.arange(ids.shape[1])
        eot = ids.argmax(dim=1, keepdim=True)
        return ids, (pos >= 1) & (pos <= eot)

    def encode(self, texts: list[str]) -> Tokenized:
        """Ids, mask and the word spans of ``texts`` (read off the same ids); no unknown words."""
        ids, mask = self(texts)
        return Tokenized(ids, mask, [self._spans(row) for row in ids.tolist()], [[] for _ in texts])

    def word_spans(self, text: str) -> list[tuple[str, list[int]]]:
        """``[(word, [token positions])]``, positions counted from the first token after
        start-of-text; BPE pieces are joined into words, end-of-text is left out."""
        return self.encode([text]).spans[0]

    def _spans(self, ids: list[int]) -> list[tuple[str, list[int]]]:
        eot = getattr(self._tok, "eot_token_id", None)
        decoder = getattr(self._tok, "decoder", None)
        spans: list[tuple[str, list[int]]] = []
        word, members = "", []
        for pos, tid in enumerate(ids[1:]):
            if tid == eot or tid == 0:
                break
            piece = decoder.get(tid, "?") if decoder else f"#{pos}</w>"
            word, members = word + piece.replace("</w>", ""), members + [pos]
            if piece.endswith("</w>"):
                spans.append((self._decode(word), members))
                word, members = "", []
        if members:
            spans.append((self._decode(word), members))
        return spans

    def unknown_words(self, text: str) -> list[str]:
        """None: byte-level BPE spells every word (whether the model learned it is another
        matter)."""
        return []

    def _decode(self, word: str) -> str:
        table = getattr(self._tok, "byte_decoder", None)
        if not table:
            return word
        return bytearray(table.get(c, ord("?")) for c in word).decode("utf-8", errors="replace")


def create_tokenizer(kind: str | None, model_name: str | None, vocab_size: int,
                     context_length: int, extra_words: Sequence[str] = ()):
    """The tokenizer ``kind`` names: a word list (``extra_words`` after it) or open_clip's BPE."""
    if kind in WORD_TOKENIZERS:
        return WordTokenizer((*WORD_TOKENIZERS[kind][0], *extra_words), vocab_size, context_length)
    if extra_words:
        raise ValueError(f"extra_words {list(extra_words)[:5]} need a word tokenizer "
                         f"{tuple(WORD_TOKENIZERS)}; open_clip's BPE spells every word")
    if kind is not None:
        raise ValueError(f"unknown tokenizer {kind!r}; expected one of {tuple(WORD_TOKENIZERS)} "
                         "or None (the open_clip model's own)")
    if model_name is None:
        raise ValueError("a custom backbone needs a word tokenizer "
                         f"{tuple(WORD_TOKENIZERS)} or an open_clip model")
    return OpenClipTokenizer(model_name)


def new_words(tokenizer, texts: Iterable[str]) -> list[str]:
    """The words of ``texts`` the tokenizer lacks, each once, in order of first use (none for
    BPE)."""
    found: dict[str, None] = {}
    for text in texts:
        found.update(dict.fromkeys(tokenizer.unknown_words(text)))
    return list(found)


def grow_vocabulary(backbone, words: Sequence[str]) -> list[int]:
    """Teach a word tokenizer ``words`` (not yet in it): they follow its list in
    ``cfg.extra_words``; the text tower's embedding grows by rows where it has no spare ones
    (the end-of-text row moves to the new last id). Each new row starts as a copy of the
    unknown token's row, so before training the model reads a new word exactly as it read it
    unknown. Returns the new words' ids (the rows to train).

    Raises:
        ValueError: a BPE tokenizer (nothing to grow), or a text tower without open_clip's
            token embedding (it cannot take new rows).
    """
    tok, clip, cfg = backbone.tokenizer, backbone.clip, backbone.cfg
    if not isinstance(tok, WordTokenizer):
        raise ValueError("open_clip's BPE spells every word: there is no vocabulary to grow")
    embedding = oc.token_embedding(clip)
    if embedding is None:
        raise ValueError(f"this text tower ({type(getattr(clip, 'text', clip)).__name__}) has no "
                         "token embedding to grow")
    first = len(tok.vocab) + 2
    ids = list(range(first, first + len(words)))
    old = embedding.weight.data
    size = old.shape[0]
    if ids and ids[-1] + 2 > size:   # ids, then end-of-text: grow in steps of 16 rows
        size = 16 * math.ceil((ids[-1] + 2) / 16)
        grown = torch.nn.Embedding(size, old.shape[1], device=old.device, dtype=old.dtype)
        grown.weight.data[: old.shape[0] - 1] = old[:-1]
        grown.weight.data[-1] = old[-1]               # end-of-text: the highest id
        oc.set_token_embedding(clip, grown)
    weight = oc.token_embedding(clip).weight.data
    weight[ids] = weight[UNK].clone()
    cfg.extra_words = [*cfg.extra_words, *words]
    cfg.text_cfg = {**cfg.text_cfg, "vocab_size": size}
    backbone.tokenizer = create_tokenizer(cfg.tokenizer, cfg.open_clip_model, size,
                                          tok.context_length, cfg.extra_words)
    return ids
