"""The demo explains itself: precision leaves undefined hits out; the sheet's legend and query text read right."""
from __future__ import annotations

from PIL import ImageDraw

from vitr_qdrant.demo.run import precision_of
from vitr_qdrant.grounding import Grounding
from vitr_qdrant.results import Hit
from vitr_qdrant.demo.sheet import SheetRow, render_sheet


def test_undefined_hits_count_neither_way():
    assert precision_of([True, None, False, None]) == 0.5
    assert precision_of([True, None]) == 1.0
    assert precision_of([None, None]) is None


def test_sheet_legend_is_black_and_query_words_keep_their_gaps(tmp_path, scene_images, monkeypatch):
    scene_images[0].save(tmp_path / "0.png")
    grounding = [Grounding(w, (0.0, 0.0, 16.0, 16.0), 0, 1.0) for w in ("cyan", "circle", "left", "purple")]
    hit = Hit(1, 1.0, {"vitr": 1.0}, {"uri": str(tmp_path / "0.png"), "width": 64, "height": 64}, grounding)
    drawn = []
    real = ImageDraw.ImageDraw.text

    def spy(self, xy, text, fill=None, font=None, **kw):
        drawn.append((xy, text, fill, font))
        return real(self, xy, text, fill=fill, font=font, **kw)

    monkeypatch.setattr(ImageDraw.ImageDraw, "text", spy)
    query = "cyan circle left of purple square"
    render_sheet([SheetRow(query, "VITR", [hit], [None])], tmp_path / "sheet.png")
    for word in ("cyan", "purple"):   # the legend never paints a colour word in another colour
        assert {fill for _, text, fill, _ in drawn if text == word} == {"black"}
    words = [(xy, text, font) for xy, text, _, font in drawn if text in query.split()][: len(query.split())]
    assert [t for _, t, _ in words] == query.split()   # one word at a time, in order
    for (xy, text, font), (nxt, _, _) in zip(words, words[1:]):
        if nxt[1] == xy[1]:
            assert nxt[0] - (xy[0] + font.getlength(text)) >= 5   # a visible space: no "leftof"
    assert {fill for _, text, fill, _ in drawn if text.startswith("undefined")} == {"gray"}
