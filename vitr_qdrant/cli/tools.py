"""``vitr train / eval / bench / demo``: thin front doors to the modules that do the work."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from ..encoders.modes import MODES

BENCHMARKS_DIR = Path(__file__).resolve().parent.parent / "benchmarks"


def run_train(argv: Sequence[str]) -> int:
    """``vitr train [--config FILE] key=value...``: :func:`vitr_qdrant.encoders.train.main`."""
    from ..encoders.train import main

    main(list(argv))
    return 0


def run_eval(argv: Sequence[str]) -> int:
    """``vitr eval``: a model on the Relation Scenes protocol (every mode), a reference
    ``--scorer``, or a model on a real captioned dataset with ``--data``."""
    argv = list(argv)
    if argv in (["-h"], ["--help"]):
        print(EVAL_FORMS)
    if any(a == "--data" or a.startswith("--data=") for a in argv):
        return eval_dataset(argv)
    if any(a == "--scorer" or a.startswith("--scorer=") for a in argv):
        from ..encoders.evaluation import main as scorer_main

        return int(scorer_main(argv) or 0)
    from ..encoders.model_eval import main as model_main

    return int(model_main(argv) or 0)


EVAL_FORMS = """vitr eval has three forms:
  vitr eval --data FILE [--format jsonl|csv|karpathy|coco|clevr] [--model M] [--json OUT]
      Recall@K both ways and rsum of a model on your captioned images (vitr eval --data X --help)
  vitr eval --scorer NAME ...   a reference scorer on the worlds' protocol (--scorer X --help)
  vitr eval [--model M] ...     a model on its world's protocol (options below)
"""


def eval_parser() -> argparse.ArgumentParser:
    """The options of ``vitr eval --data``."""
    from ..encoders.data.formats import LOADERS

    ap = argparse.ArgumentParser(prog="vitr eval --data", description=eval_dataset.__doc__)
    ap.add_argument("--data", required=True, help="annotation file")
    ap.add_argument("--format", choices=sorted(LOADERS), help="default: guessed from the file")
    ap.add_argument("--image-root", help="folder of the images (default: the annotation file's folder)")
    ap.add_argument("--split", help="keep only this split (e.g. test)")
    ap.add_argument("--max-images", type=int, help="evaluate on the first N images only")
    ap.add_argument("--model", help="model name or directory (default: the bundled model)")
    ap.add_argument("--mode", choices=MODES, default=None,
                    help="score to evaluate: default vitr, or global for a model without a trained head "
                    "(global: the CLIP baseline)")
    ap.add_argument("--device", help="cpu, cuda, ... (default: CUDA when available)")
    ap.add_argument("--json", metavar="OUT", help="write the result (metrics with rsum) to this file too")
    return ap


def eval_dataset(argv: Sequence[str]) -> int:
    """Recall@K both ways of a model on a captioned dataset (Karpathy JSON, COCO, CSV, JSONL...)."""
    from ..encoders import load_model
    from ..encoders.file_eval import evaluate_file

    args = eval_parser().parse_args(argv)
    model = load_model(args.model, device=args.device)
    result = evaluate_file(model, args.data, args.format, image_root=args.image_root,
                           split=args.split, max_images=args.max_images, mode=args.mode)
    text = json.dumps({**result, "model": model.fingerprint}, indent=2)
    if args.json:
        Path(args.json).write_text(text + "\n")
    print(text)
    return 0


def list_benchmarks() -> list[str]:
    """Names of the benchmark scripts (``benchmarks/bench_<name>.py`` of a source checkout)."""
    return sorted(p.stem.removeprefix("bench_") for p in BENCHMARKS_DIR.glob("bench_*.py"))


def run_bench(argv: Sequence[str]) -> int:
    """``vitr bench NAME [ARGS...]``: run ``benchmarks/bench_NAME.py`` with ``ARGS``."""
    names = list_benchmarks()
    ap = argparse.ArgumentParser(prog="vitr bench", description="Run a benchmark script (JSON out).")
    ap.add_argument("name", choices=names or None, help="benchmark: " + (", ".join(names) or "none found"))
    ap.add_argument("args", nargs=argparse.REMAINDER, help="passed to the script (try NAME --help)")
    if not names:
        raise SystemExit(f"vitr bench: no benchmark scripts in {BENCHMARKS_DIR}; they ship with the "
                         f"source checkout, not the wheel")
    args = ap.parse_args(argv)
    return subprocess.call([sys.executable, str(BENCHMARKS_DIR / f"bench_{args.name}.py"), *args.args])


def run_demo(argv: Sequence[str]) -> int:
    """``vitr demo``: :func:`vitr_qdrant.demo.run.main`."""
    from ..demo.run import main

    return int(main(list(argv)) or 0)


TOOLS: dict[str, Callable[[Sequence[str]], int]] = {
    "train": run_train, "eval": run_eval, "bench": run_bench, "demo": run_demo,
}
HELP = {
    "train": "train a model (delegates to vitr_qdrant.encoders.train; see vitr train --help)",
    "eval": "evaluate a model: Relation Scenes protocol, a --scorer, or a real dataset with --data",
    "bench": "run a benchmark script from benchmarks/ (vitr bench NAME --help)",
    "demo": "render Relation Scenes, index them, compare relation queries with the global baseline",
}


def add_tool_parsers(sub: Any) -> None:
    """List the tools in ``vitr --help`` (each parses its own arguments)."""
    for name in TOOLS:
        sub.add_parser(name, help=HELP[name], add_help=False)
