"""Tokenizers: word-level ones for the worlds' vocabularies, or open_clip's BPE."""
from __future__ import annotations

import re

import torch

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
        return list(dict.fromkeys(w for w in re.findall(r"[a-z]+", text.lower())
                                  if w not in self.vocab))

    def __call__(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        ids = torch.zeros(len(texts), self.context_length, dtype=torch.long)
        for row, text in enumerate(texts):
            words = re.findall(r"[a-z]+", text.lower())[: self.context_length - 1]
            toks = [self.vocab.get(w, UNK) for w in words] + [self.eot]
            ids[row, : len(toks)] = torch.tensor(toks)
        return ids, ids != PAD

    def word_spans(self, text: str) -> list[tuple[str, list[int]]]:
        """``[(word, [token positions])]``, positions counted over the valid tokens (one a word;
        the end-of-text token left out)."""
        words = re.findall(r"[a-z]+", text.lower())[: self.context_length - 1]
        return [(w, [i]) for i, w in enumerate(words)]


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

    def word_spans(self, text: str) -> list[tuple[str, list[int]]]:
        """``[(word, [token positions])]``, positions counted from the first token after
        start-of-text; BPE pieces are joined into words, end-of-text is left out."""
        ids = [int(i) for i in self._tok([text])[0]]
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
                     context_length: int):
    if kind in WORD_TOKENIZERS:
        return WordTokenizer(WORD_TOKENIZERS[kind][0], vocab_size, context_length)
    if kind is not None:
        raise ValueError(f"unknown tokenizer {kind!r}; expected one of {tuple(WORD_TOKENIZERS)} "
                         "or None (the open_clip model's own)")
    if model_name is None:
        raise ValueError("a custom backbone needs a word tokenizer "
                         f"{tuple(WORD_TOKENIZERS)} or an open_clip model")
    return OpenClipTokenizer(model_name)
