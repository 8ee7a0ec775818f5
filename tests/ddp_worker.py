"""Run the trainer's ``main`` under torchrun and record, per rank, the trainable parameters
before the first step and after the last (``OUT/rank{r}-before|after.safetensors``).

Not a test by itself: ``test_ddp.py`` starts it with ``torch.distributed.run``.
"""
from __future__ import annotations

import sys
from pathlib import Path

from safetensors.torch import save_file

from vitr_qdrant.encoders import train as T

_tasks: list = []
_wrap, _close = T.Dist.wrap, T.Dist.close


def _state(task) -> dict:
    return {f"{i}.{name}": p.detach().cpu().contiguous().clone()
            for i, (name, p) in enumerate(task.trainable())}


def _dump(rank: int, what: str, task) -> None:
    save_file(_state(task), str(Path(_out) / f"rank{rank}-{what}.safetensors"))


def wrap(self, task):
    _tasks.append(task)
    _dump(self.rank, "before", task)
    return _wrap(self, task)


def close(self):
    _dump(self.rank, "after", _tasks[-1])
    _close(self)


if __name__ == "__main__":
    _out = next(a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("out="))
    Path(_out).mkdir(parents=True, exist_ok=True)
    T.Dist.wrap, T.Dist.close = wrap, close
    T.main(sys.argv[1:])
