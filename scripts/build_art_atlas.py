"""Build the Object Scenes art atlas (shared/specs/object-scenes.md section 1) from the pinned npm packages.

    pip install -e '.[atlas]'
    python scripts/build_art_atlas.py [--out encoders/data/art] [--cache DIR] [--sprite-size 96]

For each of the four sets in ``ART_PACKAGES`` this fetches the package tarball with
``npm pack`` (build time only: nothing at run time needs npm or a network), checks it against
the pinned npm integrity, resolves every category's icon (``chars.json`` by codepoint, with or
without ``-fe0f``; else the same icon name as another set; aliases followed with their flips,
the way Iconify does), rasterises it with resvg at high resolution, crops it to the tight box
of pixels with alpha > 8/255 and downsizes it with premultiplied alpha so that its longer side
is ``--sprite-size`` px. It writes ``<out>/<set>/<index:03d>-<noun>.png``,
``<out>/manifest.json`` and ``<out>/LICENSES.md``. The output is byte-identical from run to
run (same resvg-py and Pillow versions).
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import logging
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np
from PIL import Image

from vitr_qdrant.encoders.data.object_categories import ART_PACKAGES, CATEGORY_CODEPOINTS, ArtPackage

log = logging.getLogger("build_art_atlas")
REPO = Path(__file__).resolve().parent.parent

# npm's own integrity strings for the pinned tarballs: a registry that served different bytes
# under the same version would silently change the training art, so refuse it.
PINNED_INTEGRITY: dict[str, str] = {
    "noto": "sha512-DQiuXENbun41ch+XPSV55H9FaWKpHTyz46YIKtSaKYD4fIDDzL1tR6H4np/T38jfrTAeI3rcKF0mqHYeZVAuaw==",
    "twemoji": "sha512-uKpuIEV0v6K5BW3Mjdyl+XKFVAbbcPxAgifKvEMtZoUZB5+YiY5zaMm2uNNCxyXzAWU9yNLlj41WU6/mvgALsw==",
    "fluent-flat": "sha512-RY47RgPb47fYUiyrA64sIOL0+UU02s29sXpNBbIQRBUlPlfNFTKUmZDERGuxDs/7yNGWqQYvuaSYM1M4fRXlUw==",
    "emojione": "sha512-T9+T3HIbJNLKKsmxYKlaYhvnHYkz/HNYTV7SHCXVZPfeUi4FqskY70YeN8yYAZT8cCv7w5vJxS4Q1m8zb9CMMg==",
}

ALPHA_THRESHOLD = 8          # spec: the tight box of pixels with alpha > 8/255
RENDER_SIZE = 512            # longer side of the viewBox when rasterised, before crop and resize
MIN_SPRITE_SIZE = 88         # the largest object in a 256 px scene is 0.34 * 256 = 87 px
ICONIFY_DEFAULT_SIZE = 16    # Iconify's default icon width/height when the set gives none
MODIFICATION_NOTE = "rasterised, cropped and resized for vitr-qdrant"
APACHE_TEXT = Path(__file__).resolve().parent / "licences" / "Apache-2.0.txt"
CC_BY_URL = "https://creativecommons.org/licenses/by/4.0/"

MIT_TEXT = """\
Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE."""

APACHE_NOTICE = """\
Licensed under the Apache License, Version 2.0 (the "License"); you may not use
these files except in compliance with the License. You may obtain a copy of the
License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software distributed
under the License is distributed on an "AS IS" BASIS, WITHOUT WARRANTIES OR
CONDITIONS OF ANY KIND, either express or implied. See the License for the
specific language governing permissions and limitations under the License."""


# --------------------------------------------------------------------------- packages


@dataclass
class IconSet:
    """What the build needs from one npm package."""

    name: str                    # our set name, e.g. "fluent-flat"
    pin: ArtPackage
    integrity: str
    icons: dict                  # icons.json
    chars: dict[str, str]        # chars.json: lower-case hex codepoint(s) -> icon name
    info: dict                   # info.json (author, licence)
    package_json: dict
    licence_files: dict[str, str] = field(default_factory=dict)   # LICENSE*/NOTICE* carried, verbatim

    def has(self, name: str) -> bool:
        return name in self.icons["icons"] or name in self.icons.get("aliases", {})


def npm_integrity(path: Path) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()


def fetch_tarball(set_name: str, pin: ArtPackage, cache: Path) -> Path:
    """The package tarball in ``cache``, from ``npm pack`` unless a verified copy is there."""
    tarball = cache / (pin.package.lstrip("@").replace("/", "-") + f"-{pin.version}.tgz")
    if not (tarball.exists() and npm_integrity(tarball) == PINNED_INTEGRITY[set_name]):
        log.info("npm pack %s@%s", pin.package, pin.version)
        done = subprocess.run(["npm", "pack", f"{pin.package}@{pin.version}", "--pack-destination", str(cache)],
                              capture_output=True, text=True)   # npm's notices would drown the summary
        if done.returncode != 0:
            raise RuntimeError(f"npm pack {pin.package}@{pin.version} failed:\n{done.stderr}")
    got = npm_integrity(tarball)
    if got != PINNED_INTEGRITY[set_name]:
        raise RuntimeError(f"{tarball}: integrity {got} is not the pinned {PINNED_INTEGRITY[set_name]}")
    return tarball


def load_set(set_name: str, pin: ArtPackage, cache: Path) -> IconSet:
    tarball = fetch_tarball(set_name, pin, cache)
    with tarfile.open(tarball, "r:gz") as tar:
        files = {m.name.removeprefix("package/"): m for m in tar.getmembers() if m.isfile()}

        def text(name: str) -> str:
            return tar.extractfile(files[name]).read().decode("utf-8")

        package_json = json.loads(text("package.json"))
        if (package_json["name"], package_json["version"]) != (pin.package, pin.version):
            raise RuntimeError(f"{tarball} holds {package_json['name']}@{package_json['version']}")
        licence_files = {n: text(n) for n in sorted(files) if re.match(r"(?i)(licen[cs]e|notice|copying)", n)}
        return IconSet(set_name, pin, PINNED_INTEGRITY[set_name], json.loads(text("icons.json")),
                       json.loads(text("chars.json")), json.loads(text("info.json")), package_json,
                       licence_files)


# --------------------------------------------------------------------------- resolution


@dataclass(frozen=True)
class Resolved:
    """One category's icon in one set, as Iconify would render it."""

    icon: str                    # the set's name for it (from chars.json or another set)
    via: str                     # "chars", "chars-fe0f" or "name-from-<set>"
    alias_chain: tuple[str, ...]  # parents followed from ``icon`` to the icon with a body
    h_flip: bool
    v_flip: bool
    rotate: int                  # quarter turns, 0..3
    body: str
    box: tuple[float, float, float, float]   # left, top, width, height (the viewBox)


def chars_name(s: IconSet, codepoint: str) -> tuple[str, str] | None:
    """(icon name, via) from the set's chars.json, whose keys are lower-case hex."""
    key = codepoint.lower()
    for k, via in ((key, "chars"), (key + "-fe0f", "chars-fe0f")):
        if k in s.chars:
            return s.chars[k], via
    return None


def icon_name(s: IconSet, codepoint: str, sets: dict[str, IconSet]) -> tuple[str, str]:
    """The category's icon name in ``s``: its own chars.json, else the name another set gives it."""
    found = chars_name(s, codepoint)
    if found is not None:
        if not s.has(found[0]):
            raise KeyError(f"{s.name}: chars.json maps {codepoint} to {found[0]!r}, which is not an icon")
        return found
    # Set order is the fallback order, so the choice is reproducible.
    for other in sets.values():
        if other is s:
            continue
        theirs = chars_name(other, codepoint)
        if theirs is not None and s.has(theirs[0]):
            return theirs[0], f"name-from-{other.name}"
    raise KeyError(f"{s.name}: no icon for codepoint {codepoint} (not in chars.json, no name match)")


def merge_props(parent: dict, child: dict) -> dict:
    """Iconify's mergeIconData: flips XOR and rotations add; the child's box keys win."""
    out: dict = {}
    if bool(parent.get("hFlip")) != bool(child.get("hFlip")):
        out["hFlip"] = True
    if bool(parent.get("vFlip")) != bool(child.get("vFlip")):
        out["vFlip"] = True
    rotate = (parent.get("rotate", 0) + child.get("rotate", 0)) % 4
    if rotate:
        out["rotate"] = rotate
    for key in ("left", "top", "width", "height", "body", "hidden"):
        if key in child:
            out[key] = child[key]
        elif key in parent:
            out[key] = parent[key]
    return out


def icon_data(s: IconSet, name: str) -> tuple[dict, tuple[str, ...]]:
    """The full icon data of ``name`` with aliases followed (Iconify's getIconData)."""
    icons, aliases = s.icons["icons"], s.icons.get("aliases", {})
    chain: list[str] = []
    props: dict = {}
    current = name
    while True:
        entry = icons.get(current) or aliases.get(current)
        if entry is None:
            raise KeyError(f"{s.name}: icon {current!r} (from {name!r}) does not exist")
        props = merge_props(entry, props)
        if current in icons:
            break
        current = entry["parent"]
        if current in chain or current == name:
            raise ValueError(f"{s.name}: alias loop at {current!r}")
        chain.append(current)
    set_defaults = {k: s.icons[k] for k in ("left", "top", "width", "height") if k in s.icons}
    return merge_props(set_defaults, props), tuple(chain)


def resolve(s: IconSet, codepoint: str, sets: dict[str, IconSet]) -> Resolved:
    name, via = icon_name(s, codepoint, sets)
    data, chain = icon_data(s, name)
    box = (data.get("left", 0), data.get("top", 0), data.get("width", ICONIFY_DEFAULT_SIZE),
           data.get("height", ICONIFY_DEFAULT_SIZE))
    return Resolved(name, via, chain, bool(data.get("hFlip")), bool(data.get("vFlip")),
                    int(data.get("rotate", 0)) % 4, data["body"], box)


# --------------------------------------------------------------------------- SVG


def _num(x: float) -> str:
    """A number the way JavaScript's toString writes it for the values used here."""
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def wrap_body(body: str, start: str, end: str) -> str:
    """Iconify's wrapSVGContent: <defs> stay outside the wrapping group."""
    defs = "".join(m.group(1).strip() for m in re.finditer(r"<defs[^>]*>(.*?)</defs>", body, re.S))
    content = re.sub(r"\s*<defs[^>]*>.*?</defs>\s*", "", body, flags=re.S)
    return (f"<defs>{defs}</defs>" if defs else "") + start + content + end


def transformed(r: Resolved) -> tuple[str, tuple[float, float, float, float]]:
    """Body and viewBox after the icon's flips and rotation (Iconify's iconToSVG)."""
    left, top, width, height = r.box
    transforms: list[str] = []
    rotation = r.rotate
    if r.h_flip and r.v_flip:
        rotation += 2          # both flips are a half turn, as in Iconify
    elif r.h_flip:
        transforms += [f"translate({_num(width + left)} {_num(-top)})", "scale(-1 1)"]
        left = top = 0
    elif r.v_flip:
        transforms += [f"translate({_num(-left)} {_num(height + top)})", "scale(1 -1)"]
        left = top = 0
    rotation %= 4
    if rotation == 1:
        c = height / 2 + top
        transforms.insert(0, f"rotate(90 {_num(c)} {_num(c)})")
    elif rotation == 2:
        transforms.insert(0, f"rotate(180 {_num(width / 2 + left)} {_num(height / 2 + top)})")
    elif rotation == 3:
        c = width / 2 + left
        transforms.insert(0, f"rotate(-90 {_num(c)} {_num(c)})")
    if rotation % 2 == 1:
        left, top, width, height = top, left, height, width
    body = r.body
    if transforms:
        body = wrap_body(body, f'<g transform="{" ".join(transforms)}">', "</g>")
    return body, (left, top, width, height)


def render_dims(width: float, height: float, render_size: int) -> tuple[int, int]:
    """Pixel size of the render: the viewBox's longer side becomes ``render_size``."""
    scale = render_size / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def to_svg(r: Resolved, render_size: int) -> tuple[str, tuple[int, int]]:
    """Standalone SVG of the icon whose own width/height are the render's pixel size.

    resvg sizes its output from the SVG's integer-rounded width/height, so a fractional
    viewBox (twemoji's watermelon is 36 x 25.22) would come out a few pixels off if the
    SVG kept the viewBox's own units.
    """
    body, (left, top, width, height) = transformed(r)
    w, h = render_dims(width, height, render_size)
    svg = ('<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
           f'width="{w}" height="{h}" '
           f'viewBox="{_num(left)} {_num(top)} {_num(width)} {_num(height)}">{body}</svg>')
    return svg, (w, h)


# --------------------------------------------------------------------------- raster


def rasterise(svg: str, size: tuple[int, int]) -> Image.Image:
    """The SVG as an RGBA image (straight alpha) of ``size`` pixels."""
    import resvg_py  # build-time dependency only (the `atlas` extra)

    w, h = size
    png = resvg_py.svg_to_bytes(svg_string=svg, width=w, height=h)
    img = Image.open(io.BytesIO(bytes(png)))
    img.load()
    if img.mode != "RGBA" or img.size != (w, h):
        raise RuntimeError(f"resvg gave {img.mode} {img.size}, expected RGBA {(w, h)}")
    return img


def alpha_box(img: Image.Image) -> tuple[int, int, int, int] | None:
    """Tight box (left, top, right, bottom) of the pixels with alpha > ALPHA_THRESHOLD."""
    a = np.asarray(img.getchannel("A")) > ALPHA_THRESHOLD
    rows, cols = np.flatnonzero(a.any(axis=1)), np.flatnonzero(a.any(axis=0))
    if rows.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def sprite_from(img: Image.Image, sprite_size: int) -> Image.Image:
    """Crop to the alpha box and resize (premultiplied, LANCZOS) to longer side ``sprite_size``.

    Downsizing can leave an outermost row or column at alpha <= 8 (a thin stroke averaged with
    empty pixels), so the sprite would no longer be tightly cropped. Then the source box is
    shrunk by those output pixels and the resize redone from the high-resolution image, rather
    than cropping the small image (that would make its longer side short of ``sprite_size``).
    """
    box = alpha_box(img)
    if box is None:
        raise ValueError("empty icon: no pixel with alpha > 8/255")
    premultiplied = img.convert("RGBa")   # resize without dark fringes from transparent pixels
    src = [float(v) for v in box]
    for _ in range(16):
        bw, bh = src[2] - src[0], src[3] - src[1]
        scale = sprite_size / max(bw, bh)
        size = (max(1, round(bw * scale)), max(1, round(bh * scale)))
        out = premultiplied.resize(size, Image.Resampling.LANCZOS, box=tuple(src)).convert("RGBA")
        tight = alpha_box(out)
        if tight is None:
            raise ValueError("icon vanished when resized")
        if tight == (0, 0, size[0], size[1]):
            return out
        sx, sy = bw / size[0], bh / size[1]
        src = [src[0] + tight[0] * sx, src[1] + tight[1] * sy,
               src[0] + tight[2] * sx, src[1] + tight[3] * sy]
    raise RuntimeError("could not crop the sprite tightly")


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)   # no timestamps: the bytes depend on pixels only
    return buf.getvalue()


# --------------------------------------------------------------------------- outputs


def sprite_file(set_name: str, index: int, noun: str) -> str:
    return f"{set_name}/{index:03d}-{noun.replace(' ', '-')}.png"


def set_entry(s: IconSet) -> dict:
    author = s.info.get("author", {})
    licence = s.info.get("license", {})
    return {
        "package": s.pin.package, "version": s.pin.version, "licence": s.pin.licence,
        "attribution": s.pin.attribution, "integrity": s.integrity,
        "title": s.info.get("name", ""), "author": author.get("name", ""), "source": author.get("url", ""),
        "licence_title": licence.get("title", ""), "licence_url": licence.get("url", ""),
        "package_licence": s.package_json.get("license", ""),
    }


def check_metadata(s: IconSet) -> None:
    """The licence the package declares must be the one pinned in ART_PACKAGES."""
    declared = {s.info.get("license", {}).get("spdx"), s.package_json.get("license")}
    if declared != {s.pin.licence}:
        raise RuntimeError(f"{s.name}: package declares licence {declared}, pinned {s.pin.licence}")


def licences_md(sets: dict[str, IconSet], counts: dict[str, int]) -> str:
    lines = [
        "# Art licences",
        "",
        "The sprites under this directory are derived from four open emoji sets, fetched as the",
        "npm packages below by `scripts/build_art_atlas.py`. Each sprite is one icon of its set,",
        f"{MODIFICATION_NOTE}: the icon's SVG was rendered with transparency,",
        "cropped to the tight box of pixels with alpha > 8/255 and downsized. No other change",
        "was made. `manifest.json` names the icon behind every file.",
        "",
    ]
    for s in sets.values():
        e = set_entry(s)
        lines += [
            f"## {s.name}: {e['title']}",
            "",
            f"- Files: `{s.name}/*.png` ({counts[s.name]} sprites)",
            f"- Package: `{e['package']}` {e['version']} (npm, {e['integrity']})",
            f"- Title and author (package metadata): {e['title']}, by {e['author']} ({e['source']})",
            f"- Licence: {e['licence_title']} (SPDX `{e['licence']}`), {e['licence_url']}",
            f"- Attribution: {e['attribution']}.",
            f"- Changes: {MODIFICATION_NOTE}.",
        ]
        if s.pin.licence == "CC-BY-4.0":
            lines += [
                f"- CC BY 4.0 notice: \"{e['title']}\" by {e['author']} ({e['source']}) is licensed",
                f"  under the Creative Commons Attribution 4.0 International licence, {CC_BY_URL}.",
                f"  These sprites are adapted from it ({MODIFICATION_NOTE}). The material is offered",
                "  as-is, without warranties (licence section 5); the licensor does not endorse",
                "  vitr-qdrant.",
            ]
        if not s.licence_files:
            declared = e["package_licence"]
            lines.append(f"- The npm package carries no licence file; its metadata declares `{declared}`.")
        lines.append("")
        if s.pin.licence == "MIT":
            lines += ["```text", "MIT License", "", f"Copyright (c) {e['author']}", "", MIT_TEXT, "```", ""]
        elif s.pin.licence == "Apache-2.0":
            lines += ["```text", f"Copyright {e['author']} (as named in the package metadata)", "",
                      APACHE_NOTICE, "```", "",
                      f"The full, unmodified text of the licence ({e['licence_url']}):", "",
                      "```text", APACHE_TEXT.read_text(encoding="utf-8").rstrip(), "```", ""]
        for fname, text in s.licence_files.items():
            lines += [f"`{fname}` as carried by the package:", "", "```text", text.rstrip(), "```", ""]
    return "\n".join(lines).rstrip() + "\n"


def build(out: Path, cache: Path, sprite_size: int, render_size: int = RENDER_SIZE) -> dict:
    """Write the atlas under ``out``; returns the manifest."""
    sets = {name: load_set(name, pin, cache) for name, pin in ART_PACKAGES.items()}
    for s in sets.values():
        check_metadata(s)
    for name in sets:                                # stale sprites of an earlier build go
        shutil.rmtree(out / name, ignore_errors=True)
        (out / name).mkdir(parents=True)
    sprites: list[dict] = []
    counts = {name: 0 for name in sets}
    for s in sets.values():
        for index, (noun, codepoint) in enumerate(CATEGORY_CODEPOINTS):
            r = resolve(s, codepoint, sets)
            try:
                sprite = sprite_from(rasterise(*to_svg(r, render_size)), sprite_size)
            except ValueError as exc:
                raise RuntimeError(f"{s.name} {noun} ({r.icon}): {exc}") from exc
            data = png_bytes(sprite)
            rel = sprite_file(s.name, index, noun)
            (out / rel).write_bytes(data)
            counts[s.name] += 1
            sprites.append({
                "set": s.name, "index": index, "category": noun, "codepoint": codepoint,
                "icon": r.icon, "via": r.via, "alias_chain": list(r.alias_chain),
                "hFlip": r.h_flip, "vFlip": r.v_flip, "rotate": r.rotate,
                "package": s.pin.package, "version": s.pin.version, "file": rel,
                "sha256": hashlib.sha256(data).hexdigest(), "width": sprite.width, "height": sprite.height,
            })
            log.debug("%s %s -> %s (%s)", s.name, noun, r.icon, r.via)
    manifest = {
        "sprite_size": sprite_size,
        "render_size": render_size,
        "alpha_threshold": ALPHA_THRESHOLD,
        "generator": "scripts/build_art_atlas.py",
        "tools": {"resvg-py": metadata.version("resvg-py"), "pillow": metadata.version("pillow")},
        "sets": {name: set_entry(s) for name, s in sets.items()},
        "sprites": sprites,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=True) + "\n", encoding="utf-8")
    (out / "LICENSES.md").write_text(licences_md(sets, counts), encoding="utf-8")
    return manifest


def summary(manifest: dict, out: Path) -> dict:
    per_set: dict[str, dict[str, int]] = {}
    for sp in manifest["sprites"]:
        c = per_set.setdefault(sp["set"], {})
        c[sp["via"]] = c.get(sp["via"], 0) + 1
        if sp["alias_chain"]:
            c["aliased"] = c.get("aliased", 0) + 1
        if sp["hFlip"] or sp["vFlip"] or sp["rotate"]:
            c["transformed"] = c.get("transformed", 0) + 1
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return {"out": str(out), "sprites": len(manifest["sprites"]), "sprite_size": manifest["sprite_size"],
            "bytes": total, "resolution": per_set}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "encoders" / "data" / "art",
                        help="atlas directory (default: encoders/data/art of this checkout)")
    parser.add_argument("--cache", type=Path, default=None, help="dir for the npm tarballs (default: a temp dir)")
    parser.add_argument("--sprite-size", type=int, default=96)
    parser.add_argument("--render-size", type=int, default=RENDER_SIZE, help=argparse.SUPPRESS)
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    if args.sprite_size < MIN_SPRITE_SIZE:
        parser.error(f"--sprite-size must be at least {MIN_SPRITE_SIZE} (largest object in a 256 px scene)")
    if args.render_size < 4 * args.sprite_size:
        parser.error("--render-size must be at least 4x --sprite-size")
    with tempfile.TemporaryDirectory() as tmp:
        cache = args.cache or Path(tmp)
        cache.mkdir(parents=True, exist_ok=True)
        manifest = build(args.out, cache, args.sprite_size, args.render_size)
    print(json.dumps(summary(manifest, args.out), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
