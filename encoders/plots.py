"""Pictures for model cards: training curves from the trainer's JSONL logs, and the evaluation
per split, mode and art set from ``model_eval`` JSON files.

    python -m vitr_qdrant.encoders.plots training --log runs/a/log.jsonl [--log ...] --out a.png
    python -m vitr_qdrant.encoders.plots eval --results eval.json [--loo loo-noto.json ...] \\
        --out b.png

Needs matplotlib (``pip install 'vitr-qdrant[plots]'``).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Sequence

EVAL_FIGURES = (("t2i_r1", "text-to-image R@1"), ("swap_acc", "swap"),
                ("pair_group", "pair group"))


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:  # an optional extra
        raise ImportError("plots need matplotlib: pip install 'vitr-qdrant[plots]'") from e
    return plt


def _records(path: str | Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def plot_training(logs: Sequence[str | Path], out: str | Path) -> Path:
    """Loss per step (one line per log, e.g. the clip and head stages) and, where the logs hold
    evaluations, test-iid / test-comp figures per evaluation step."""
    plt = _pyplot()
    fig, (ax_loss, ax_eval) = plt.subplots(1, 2, figsize=(11, 4))
    for path in logs:
        records = _records(path)
        name = Path(path).parent.name
        steps = [r for r in records if "loss" in r]
        ax_loss.plot([r["step"] for r in steps], [r["loss"] for r in steps], label=name)
        evals = [r for r in records if "eval" in r]
        for key, style in (("vitr", "-"), ("global", ":")):
            for split, colour in (("test-iid", "tab:blue"), ("test-comp", "tab:orange")):
                points = [(r["step"], r["eval"][f"{split}/{key}"]) for r in evals
                          if f"{split}/{key}" in r["eval"]]
                if points:
                    ax_eval.plot([s for s, _ in points], [m["t2i_r1"] for _, m in points],
                                 style, marker="o", color=colour,
                                 label=f"{name} {split} {key} t2i R@1")
    ax_loss.set(xlabel="step", ylabel="training loss (sum)", title="training loss")
    ax_eval.set(xlabel="step", ylabel="percent", title="trainer's evaluation", ylim=(0, 100))
    for ax in (ax_loss, ax_eval):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    return _save(fig, plt, out)


def plot_eval(results: str | Path, out: str | Path, loo: Sequence[str | Path] = ()) -> Path:
    """Bars per art set (and overall) of t2i R@1, swap and pair group, VITR against the global
    baseline, for each split; leave-one-art-set-out results (``--art`` runs of ``model_eval``)
    as hatched bars beside them."""
    plt = _pyplot()
    main = json.loads(Path(results).read_text())["results"]
    held = {}
    for path in loo:
        d = json.loads(Path(path).read_text())
        held[d["art"]] = d["results"]
    splits = list(main)
    fig, axes = plt.subplots(len(splits), len(EVAL_FIGURES), figsize=(14, 3.6 * len(splits)),
                             squeeze=False)
    for row, split in enumerate(splits):
        by_mode = main[split]
        groups = ["all", *sorted(by_mode["vitr"].get("by_art", {}))]
        for col, (key, title) in enumerate(EVAL_FIGURES):
            ax = axes[row][col]
            bars = [("vitr", "tab:blue", None), ("global", "tab:gray", None)]
            width = 0.8 / (len(bars) + bool(held))
            for k, (mode, colour, _) in enumerate(bars):
                values = [_figure(by_mode.get(mode, {}), g, key) for g in groups]
                ax.bar([i + k * width for i in range(len(groups))], values, width,
                       color=colour, label=f"{mode} (trained on all sets)")
            if held:
                values = [_figure(held[g][split]["vitr"], "all", key) if g in held else 0
                          for g in groups]
                ax.bar([i + len(bars) * width for i in range(len(groups))], values, width,
                       color="tab:green", hatch="//",
                       label="vitr, this set left out of training")
            ax.set_xticks([i + width for i in range(len(groups))], groups, fontsize=8)
            ax.set(ylim=(0, 100), title=f"{split}: {title}")
            ax.grid(axis="y", alpha=0.3)
            if row == 0 and col == 0:
                ax.legend(fontsize=7)
    return _save(fig, plt, out)


def _figure(metrics: dict, group: str, key: str) -> float:
    source = metrics if group == "all" else metrics.get("by_art", {}).get(group, {})
    value = source.get(key)
    return 0.0 if value is None else float(value)


def _save(fig, plt, out: str | Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    t = sub.add_parser("training", help="loss and evaluation curves from JSONL logs")
    t.add_argument("--log", action="append", required=True, help="a trainer log.jsonl")
    t.add_argument("--out", required=True)
    e = sub.add_parser("eval", help="figures per split, mode and art set")
    e.add_argument("--results", required=True, help="a model_eval --out JSON file")
    e.add_argument("--loo", action="append", default=[],
                   help="a model_eval --art JSON of a model trained without that art set")
    e.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    if args.what == "training":
        print(plot_training(args.log, args.out))
    else:
        print(plot_eval(args.results, args.out, args.loo))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
