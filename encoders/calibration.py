"""Calibrated scores: the probability that a text holds for an image, by Platt scaling.

    python -m vitr_qdrant.encoders.calibration --model vitr-objects-s [--n-images 300] [--write]

For each score mode, a logistic fit ``P(holds) = sigmoid(a * score + b)`` on (image, text) pairs of
the model's world whose truth is known: every caption against every gallery image (true where the
world's truth says so) and each image's hard negatives (its caption with subject and object
swapped, another relation...: false). The pairs are drawn from a seed stream of their own, apart
from the evaluation protocol's (:data:`~.evaluation.EVAL_SEED`); the printed report measures the
fit on the protocol's own gallery: expected calibration error (ECE) and Brier score, before (a
plain sigmoid of the score) and after. ``--write`` stores the fit as ``calibration`` in the model
directory's ``config.json``; the weights, hence the model fingerprint, do not change (checked).
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from .evaluation import EVAL_SEED, build_eval_set
from .model import VitrModel
from .model_eval import CachedScorer, model_world
from .modes import MODES

log = logging.getLogger(__name__)
FIT_SEED = EVAL_SEED + (1 << 31)   # a scene stream apart from the gallery and pair streams of the protocol


def labelled_scores(model: VitrModel, mode: str, n_images: int, seed: int, size: int = 128
                    ) -> tuple[np.ndarray, np.ndarray]:
    """``(scores, holds)`` of every (image, caption) pair of one gallery and of each image with its
    hard negatives, in ``mode``."""
    es = build_eval_set("test-iid", n_images=n_images, n_pairs=0, seed=seed, size=size, world=model_world(model))
    score = CachedScorer(model).scorer(mode)
    matrix = score(es.images, es.captions)
    scores, labels = [matrix.reshape(-1)], [es.relevance.reshape(-1)]
    for image, negatives in zip(es.images, es.negatives):
        if negatives:
            scores.append(score([image], list(negatives.values()))[0])
            labels.append(np.zeros(len(negatives), bool))
    return np.concatenate(scores).astype(np.float64), np.concatenate(labels)


def fit_platt(scores: np.ndarray, labels: np.ndarray, iters: int = 100) -> tuple[float, float]:
    """``(a, b)`` maximising the likelihood of ``labels`` under ``sigmoid(a * score + b)`` (Newton's
    method with Platt's smoothed targets, so a separable set still gives finite values)."""
    y = labels.astype(np.float64)
    n_pos, n_neg = y.sum(), len(y) - y.sum()
    t = np.where(y > 0, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    x = np.stack([scores, np.ones_like(scores)], 1)
    w = np.zeros(2)
    for _ in range(iters):
        p = _sigmoid(x @ w)
        grad = x.T @ (p - t)
        hess = x.T @ (x * (p * (1 - p) + 1e-12)[:, None]) + 1e-9 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    return float(w[0]), float(w[1])


def calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> dict[str, float]:
    """Expected calibration error (equal-width bins) and Brier score of ``probs`` for ``labels``."""
    y = labels.astype(np.float64)
    edges = np.minimum((probs * bins).astype(int), bins - 1)
    ece = sum(abs(probs[edges == k].mean() - y[edges == k].mean()) * (edges == k).mean()
              for k in range(bins) if (edges == k).any())
    return {"ece": float(ece), "brier": float(np.mean((probs - y) ** 2))}


def calibrate(model: VitrModel, modes: Sequence[str] = MODES, n_images: int = 300, check_images: int = 300,
              seed: int = FIT_SEED) -> dict:
    """``{"calibration": {mode: [a, b]}, "report": {mode: figures}}`` for ``model``: the fit on
    ``n_images`` scenes of seed ``seed``, measured on the protocol's first ``check_images``."""
    fits, report = {}, {}
    for mode in modes:
        scores, labels = labelled_scores(model, mode, n_images, seed)
        a, b = fit_platt(scores, labels)
        held, held_labels = labelled_scores(model, mode, check_images, EVAL_SEED)
        after = _sigmoid(a * held + b)
        fits[mode] = [round(a, 6), round(b, 6)]
        report[mode] = {"pairs": int(len(labels)), "positives": int(labels.sum()), "a": a, "b": b,
                        "before": calibration_error(_sigmoid(held), held_labels),
                        "after": calibration_error(after, held_labels),
                        "held_out_pairs": int(len(held_labels)),
                        "p_true_mean": float(after[held_labels].mean()),
                        "p_false_mean": float(after[~held_labels].mean()),
                        "accuracy_at_half": float(((after >= 0.5) == held_labels).mean()),
                        "true_kept_at_half": float((after[held_labels] >= 0.5).mean()),
                        "kept_true_at_half": float(held_labels[after >= 0.5].mean()) if (after >= 0.5).any() else None}
        log.info("%s: a=%.3f b=%.3f, ECE %.4f -> %.4f", mode, a, b, report[mode]["before"]["ece"],
                 report[mode]["after"]["ece"])
    return {"calibration": fits, "report": report}


def write_calibration(directory: str | Path, fits: dict) -> None:
    """Store ``fits`` as ``calibration`` in the model directory's ``config.json``; the model's
    fingerprint (its weights) is checked to stay the same."""
    from .model_dir import CONFIG_FILE, load_model_dir

    before = load_model_dir(directory, "cpu").fingerprint
    path = Path(directory) / CONFIG_FILE
    config = json.loads(path.read_text())
    config["calibration"] = merged = {**(config.get("calibration") or {}), **fits}
    path.write_text(json.dumps(config, indent=2) + "\n")
    reloaded = load_model_dir(directory, "cpu")
    if reloaded.fingerprint != before or reloaded.cfg.calibration != merged:
        raise RuntimeError(f"writing the calibration changed the model in {directory}: restore {path}")


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))


def main(argv: Sequence[str] | None = None) -> int:
    from .factory import WEIGHTS_DIR, load_model

    ap = argparse.ArgumentParser(prog="python -m vitr_qdrant.encoders.calibration",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="name or model directory (default: the bundled default)")
    ap.add_argument("--mode", action="append", choices=MODES)
    ap.add_argument("--n-images", type=int, default=300, help="gallery of the fit (every caption x image)")
    ap.add_argument("--check-images", type=int, default=300, help="the protocol's gallery the fit is measured on")
    ap.add_argument("--device", default=None)
    ap.add_argument("--write", action="store_true", help="store the fit in the model directory's config.json")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    model = load_model(args.model, device=args.device)
    out = calibrate(model, args.mode or MODES, args.n_images, args.check_images)
    print(json.dumps({"model": model.fingerprint, **out}, indent=2))
    if args.write:
        directory = Path(args.model) if args.model and Path(args.model).is_dir() else WEIGHTS_DIR / model.cfg.name
        write_calibration(directory, out["calibration"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
