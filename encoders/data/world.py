"""What the relation worlds share: relations, captions and their parser, truth, hard negatives,
splits with held-out compositions, placement, the pair test and the seed streams.

A world (Relation Scenes, Object Scenes) is its vocabulary, its noun-phrase grammar, its scene
sampler and its renderer: a subclass of :class:`World`. Everything else is written once here
(shared/specs/relation-scenes.md sections 2-7, object-scenes.md sections 5-8).

Objects of every world have ``key`` (a tuple naming what the object is: ``(colour, shape)`` or
``(category,)``), ``size_name``, ``size``, ``x``, ``y`` and ``phrase(with_size)``; scenes have
``objects``, ``seed`` and ``split``.
"""
from __future__ import annotations

import re
import zlib
from dataclasses import replace
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np
from PIL import Image

SPLITS = ("train", "test-iid", "test-comp")
RELATIONS = ("left of", "right of", "above", "below")
OPPOSITE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
# Surface forms of each relation: templates 2-4 ("lrel") and template 5 ("trel").
LONG_REL = {"left of": "to the left of", "right of": "to the right of", "above": "above",
            "below": "below"}
TAIL_REL = {"left of": "to its left", "right of": "to its right", "above": "above it",
            "below": "below it"}
# The spec's templates 1-5 (0-based here); {A} is the subject, {B} the object. Template 5
# names the object first: "a {B} with a {A} to its left" says "{A} left of {B}".
TEMPLATES = ("{A} {rel} {B}", "a {A} {lrel} a {B}", "the {A} is {lrel} the {B}",
             "there is a {A} {lrel} a {B}", "a {B} with a {A} {trel}")
SIZE_WORDS = ("small", "large")
MARGIN, GAP, MIN_DIST = 0.03, 0.02, 0.15
# Size words in a sampled caption (the one caption sampler: training and datasets alike).
SIZE_WORDS_P = 0.3
# Seed of the k-th fallback scene of a stream (see World.first_scene): far above any real seed.
FALLBACK_STRIDE = 1 << 40
_REL_FORMS = {"rel": "|".join(RELATIONS), "lrel": "|".join(LONG_REL.values()),
              "trel": "|".join(TAIL_REL.values())}
_FORM_TO_REL = {**{r: r for r in RELATIONS}, **{v: k for k, v in LONG_REL.items()},
                **{v: k for k, v in TAIL_REL.items()}}

NounPhrase = tuple  # (size or None, *key)


class Spans(NamedTuple):
    """Word spans [start, end) of a caption's subject (A) and object (B) noun phrases and of
    its relation words."""

    a: tuple[int, int]
    b: tuple[int, int]
    rel: tuple[int, int]


def rng_for(seed: int, *salt: str) -> np.random.Generator:
    """A generator for ``seed`` (any int up to 64 bits) and string salts."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(seed) >> 32 & 0xFFFFFFFF,
                                  *(zlib.crc32(s.encode()) for s in salt)])


def split_rng(seed: int, split: str, what: str) -> np.random.Generator:
    """A generator for what is drawn about a split's seed (a gallery's captions, an example's)."""
    return np.random.default_rng([int(seed), zlib.crc32(split.encode()), zlib.crc32(what.encode())])


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")


def relation(a: Any, b: Any) -> str | None:
    """The relation that holds for the ordered pair (a, b), or None (relation-scenes.md 3)."""
    dx, dy = b.x - a.x, b.y - a.y
    if dx >= MIN_DIST and abs(dy) <= 0.5 * dx:
        return "left of"
    if -dx >= MIN_DIST and abs(dy) <= 0.5 * abs(dx):
        return "right of"
    if dy >= MIN_DIST and abs(dx) <= 0.5 * dy:
        return "above"
    if -dy >= MIN_DIST and abs(dx) <= 0.5 * abs(dy):
        return "below"
    return None


def with_articles(text: str) -> str:
    """``a`` becomes ``an`` before a word starting with a vowel (object-scenes.md 5)."""
    return re.sub(r"\ba (?=[aeiou])", "an ", text)


def _articles_ok(text: str) -> bool:
    """Whether every ``a``/``an`` is the one the next word asks for."""
    words = text.split()
    return all((w == "an") == (nxt[0] in "aeiou") for w, nxt in zip(words, words[1:])
               if w in ("a", "an"))


def fits(x: float, y: float, size: float, placed: Sequence[Any]) -> bool:
    """Whether a bounding square at (x, y) keeps the gap to every placed one."""
    for o in placed:
        need = (size + o.size) / 2 + GAP
        if abs(x - o.x) < need and abs(y - o.y) < need:
            return False
    return True


def placement_ok(objects: Sequence[Any]) -> bool:
    """Bounding squares inside [0.03, 0.97], pairwise gap >= 0.02 (relation-scenes.md 2)."""
    for i, o in enumerate(objects):
        half = o.size / 2
        if min(o.x - half, o.y - half) < MARGIN or max(o.x + half, o.y + half) > 1 - MARGIN:
            return False
        if not fits(o.x, o.y, o.size, objects[:i]):
            return False
    return True


def place(rng: np.random.Generator, sizes: Sequence[float],
          build: Callable[[int, float, float], Any]) -> list[Any] | None:
    """Rejection placement of objects of ``sizes``: centres uniform where the bounding square
    fits the canvas and keeps the gap; ``build(i, x, y)`` makes object i (and may draw more
    from ``rng``). None when an object found no place in 200 tries (the caller redraws)."""
    placed: list[Any] = []
    for i, size in enumerate(sizes):
        lo, hi = MARGIN + size / 2, 1 - MARGIN - size / 2
        for _ in range(200):
            x, y = rng.uniform(lo, hi, size=2)
            if fits(x, y, size, placed):
                break
        else:
            return None
        placed.append(build(i, float(x), float(y)))
    return placed


def add_noise(image: Image.Image, sigma: float, rng: np.random.Generator) -> Image.Image:
    """Gaussian noise, one draw per pixel added to R, G and B alike, clipped (both specs)."""
    if sigma <= 0:
        return image
    w, h = image.size
    noise = rng.standard_normal((h, w, 1), dtype=np.float32)
    noise *= np.float32(sigma)
    # the image is integer, so rounding the noise alone rounds the sum
    arr = np.asarray(image, dtype=np.int16) + np.rint(noise).astype(np.int16)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


# The functions each world module exposes, bound to its world (see World.functions).
FUNCTIONS = ("sample_scene", "render", "truth", "caption", "parse_caption", "related_pairs",
             "hard_negatives", "swap_centres", "pair_example")


class World:
    """The machinery of a relation world; subclasses name the vocabulary and draw the scenes.

    Subclasses set ``name``, ``templates`` (how many of :data:`TEMPLATES` the world speaks),
    ``negative_kinds`` (the training negatives) and ``swap_kinds`` (the evaluation's swap-test
    negatives), and implement the abstract methods below.
    """

    name = "world"
    summary = ""  # what a model trained on this world knows (and does not)
    n_templates = 4
    negative_kinds: tuple[str, ...] = ("swap", "opposite")
    swap_kinds: tuple[str, ...] = ("swap", "opposite")
    art_sets: tuple[str, ...] = ()  # the drawing styles a scene may be drawn in, if any
    min_render_size = 64

    # --- checks ----------------------------------------------------------------------------
    def _check_sample(self, split: str, n_objects: int | None) -> None:
        check_split(split)
        if n_objects is not None and n_objects not in (2, 3, 4):
            raise ValueError(f"n_objects must be 2, 3 or 4 (got {n_objects!r})")

    def _check_size(self, size: int) -> None:
        if size < self.min_render_size:
            raise ValueError(f"size must be >= {self.min_render_size} (got {size})")

    # --- what a world defines --------------------------------------------------------------
    def sample_scene(self, seed: int, split: str = "train", n_objects: int | None = None):
        raise NotImplementedError

    def render(self, scene, size: int = 128) -> Image.Image:
        raise NotImplementedError

    def noun_pattern(self, prefix: str) -> str:
        """Regex of a noun phrase without its size word; named groups start with ``prefix``."""
        raise NotImplementedError

    def noun_key(self, match: re.Match, prefix: str) -> tuple:
        """The object key a noun phrase matched by :meth:`noun_pattern` names."""
        raise NotImplementedError

    def phrase_of(self, key: tuple, size_name: str | None = None) -> str:
        raise NotImplementedError

    def captionable(self, scene, a, b) -> bool:
        """Whether the pair (a, b) may be captioned in ``scene``'s split (test-comp: only pairs
        of held-out compositions)."""
        raise NotImplementedError

    def absent_keys(self, scene, keep: tuple | None = None) -> list[tuple]:
        """Keys of objects absent from ``scene`` that a distractor may name (in ``train``,
        never a held-out composition, with ``keep`` the other noun of the caption)."""
        raise NotImplementedError

    def extra_negatives(self, scene, a, rel: str, b, with_size: bool, template: int,
                        rng: np.random.Generator) -> dict[str, str]:
        """World-specific negative candidates (checked against ``truth`` by the caller)."""
        return {}

    @property
    def words(self) -> tuple[str, ...]:
        """The world's vocabulary, every word a caption of its grammar may use."""
        raise NotImplementedError

    @property
    def attributes(self) -> dict[str, tuple[str, ...]]:
        """What an object is, attribute by attribute, with each attribute's values (the head
        stage's attribute probe reads them off the regions)."""
        raise NotImplementedError

    def attribute_values(self, obj) -> tuple[str, ...]:
        """``obj``'s value of each of :attr:`attributes`, in order."""
        raise NotImplementedError

    def functions(self) -> tuple:
        """This world's :data:`FUNCTIONS`, bound: what its module exports as plain functions."""
        return tuple(getattr(self, name) for name in FUNCTIONS)

    # --- captions -------------------------------------------------------------------------
    def _check_template(self, template: int) -> None:
        if not 0 <= template < self.n_templates:
            raise ValueError(f"template must be 0..{self.n_templates - 1} (got {template})")

    def caption(self, a, rel: str, b, template: int = 0, with_size: bool = False) -> str:
        """Caption ``a rel b`` (objects or noun phrases) in ``template`` (0-based)."""
        return self.caption_spans(a, rel, b, template, with_size)[0]

    def caption_spans(self, a, rel: str, b, template: int = 0, with_size: bool = False
                      ) -> tuple[str, Spans]:
        """The caption and the word spans of its two noun phrases (for grounding)."""
        if rel not in RELATIONS:
            raise ValueError(f"unknown relation {rel!r}; expected one of {RELATIONS}")
        self._check_template(template)
        pa = a if isinstance(a, str) else a.phrase(with_size)
        pb = b if isinstance(b, str) else b.phrase(with_size)
        words: list[str] = []
        spans = {}
        for part in TEMPLATES[template].split():
            if part in ("{A}", "{B}"):
                new = (pa if part == "{A}" else pb).split()
            else:
                new = part.format(rel=rel, lrel=LONG_REL[rel], trel=TAIL_REL[rel]).split()
            if part.startswith("{"):  # {A}, {B}, or one of the relation's forms
                key = part[1:-1] if part in ("{A}", "{B}") else "rel"
                spans[key] = (len(words), len(words) + len(new))
            words += new
        return with_articles(" ".join(words)), Spans(spans["A"], spans["B"], spans["rel"])

    def _caption_patterns(self) -> list[re.Pattern]:
        if not hasattr(self, "_patterns"):
            np_ = "(?:(?P<{p}size>" + "|".join(SIZE_WORDS) + ") )?"
            phrases = {p: np_.format(p=p) + self.noun_pattern(p) for p in "ab"}
            out = []
            for template in TEMPLATES[:self.n_templates]:
                parts = []
                for part in template.split():
                    if part in ("{A}", "{B}"):
                        parts.append(phrases[part[1].lower()])
                    elif part.startswith("{"):
                        parts.append(f"(?P<rel>{_REL_FORMS[part[1:-1]]})")
                    else:  # literal words; "a" is "a" or "an" (by the next word)
                        parts.append("an?" if part == "a" else part)
                out.append(re.compile("^" + " ".join(parts) + "$"))
            self._patterns = out
        return self._patterns

    def parse_caption(self, text: str) -> tuple[NounPhrase, str, NounPhrase]:
        """``(subject, relation, object)``, each noun phrase ``(size or None, *key)``.

        Case and full stops are ignored; a caption outside the world's templates, or naming
        a word outside its vocabulary, raises ValueError.
        """
        norm = " ".join(str(text).lower().replace(".", " ").split())
        for pattern in self._caption_patterns():
            m = pattern.match(norm)
            if m is not None and _articles_ok(norm):
                return ((m["asize"], *self.noun_key(m, "a")), _FORM_TO_REL[m["rel"]],
                        (m["bsize"], *self.noun_key(m, "b")))
        raise ValueError(f"cannot parse caption {text!r} in {self.name}: expected one of the "
                         f"templates {TEMPLATES[:self.n_templates]} with its nouns")

    # --- truth ----------------------------------------------------------------------------
    @staticmethod
    def matches(scene, np_: NounPhrase) -> list[Any]:
        """The objects of ``scene`` that the noun phrase ``(size or None, *key)`` names."""
        size, key = np_[0], tuple(np_[1:])
        return [o for o in scene.objects if o.key == key and size in (None, o.size_name)]

    def truth(self, scene, caption_text: str) -> bool | None:
        """True / False / None (undefined) for ``caption_text`` on ``scene``.

        True iff each noun phrase matches exactly one object and the relation holds for that
        ordered pair; False iff a phrase matches no object, or a different relation holds;
        otherwise None (no relation, ambiguous phrase, or both phrases the same object).
        """
        np_a, rel, np_b = self.parse_caption(caption_text)
        ma, mb = self.matches(scene, np_a), self.matches(scene, np_b)
        if not ma or not mb:
            return False
        if len(ma) > 1 or len(mb) > 1 or ma[0] is mb[0]:
            return None
        held = relation(ma[0], mb[0])
        return None if held is None else held == rel

    def related_pairs(self, scene) -> list[tuple[Any, str, Any]]:
        """Ordered pairs with a relation that ``scene``'s split may caption."""
        out = []
        for a in scene.objects:
            for b in scene.objects:
                if a is b or (scene.split == "test-comp" and not self.captionable(scene, a, b)):
                    continue
                rel = relation(a, b)
                if rel is not None:
                    out.append((a, rel, b))
        return out

    # --- negatives ------------------------------------------------------------------------
    def hard_negatives(self, scene, a, rel: str, b, with_size: bool = False,
                       template: int = 0) -> dict[str, str]:
        """The negatives of the true caption ``a rel b`` that are false for ``scene``, in the
        same template and size words: ``swap`` (b rel a), ``opposite`` (a opp(rel) b), and
        the world's own kinds (:meth:`extra_negatives`)."""
        pa, pb = a.phrase(with_size), b.phrase(with_size)
        cands = {"swap": self.caption(pb, rel, pa, template),
                 "opposite": self.caption(pa, OPPOSITE[rel], pb, template)}
        rng = rng_for(scene.seed, scene.split, pa, pb)
        cands.update(self.extra_negatives(scene, a, rel, b, with_size, template, rng))
        return {k: v for k, v in cands.items() if self.truth(scene, v) is False}

    def distractor(self, scene, a, rel: str, b, with_size: bool, template: int,
                   rng: np.random.Generator, which: int = 1) -> str | None:
        """The caption with noun ``which`` (0: a, 1: b) replaced by an absent object's."""
        keep, gone = (b, a) if which == 0 else (a, b)
        absent = self.absent_keys(scene, keep.key)
        if not absent:
            return None
        key = absent[int(rng.integers(len(absent)))]
        new = self.phrase_of(key, gone.size_name if with_size else None)
        phrases = [new, keep.phrase(with_size)] if which == 0 else [keep.phrase(with_size), new]
        return self.caption(phrases[0], rel, phrases[1], template)

    # --- scenes ---------------------------------------------------------------------------
    def swap_centres(self, scene, a, b):
        """The same scene with the centres of ``a`` and ``b`` exchanged, or None if that
        breaks the placement rules (relation-scenes.md 7.3)."""
        objs = tuple(replace(o, x=b.x, y=b.y) if o is a else replace(o, x=a.x, y=a.y)
                     if o is b else o for o in scene.objects)
        return replace(scene, objects=objs) if placement_ok(objs) else None

    def first_scene(self, seed: int, split: str, accept: Callable[[Any], bool] | None = None,
                    **scene_kw):
        """The seed stream: ``sample_scene(seed + k * 2**40, split, **scene_kw)`` for k = 0, 1,
        ... until a scene has a related pair (and passes ``accept``). The one fallback scheme."""
        for k in range(1000):
            scene = self.sample_scene(seed + k * FALLBACK_STRIDE, split, **scene_kw)
            if self.related_pairs(scene) and (accept is None or accept(scene)):
                return scene
        raise RuntimeError(f"no suitable {split} scene in the stream of seed {seed}")

    def sample_caption(self, scene, rng: np.random.Generator
                       ) -> tuple[tuple[Any, str, Any], int, bool]:
        """The one caption sampler: a random related pair, template and size words."""
        pairs = self.related_pairs(scene)
        pair = pairs[int(rng.integers(len(pairs)))]
        template = int(rng.integers(self.n_templates))
        return pair, template, bool(rng.random() < SIZE_WORDS_P)

    def pair_example(self, seed: int, split: str, **scene_kw):
        """A pair-test example ``(image 1, image 2, c = 'A rel B', c' = 'B rel A')``: image 2
        is image 1 with the centres of A and B exchanged (relation-scenes.md 7.3), from the
        first scene of ``seed``'s stream where that exchange keeps the placement rules."""
        found = {}

        def swappable(scene) -> bool:
            pairs = self.related_pairs(scene)
            a, rel, b = pairs[int(rng_for(scene.seed, split, "pair").integers(len(pairs)))]
            found["example"] = (a, rel, b, self.swap_centres(scene, a, b))
            return found["example"][3] is not None

        scene = self.first_scene(seed, split, swappable, **scene_kw)
        a, rel, b, other = found["example"]
        return scene, other, self.caption(a, rel, b), self.caption(b, rel, a)
