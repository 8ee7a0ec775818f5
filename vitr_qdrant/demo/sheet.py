"""Contact sheets: top hits of queries with each query word's grounded box drawn (PNG)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from PIL import Image, ImageDraw, ImageFont

from ..results import Hit

PALETTE = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324")
STOP_WORDS = frozenset({"a", "an", "the", "of", "is", "to", "there", "and", "on", "in"})
MARKS = {True: "✓", False: "✗", None: "?"}
PNG_MARKS = {True: "true", False: "false", None: "undefined"}   # the bitmap font has no ✓/✗
THUMB, LABEL_W, PAD = 144, 300, 6


@dataclass
class SheetRow:
    """One query's row: its text, a label (e.g. the mode), the hits with their truth marks and
    the precision of those marks (None: no hit's truth is defined)."""

    query: str
    label: str
    hits: Sequence[Hit]
    truth: Sequence[bool | None]
    precision: float | None = None

    @property
    def heading(self) -> str:
        """The label with the row's precision."""
        return self.label + ("" if self.precision is None else f"  P {self.precision:.2f}")


def word_colors(words: Sequence[str]) -> dict[str, str]:
    """A colour per content word of a query (stop words get none)."""
    content = [w for w in dict.fromkeys(words) if w not in STOP_WORDS]
    return {w: PALETTE[i % len(PALETTE)] for i, w in enumerate(content)}


def annotate(hit: Hit, size: int = THUMB) -> Image.Image:
    """The hit's image (from its ``uri``) scaled to ``size`` with grounded boxes drawn."""
    img = Image.open(hit.uri).convert("RGB") if hit.uri else Image.new("RGB", (size, size), "gray")
    scale = size / max(img.size)
    img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.BICUBIC)
    draw = ImageDraw.Draw(img)
    colors = word_colors([g.word for g in hit.grounding])
    for i, g in enumerate(x for x in hit.grounding if x.word in colors):
        inset = 1 + i % 3   # words sharing a region stay visible as nested boxes
        x0, y0, x1, y1 = (v * scale for v in g.box)
        draw.rectangle((x0 + inset, y0 + inset, x1 - inset, y1 - inset), outline=colors[g.word], width=2)
    return img


def render_sheet(rows: Sequence[SheetRow], out_png: str | Path) -> Path:
    """Draw every row (label, then the annotated hits with a truth mark) into one PNG."""
    cols = max((len(r.hits) for r in rows), default=1)
    row_h = THUMB + 2 * PAD + 14
    sheet = Image.new("RGB", (LABEL_W + cols * (THUMB + PAD) + PAD, max(1, len(rows)) * row_h), "white")
    draw, font = ImageDraw.Draw(sheet), ImageFont.load_default()
    for r, row in enumerate(rows):
        y = r * row_h + PAD
        draw_words(draw, row.heading.split(), (PAD, y), LABEL_W - 2 * PAD, font)
        draw_words(draw, row.query.split(), (PAD, y + 16), LABEL_W - 2 * PAD, font)
        draw.text((PAD, y + 56), "boxes:", fill="gray", font=font)
        for w, (word, color) in enumerate(word_colors(row.query.split()).items()):
            x0, y0 = PAD + (w % 3) * 95, y + 70 + (w // 3) * 14
            draw.rectangle((x0, y0 + 2, x0 + 8, y0 + 10), outline=color, width=2)   # as drawn on the images
            draw.text((x0 + 12, y0), word, fill="black", font=font)   # never in a colour it might name
        for c, (hit, ok) in enumerate(zip(row.hits, row.truth)):
            x = LABEL_W + c * (THUMB + PAD)
            sheet.paste(annotate(hit), (x, y))
            draw.text((x, y + THUMB + 1), f"{PNG_MARKS[ok]} {hit.score:.3f}", font=font,
                      fill={True: "green", False: "red", None: "gray"}[ok])
    out_png = Path(out_png)
    sheet.save(out_png)
    return out_png


def draw_words(draw: ImageDraw.ImageDraw, words: Sequence[str], xy: tuple[int, int], width: int, font) -> None:
    """Words wrapped to ``width`` pixels, a visible gap apart (the default font's space is 2 px wide)."""
    gap = max(5.0, font.getlength(" "))
    x, y = float(xy[0]), xy[1]
    for word in words:
        length = font.getlength(word)
        if x > xy[0] and x + length > xy[0] + width:
            x, y = float(xy[0]), y + 12
        draw.text((x, y), word, fill="black", font=font)
        x += length + gap
