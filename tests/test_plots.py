"""Model-card pictures: drawn from a trainer log and evaluation JSON files."""
from __future__ import annotations

import json

from PIL import Image

from vitr_qdrant.encoders import plots


def _figures(value: float) -> dict:
    return {"t2i_r1": value, "swap_acc": value + 10, "pair_group": None}


def test_training_curves_from_jsonl(tmp_path):
    log = tmp_path / "head" / "log.jsonl"
    log.parent.mkdir()
    rows = [{"step": s, "loss": 5.0 / s} for s in range(1, 6)]
    rows.append({"step": 5, "eval": {"test-iid/vitr": _figures(40), "test-comp/vitr":
                                     _figures(30), "test-iid/global": _figures(10)}})
    log.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = plots.plot_training([log], tmp_path / "curves.png")
    with Image.open(out) as im:
        assert im.width > 500 and im.height > 200


def test_eval_bars_per_art_set_with_leave_one_out(tmp_path):
    per_mode = {"vitr": {**_figures(80), "by_art": {"noto": _figures(85), "emojione": _figures(70)}},
                "global": {**_figures(20), "by_art": {"noto": _figures(22)}}}
    results = tmp_path / "eval.json"
    results.write_text(json.dumps({"results": {"test-iid": per_mode, "test-comp": per_mode}}))
    loo = tmp_path / "loo.json"
    loo.write_text(json.dumps({"art": "emojione", "results": {
        "test-iid": {"vitr": _figures(50)}, "test-comp": {"vitr": _figures(40)}}}))
    out = plots.main(["eval", "--results", str(results), "--loo", str(loo),
                      "--out", str(tmp_path / "bars.png")])
    assert out == 0
    with Image.open(tmp_path / "bars.png") as im:
        assert im.width > 1000
