"""``out/last``: a training checkpoint that resumes exactly, written so that a kill at any moment
leaves one complete copy."""
from __future__ import annotations

import logging
import shutil
from dataclasses import asdict
from pathlib import Path

import torch

from ..errors import InputError
from .model import VitrModel
from .model_dir import load_weights
from .tasks import Task

log = logging.getLogger(__name__)


class Checkpoint:
    """``out/last``: the model (its own save format), optimizer, task extras, step, best.

    Written whole to ``last.new`` first and swapped in by renames, so a kill at any moment
    leaves one complete checkpoint (``last``, else ``last.new``, else ``last.old``)."""

    def __init__(self, out: Path):
        self.out, self.last = out, out / "last"

    def save(self, model: VitrModel, opt, task: Task, step: int, best: float, cfg) -> None:
        new, old = self.out / "last.new", self.out / "last.old"
        shutil.rmtree(new, ignore_errors=True)
        model.save(new)
        torch.save({"optimizer": opt.state_dict(), "step": step, "best": best,
                    "cfg": asdict(cfg), "task": _extras(task)}, new / "trainer.pt")
        shutil.rmtree(old, ignore_errors=True)
        if self.last.exists():
            self.last.rename(old)
        new.rename(self.last)
        shutil.rmtree(old, ignore_errors=True)

    def found(self) -> Path | None:
        """The newest complete checkpoint, if any."""
        for d in (self.last, self.out / "last.new", self.out / "last.old"):
            if (d / "trainer.pt").is_file():
                return d
        return None

    def restore(self, model: VitrModel, opt, task: Task, device) -> tuple[int, float]:
        where = self.found()
        state = torch.load(where / "trainer.pt", map_location=device, weights_only=True)
        weights = load_weights(where)
        _check_same_keys(where, "model (its config)", weights, model.state_dict())
        _check_same_keys(where, "task setup (its extras)", state["task"], _extras(task))
        model.load_state_dict(weights)
        task.load_state_dict(state["task"], strict=False)
        opt.load_state_dict(state["optimizer"])
        log.info("resumed from %s at step %d", where, state["step"])
        return state["step"], state["best"]


def _check_same_keys(where: Path, what: str, saved: dict, expected: dict) -> None:
    """A checkpoint resumes only into the run that made it: the same model and task tensors."""
    if set(saved) != set(expected):
        missing, extra = sorted(set(expected) - set(saved)), sorted(set(saved) - set(expected))
        raise InputError(f"the checkpoint in {where} was made by another {what}: it lacks "
                         f"{missing[:5]} and has {extra[:5]} beyond this run's; resume with its "
                         "options, or start in a new out= folder")


def _extras(task: Task) -> dict[str, torch.Tensor]:
    """The task's own state (e.g. the late-score scale, the attribute probe), not the model's."""
    return {k: v for k, v in task.state_dict().items() if not k.startswith("model.")}
