"""Object Scenes categories and art sets: the facts of shared/specs/object-scenes.md sections 1-2.

This module is the single source of the 118 category nouns (in spec order: a category's index
is its position), their Unicode codepoints, and the four pinned npm emoji packages the project
may use. The world module and ``scripts/build_art_atlas.py`` both import it, so the atlas and
the renderer can never disagree on order or versions.
"""
from __future__ import annotations

from typing import NamedTuple

__all__ = ["CATEGORY_CODEPOINTS", "CATEGORIES", "ArtPackage", "ART_PACKAGES"]

# (noun, codepoint as upper-case hex without "U+"), spec section 2 order.
CATEGORY_CODEPOINTS: tuple[tuple[str, str], ...] = (
    ("dog", "1F415"), ("cat", "1F408"), ("horse", "1F40E"), ("cow", "1F404"), ("pig", "1F416"),
    ("sheep", "1F411"), ("goat", "1F410"), ("rabbit", "1F407"), ("mouse", "1F401"),
    ("chicken", "1F414"), ("duck", "1F986"), ("owl", "1F989"), ("eagle", "1F985"),
    ("penguin", "1F427"), ("fish", "1F41F"), ("whale", "1F40B"), ("dolphin", "1F42C"),
    ("octopus", "1F419"), ("crab", "1F980"), ("frog", "1F438"), ("turtle", "1F422"),
    ("snake", "1F40D"), ("crocodile", "1F40A"), ("elephant", "1F418"), ("lion", "1F981"),
    ("tiger", "1F405"), ("bear", "1F43B"), ("koala", "1F428"), ("monkey", "1F412"),
    ("gorilla", "1F98D"), ("camel", "1F42B"), ("deer", "1F98C"), ("fox", "1F98A"),
    ("wolf", "1F43A"), ("rhino", "1F98F"), ("squirrel", "1F43F"), ("snail", "1F40C"),
    ("butterfly", "1F98B"), ("bee", "1F41D"), ("ant", "1F41C"), ("ladybug", "1F41E"),
    ("spider", "1F577"), ("car", "1F697"), ("bus", "1F68C"), ("truck", "1F69A"),
    ("tractor", "1F69C"), ("ambulance", "1F691"), ("bicycle", "1F6B2"),
    ("motorcycle", "1F3CD"), ("scooter", "1F6F4"), ("train", "1F686"), ("airplane", "2708"),
    ("helicopter", "1F681"), ("rocket", "1F680"), ("sailboat", "26F5"), ("ship", "1F6A2"),
    ("canoe", "1F6F6"), ("apple", "1F34E"), ("banana", "1F34C"), ("orange", "1F34A"),
    ("pear", "1F350"), ("strawberry", "1F353"), ("cherry", "1F352"), ("lemon", "1F34B"),
    ("watermelon", "1F349"), ("pineapple", "1F34D"), ("peach", "1F351"), ("kiwi", "1F95D"),
    ("avocado", "1F951"), ("tomato", "1F345"), ("carrot", "1F955"), ("potato", "1F954"),
    ("eggplant", "1F346"), ("mushroom", "1F344"), ("pepper", "1F336"), ("pizza", "1F355"),
    ("burger", "1F354"), ("hot dog", "1F32D"), ("croissant", "1F950"), ("cake", "1F370"),
    ("egg", "1F95A"), ("cheese", "1F9C0"), ("donut", "1F369"), ("cookie", "1F36A"),
    ("ice cream", "1F366"), ("cup", "2615"), ("bottle", "1F37E"), ("wine glass", "1F377"),
    ("knife", "1F52A"), ("spoon", "1F944"), ("bed", "1F6CF"), ("light bulb", "1F4A1"),
    ("clock", "23F0"), ("book", "1F4D5"), ("phone", "1F4F1"), ("laptop", "1F4BB"),
    ("television", "1F4FA"), ("camera", "1F4F7"), ("key", "1F511"), ("umbrella", "2602"),
    ("soccer ball", "26BD"), ("basketball", "1F3C0"), ("guitar", "1F3B8"), ("hat", "1F3A9"),
    ("shoe", "1F45F"), ("handbag", "1F45C"), ("backpack", "1F392"), ("pencil", "270F"),
    ("door", "1F6AA"), ("balloon", "1F388"), ("gift", "1F381"), ("candle", "1F56F"),
    ("tree", "1F333"), ("cactus", "1F335"), ("rose", "1F339"), ("sunflower", "1F33B"),
    ("house", "1F3E0"), ("castle", "1F3F0"),
)

CATEGORIES: tuple[str, ...] = tuple(n for n, _ in CATEGORY_CODEPOINTS)


class ArtPackage(NamedTuple):
    """One pinned emoji set: npm package, exact version, SPDX licence, attribution line."""

    package: str
    version: str
    licence: str
    attribution: str


# Set order is fixed (spec section 1): it is the atlas directory order and the order in which
# the name fallback looks for a category's icon name in the other sets. Only these four sets
# may ever be installed: other designers' art is held out for evaluation.
ART_PACKAGES: dict[str, ArtPackage] = {
    "noto": ArtPackage(
        "@iconify-json/noto", "1.2.9", "Apache-2.0",
        "Noto Emoji by Google Inc. (https://github.com/googlefonts/noto-emoji), "
        "licensed under the Apache License 2.0",
    ),
    "twemoji": ArtPackage(
        "@iconify-json/twemoji", "1.2.5", "CC-BY-4.0",
        "Twemoji by Twitter, Inc. and other contributors (https://github.com/jdecked/twemoji), "
        "licensed under CC BY 4.0",
    ),
    "fluent-flat": ArtPackage(
        "@iconify-json/fluent-emoji-flat", "1.2.6", "MIT",
        "Fluent Emoji (Flat) by Microsoft Corporation "
        "(https://github.com/microsoft/fluentui-emoji), licensed under the MIT License",
    ),
    "emojione": ArtPackage(
        "@iconify-json/emojione", "1.2.3", "CC-BY-4.0",
        "Emoji artwork provided by EmojiOne (EmojiOne 2, https://github.com/EmojiTwo/emojitwo), "
        "licensed under CC BY 4.0",
    ),
}

assert len(CATEGORIES) == 118 and len(set(CATEGORIES)) == 118
