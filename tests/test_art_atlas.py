"""The Object Scenes art atlas shipped as package data (scripts/build_art_atlas.py builds it)."""
from __future__ import annotations

import hashlib
import json
import runpy
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vitr_qdrant.encoders.data.object_categories import ART_PACKAGES, CATEGORIES, CATEGORY_CODEPOINTS

ART = files("vitr_qdrant.encoders.data") / "art"
SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "build_art_atlas.py"
# The only art the project may use (spec section 1); anything else would spoil the unseen-designer test.
ALLOWED = {
    "noto": ("@iconify-json/noto", "1.2.9", "Apache-2.0"),
    "twemoji": ("@iconify-json/twemoji", "1.2.5", "CC-BY-4.0"),
    "fluent-flat": ("@iconify-json/fluent-emoji-flat", "1.2.6", "MIT"),
    "emojione": ("@iconify-json/emojione", "1.2.3", "CC-BY-4.0"),
}


@pytest.fixture(scope="module")
def manifest() -> dict:
    return json.loads((ART / "manifest.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def sprites(manifest: dict) -> dict[str, tuple[bytes, Image.Image]]:
    out = {}
    for sp in manifest["sprites"]:
        data = (ART / sp["file"]).read_bytes()
        img = Image.open(ART / sp["file"])
        img.load()
        out[sp["file"]] = (data, img)
    return out


def test_every_sprite_is_present_and_matches_the_manifest(manifest, sprites):
    assert list(manifest["sets"]) == list(ART_PACKAGES)
    assert len(manifest["sprites"]) == len(ART_PACKAGES) * len(CATEGORIES) == 472
    for set_name in ART_PACKAGES:
        rows = [sp for sp in manifest["sprites"] if sp["set"] == set_name]
        assert [sp["category"] for sp in rows] == list(CATEGORIES)
        assert [sp["index"] for sp in rows] == list(range(len(CATEGORIES)))
        assert [sp["codepoint"] for sp in rows] == [c for _, c in CATEGORY_CODEPOINTS]
        for sp in rows:
            assert sp["file"] == f"{set_name}/{sp['index']:03d}-{sp['category'].replace(' ', '-')}.png"
            data, img = sprites[sp["file"]]
            assert hashlib.sha256(data).hexdigest() == sp["sha256"], sp["file"]
            assert img.size == (sp["width"], sp["height"]), sp["file"]
    shipped = {str(p.relative_to(p.parents[1])) for s in ART_PACKAGES
               for p in Path(str(ART / s)).glob("*.png")}
    assert shipped == {sp["file"] for sp in manifest["sprites"]}   # no stale sprites either


def test_sprites_are_rgba_sized_and_tightly_cropped(manifest, sprites):
    size = manifest["sprite_size"]
    assert size >= 88   # the largest object in a 256 px scene is 0.34 * 256 = 87 px
    with_transparency = 0
    for name, (_, img) in sprites.items():
        assert img.mode == "RGBA", name
        assert max(img.size) == size, name
        alpha = np.asarray(img.getchannel("A"))
        # Spec: cropped to the tight box of alpha > 8/255, so every border line has such a pixel.
        for edge in (alpha[0], alpha[-1], alpha[:, 0], alpha[:, -1]):
            assert edge.max() > 8, name
        with_transparency += bool((alpha == 0).any())
    # A rasteriser that lost the alpha channel would give opaque boxes (only a door or two fill theirs).
    assert with_transparency >= 0.95 * len(sprites)


def test_only_the_pinned_packages_and_their_licences(manifest):
    assert {name: (e["package"], e["version"], e["licence"]) for name, e in manifest["sets"].items()} == ALLOWED
    assert {(sp["package"], sp["version"]) for sp in manifest["sprites"]} == {a[:2] for a in ALLOWED.values()}
    for name, pin in ART_PACKAGES.items():
        assert (pin.package, pin.version, pin.licence) == ALLOWED[name]
        assert manifest["sets"][name]["attribution"] == pin.attribution
    licences = (ART / "LICENSES.md").read_text(encoding="utf-8")
    for name, (package, version, licence) in ALLOWED.items():
        assert f"## {name}:" in licences and f"`{package}` {version}" in licences and licence in licences
    assert licences.count("https://creativecommons.org/licenses/by/4.0/") >= 2
    assert "Permission is hereby granted" in licences and "Apache License, Version 2.0" in licences
    assert "rasterised, cropped and resized for vitr-qdrant" in licences


def test_resolution_is_recorded(manifest):
    vias = {sp["via"] for sp in manifest["sprites"]}
    assert vias <= {"chars", "chars-fe0f"} | {f"name-from-{s}" for s in ART_PACKAGES}
    assert all(sp["icon"] for sp in manifest["sprites"])
    by = {(sp["set"], sp["category"]): sp["icon"] for sp in manifest["sprites"]}
    # A few spot checks that the codepoint, not the noun, picked the icon.
    assert by["noto", "mouse"] == "mouse" and by["noto", "clock"] == "alarm-clock"
    assert by["twemoji", "pepper"] == "hot-pepper" and by["fluent-flat", "orange"] == "tangerine"


# --------------------------------------------------------------------------- the build script's logic


@pytest.fixture(scope="module")
def build() -> dict:
    return runpy.run_path(str(SCRIPT))


def _toy_set(build: dict, name: str, icons: dict, aliases: dict, chars: dict):
    pin = ART_PACKAGES["noto"]
    return build["IconSet"](name, pin, "", {"icons": icons, "aliases": aliases, "width": 24, "height": 24},
                            chars, {}, {})


def test_aliases_compose_flips_like_iconify(build):
    s = _toy_set(build, "toy", {"a": {"body": "<path/>"}},
                 {"b": {"parent": "a", "hFlip": True}, "c": {"parent": "b", "hFlip": True, "rotate": 1},
                  "d": {"parent": "b", "vFlip": True}}, {"1f415": "b", "1f408": "c", "1f40e": "d"})
    sets = {"toy": s}
    r = build["resolve"](s, "1F415", sets)
    assert (r.icon, r.via, r.alias_chain, r.h_flip, r.v_flip, r.rotate) == ("b", "chars", ("a",), True, False, 0)
    body, box = build["transformed"](r)
    assert body == '<g transform="translate(24 0) scale(-1 1)"><path/></g>' and box == (0, 0, 24, 24)
    r = build["resolve"](s, "1F408", sets)                     # two hFlips cancel; rotation stays
    assert (r.alias_chain, r.h_flip, r.rotate) == (("b", "a"), False, 1)
    assert build["transformed"](r)[0] == '<g transform="rotate(90 12 12)"><path/></g>'
    r = build["resolve"](s, "1F40E", sets)                     # hFlip + vFlip is a half turn
    assert build["transformed"](r)[0] == '<g transform="rotate(180 12 12)"><path/></g>'


def test_defs_stay_outside_the_flip_group(build):
    r = build["Resolved"]("x", "chars", (), False, True, 0, '<defs><linearGradient id="g"/></defs><path/>',
                          (0, 0, 32, 32))
    assert build["transformed"](r)[0] == (
        '<defs><linearGradient id="g"/></defs><g transform="translate(0 32) scale(1 -1)"><path/></g>')


def test_missing_chars_fall_back_to_another_sets_icon_name(build):
    named = _toy_set(build, "named", {"dog": {"body": "<path/>"}}, {}, {"1f415": "dog"})
    bare = _toy_set(build, "bare", {"dog": {"body": "<circle/>"}}, {}, {})
    sets = {"named": named, "bare": bare}
    assert build["icon_name"](bare, "1F415", sets) == ("dog", "name-from-named")
    fe0f = _toy_set(build, "fe0f", {"cup": {"body": "<path/>"}}, {}, {"2615-fe0f": "cup"})
    assert build["icon_name"](fe0f, "2615", {"fe0f": fe0f}) == ("cup", "chars-fe0f")
    with pytest.raises(KeyError):
        build["icon_name"](bare, "1F408", sets)
