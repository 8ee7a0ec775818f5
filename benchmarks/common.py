"""Helpers the benchmark scripts share (no part of the library)."""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

from vitr_qdrant.encoders import load_model
from vitr_qdrant.errors import ModelNotFoundError


def disk_bytes(path: str | os.PathLike[str]) -> tuple[int, int]:
    """(allocated, apparent) bytes of every file under ``path``: what an embedded store takes."""
    alloc = apparent = 0
    for f in Path(path).rglob("*"):
        if f.is_file():
            st = f.stat()
            alloc += st.st_blocks * 512
            apparent += st.st_size
    return alloc, apparent


def run_model_benchmark(name: str, model: str | None, device: str | None, measure: Callable[[Any], dict],
                        out: Path | None = None) -> int:
    """Load ``model`` (exit status 2 with a hint when it is not found), run ``measure(model)``,
    add its wall time, print the JSON and also write it to ``out``: the tail of the model
    benchmarks' ``main``."""
    try:
        loaded = load_model(model, device=device)
    except ModelNotFoundError as exc:
        print(f"{name}: {exc}\n  pass --model NAME_OR_DIR", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    result = measure(loaded)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    emit(result, out)
    return 0


def emit(result: dict[str, Any], out: Path | None = None) -> None:
    """Print ``result`` as JSON, and also write it to ``out``."""
    text = json.dumps(result, indent=2)
    print(text)
    if out:
        Path(out).write_text(text + "\n")
