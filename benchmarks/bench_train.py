"""Training speed and memory: both stages of a model for a few hundred steps (bf16 autocast on
CUDA), samples/s and peak memory per stage.

    python benchmarks/bench_train.py [--model vitr-objects-s] [--steps 300] [--batch-size 128] > train.json

Prints one JSON object. Meant for a GPU (``--device cuda``, the default when there is one); on
CPU it runs too, slowly (use few steps). The pool is rendered from the model's world.
"""
from __future__ import annotations

import argparse
import json
import platform
import tempfile
from pathlib import Path

import torch

from vitr_qdrant.encoders.model_eval import model_world
from vitr_qdrant.encoders.train import TrainCfg, train


def _stage(cfg: TrainCfg, device: str) -> dict:
    """Train one stage; its samples/s over the loop (setup and feature caching left out) and the
    peak memory on the device."""
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    train(cfg)
    log = [json.loads(line) for line in open(Path(cfg.out) / "log.jsonl")]
    steps = [r for r in log if "samples_per_s" in r]
    peak = torch.cuda.max_memory_allocated() if device.startswith("cuda") else None
    return {"steps": steps[-1]["step"], "samples_per_s": round(steps[-1]["samples_per_s"], 1),
            "final_loss": round(steps[-1]["loss"], 4),
            "peak_memory_mib": None if peak is None else round(peak / 2**20, 1)}


def run(args: argparse.Namespace, out: Path) -> dict:
    from vitr_qdrant.encoders import create_model

    world = model_world(create_model(args.model, device="cpu", load_pretrained=False))
    common = dict(model=args.model, data=world, pool_size=args.pool_size, batch_size=args.batch_size,
                  max_steps=args.steps, eval_every=0, device=args.device, workers=args.workers,
                  render_size=args.render_size, log_every=args.steps, checkpoint_minutes=60.0,
                  threads=args.threads)
    clip = _stage(TrainCfg(stage="clip", out=str(out / "clip"), **common), args.device)
    head = _stage(TrainCfg(stage="head", init=str(out / "clip" / "last"), out=str(out / "head"),
                           **common), args.device)
    cuda = args.device.startswith("cuda")
    return {"model": args.model, "world": world, "device": args.device,
            "gpu": torch.cuda.get_device_name() if cuda else None,
            "precision": "bf16 autocast" if cuda else "fp32", "batch_size": args.batch_size,
            "pool_size": args.pool_size, "torch": torch.__version__, "python": platform.python_version(),
            "clip": clip, "head": head}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="vitr-objects-s")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--pool-size", type=int, default=4096)
    ap.add_argument("--render-size", type=int, default=128)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(run(args, Path(tmp)), indent=2))


if __name__ == "__main__":
    main()
