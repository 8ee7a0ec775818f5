"""Contact sheets: top hits of queries with each query word's grounded box drawn (PNG + HTML)."""
from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from PIL import Image, ImageDraw, ImageFont

from .results import Hit

PALETTE = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324")
STOP_WORDS = frozenset({"a", "an", "the", "of", "is", "to", "there", "and", "on", "in"})
MARKS = {True: "✓", False: "✗", None: "?"}
PNG_MARKS = {True: "true", False: "false", None: "undefined"}   # the bitmap font has no ✓/✗
THUMB, LABEL_W, PAD = 144, 300, 6


@dataclass
class SheetRow:
    """One query's row: its text, a label (e.g. the mode) and the hits with their truth marks."""

    query: str
    label: str
    hits: Sequence[Hit]
    truth: Sequence[bool | None]


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
        draw.text((PAD, y), f"{row.label}", fill="black", font=font)
        _wrap(draw, row.query, (PAD, y + 16), font)
        for w, (word, color) in enumerate(word_colors(row.query.split()).items()):
            x0, y0 = PAD + (w % 3) * 95, y + 70 + (w // 3) * 14
            draw.rectangle((x0, y0 + 2, x0 + 8, y0 + 10), fill=color)
            draw.text((x0 + 12, y0), word, fill=color, font=font)
        for c, (hit, ok) in enumerate(zip(row.hits, row.truth)):
            x = LABEL_W + c * (THUMB + PAD)
            sheet.paste(annotate(hit), (x, y))
            draw.text((x, y + THUMB + 1), f"{PNG_MARKS[ok]} {hit.score:.3f}", font=font,
                      fill={True: "green", False: "red", None: "gray"}[ok])
    out_png = Path(out_png)
    sheet.save(out_png)
    return out_png


def _wrap(draw: ImageDraw.ImageDraw, text: str, xy: tuple[int, int], font, width: int = 44) -> None:
    line, y = "", xy[1]
    for word in text.split():
        if len(line) + len(word) + 1 > width:
            draw.text((xy[0], y), line, fill="black", font=font)
            line, y = "", y + 12
        line = f"{line} {word}".strip()
    draw.text((xy[0], y), line, fill="black", font=font)


def write_html(rows: Sequence[SheetRow], sheet_png: Path, out_html: str | Path, title: str = "vitr demo") -> Path:
    """An HTML page: the contact sheet, then a table of every row's hits (ids, scores, grounding)."""
    parts = [f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title>",
             "<style>body{font-family:sans-serif}td{vertical-align:top;padding:4px}"
             ".ok{color:green}.bad{color:red}</style>",
             f"<h1>{html.escape(title)}</h1><img src='{html.escape(sheet_png.name)}' alt='contact sheet'>",
             "<table><tr><th>query</th><th>mode</th><th>hits (truth, score, uri, grounding)</th></tr>"]
    for row in rows:
        items = "".join(
            f"<li class='{'ok' if ok else 'bad'}'>{MARKS[ok]} {h.score:.3f} {html.escape(str(h.uri))}"
            f" <small>{html.escape(', '.join(f'{g.word}:{tuple(round(v) for v in g.box)}' for g in h.grounding))}"
            f"</small></li>" for h, ok in zip(row.hits, row.truth))
        parts.append(f"<tr><td>{html.escape(row.query)}</td><td>{html.escape(row.label)}</td>"
                     f"<td><ol>{items}</ol></td></tr>")
    parts.append("</table>")
    out_html = Path(out_html)
    out_html.write_text("\n".join(parts), encoding="utf-8")
    return out_html
