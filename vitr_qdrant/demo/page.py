"""The demo's HTML page: what it shows, a legend, precision per mode, and every query's hits as
thumbnails (relative links) with each word's grounded box on hover."""
from __future__ import annotations

import html
import itertools
import os
from pathlib import Path
from typing import Mapping, Sequence

from ..results import Hit
from .sheet import MARKS, SheetRow, word_colors

MARK_CLASS = {True: "true", False: "false", None: "undefined"}
STYLE = """body{font:15px/1.45 system-ui,sans-serif;max-width:1200px;margin:0 auto;padding:0 16px;color:#222}
.cols{display:flex;flex-wrap:wrap;gap:24px}.col h4{margin:6px 0}
.hits{display:flex;gap:8px;flex-wrap:wrap}.hit{margin:0;font-size:13px;text-align:center}
.thumb{position:relative;display:block;width:104px}.thumb img{display:block;width:104px}
.box{position:absolute;box-sizing:border-box;border:2px solid;display:none}.thumb:hover .box{display:block}
.true{color:#17803d}.false{color:#b3261e}.undefined{color:#777}
table{border-collapse:collapse}td,th{padding:3px 10px;border-bottom:1px solid #ddd;text-align:left}
.word{border-bottom:3px solid;padding:0 3px;margin-right:4px}"""


def write_page(rows: Sequence[SheetRow], sheet_png: Path, out_html: str | Path, *, title: str,
               intro: Sequence[str], legend: Mapping[bool | None, str], summary: Sequence[tuple[str, str]]) -> Path:
    """Write the page; ``intro`` paragraphs and the ``legend`` of each truth mark are plain text,
    ``summary`` rows are (mode, mean precision) pairs."""
    out_html = Path(out_html)
    parts = [f"<!doctype html><html lang='en'><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{STYLE}</style><h1>{html.escape(title)}</h1>",
             *(f"<p>{html.escape(p)}</p>" for p in intro),
             "<h2>Summary</h2><table><tr><th>mode</th><th>mean precision</th></tr>",
             *(f"<tr><td>{html.escape(m)}</td><td>{html.escape(v)}</td></tr>" for m, v in summary),
             "</table><h2>Legend</h2><ul>",
             *(f"<li><b class='{MARK_CLASS[k]}'>{MARKS[k]} {MARK_CLASS[k]}</b>: {html.escape(text)}</li>"
               for k, text in legend.items()),
             "</ul><h2>Queries</h2>"]
    for query, group in itertools.groupby(rows, key=lambda r: r.query):
        words = "".join(f"<span class='word' style='border-color:{c}'>{html.escape(w)}</span>"
                        for w, c in word_colors(query.split()).items())
        parts.append(f"<h3>{html.escape(query)}</h3><p>boxes (hover an image): {words}</p><div class='cols'>")
        parts += [_column(row, out_html.parent) for row in group]
        parts.append("</div>")
    parts.append(f"<h2>Contact sheet</h2><p><a href='{html.escape(sheet_png.name)}'>"
                 f"<img src='{html.escape(sheet_png.name)}' alt='contact sheet' width='100%'></a></p>")
    out_html.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return out_html


def _column(row: SheetRow, folder: Path) -> str:
    cells = "".join(_hit(hit, ok, folder) for hit, ok in zip(row.hits, row.truth))
    return f"<div class='col'><h4>{html.escape(row.heading)}</h4><div class='hits'>{cells}</div></div>"


def _hit(hit: Hit, ok: bool | None, folder: Path) -> str:
    href = html.escape(relative(hit.uri, folder)) if hit.uri else ""
    width, height = hit.payload.get("width") or 1, hit.payload.get("height") or 1
    colors = word_colors([g.word for g in hit.grounding])
    boxes = "".join(
        f"<span class='box' title='{html.escape(g.word)}' style='left:{100 * g.box[0] / width:.1f}%;"
        f"top:{100 * g.box[1] / height:.1f}%;width:{100 * (g.box[2] - g.box[0]) / width:.1f}%;"
        f"height:{100 * (g.box[3] - g.box[1]) / height:.1f}%;border-color:{colors[g.word]}'></span>"
        for g in hit.grounding if g.word in colors)
    name = html.escape(Path(hit.uri).name if hit.uri else str(hit.id))
    return (f"<figure class='hit'><a class='thumb' href='{href}'><img src='{href}' alt='{name}'>{boxes}</a>"
            f"<figcaption><span class='{MARK_CLASS[ok]}'>{MARKS[ok]}</span> {hit.score:.3f} {name}</figcaption></figure>")


def relative(uri: str, folder: Path) -> str:
    """A link from the page to an image: relative for local files (the folder can move), else the URL."""
    if "://" in uri:
        return uri
    return Path(os.path.relpath(uri, folder)).as_posix()
