"""The art atlas of Object Scenes: one RGBA sprite per (art set, category), shipped in the
package (built by ``scripts/build_art_atlas.py`` from the four pinned npm packages; licences
and attribution in ``art/LICENSES.md``)."""
from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from PIL import Image

from .object_categories import ART_PACKAGES, CATEGORIES

ART_DIR = Path(__file__).parent / "art"
MANIFEST = ART_DIR / "manifest.json"


@functools.lru_cache(maxsize=1)
def manifest() -> dict[str, Any]:
    """The atlas manifest: ``sprite_size``, ``sets`` and one entry per sprite."""
    if not MANIFEST.is_file():
        raise FileNotFoundError(f"the Object Scenes art atlas is missing ({MANIFEST}); rebuild it "
                                "with `python scripts/build_art_atlas.py`")
    return json.loads(MANIFEST.read_text(encoding="utf-8"))


@functools.lru_cache(maxsize=1)
def _files() -> dict[tuple[str, str], Path]:
    return {(s["set"], s["category"]): ART_DIR / s["file"] for s in manifest()["sprites"]}


def check_art(art: str) -> str:
    if art not in ART_PACKAGES:
        raise ValueError(f"unknown art set {art!r}; expected one of {tuple(ART_PACKAGES)}")
    return art


@functools.lru_cache(maxsize=None)
def sprite(art: str, category: str) -> Image.Image:
    """The RGBA sprite of ``category`` in ``art`` (cropped to alpha > 8; longer side
    ``manifest()["sprite_size"]``). Cached: callers must not modify it."""
    check_art(art)
    if category not in CATEGORIES:
        raise ValueError(f"unknown category {category!r}")
    with Image.open(_files()[(art, category)]) as im:
        return im.convert("RGBA")
