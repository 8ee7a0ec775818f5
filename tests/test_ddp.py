"""Both training stages under torchrun with two CPU processes (gloo): the steps run, and the
ranks' weights agree after them although each rank saw other images (two steps: DDP
notices parameters that got no gradient when the next step begins)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

WORKER = Path(__file__).with_name("ddp_worker.py")
COMMON = ["model=vitr-tiny-test", "pool_size=24", "render_size=64", "batch_size=4", "max_steps=2",
          "eval_every=0", "workers=1", "device=cpu", "threads=1", "in_batch_negatives=2"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(out: Path, *options: str) -> None:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), str(WORKER),
           *COMMON, f"out={out}", *options]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]


def _agree_and_moved(out: Path) -> None:
    before = [load_file(str(out / f"rank{r}-before.safetensors")) for r in (0, 1)]
    after = [load_file(str(out / f"rank{r}-after.safetensors")) for r in (0, 1)]
    assert before[0].keys() == after[1].keys() and after[0]
    for name in after[0]:
        torch.testing.assert_close(before[0][name], before[1][name])   # one initialisation
        torch.testing.assert_close(after[0][name], after[1][name])     # gradients were averaged
    assert any(not torch.equal(before[0][n], after[0][n]) for n in after[0])   # the step did something


@pytest.mark.timeout(600)
def test_both_stages_under_torchrun(tmp_path):
    _torchrun(tmp_path / "clip", "stage=clip")
    _agree_and_moved(tmp_path / "clip")
    _torchrun(tmp_path / "head", "stage=head", f"init={tmp_path / 'clip' / 'last'}",
              "attr_weight=0")   # the probe is off: nothing of it may wait for gradients
    _agree_and_moved(tmp_path / "head")
