"""Peak memory of ingest: one batch of large PNGs and JPEGs through ``add_images`` (JSON out).

    python benchmarks/bench_memory.py --n 12 --width 6000 --height 4000 --out memory.json

Writes ``--n`` large images (half PNG, half JPEG; smooth content, so the files are small and the
decoded images large), then ingests them as one batch in a fresh process with the bundled model
(or ``--model``) and reports its RSS before the batch (model loaded, store open, one small image
ingested) and the peak during it (Linux ``/proc``: ``VmHWM`` after ``clear_refs``), the growth,
what the originals would take decoded, and the bound the README states (``workers`` images
decoded at full size at once, 4 bytes a pixel, each with one copy, plus the batch of reduced images).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from common import emit  # benchmarks/common.py


def write_images(folder: Path, n: int, width: int, height: int) -> list[Path]:
    """``n`` distinct smooth images, PNG and JPEG by turns."""
    folder.mkdir(parents=True, exist_ok=True)
    y, x = np.mgrid[0:height, 0:width]
    files = []
    for i in range(n):
        rgb = np.stack([(x + 97 * i) % 256, (y + 31 * i) % 256, (x // 2 + y // 3 + 13 * i) % 256], -1)
        img = Image.fromarray(rgb.astype(np.uint8))
        path = folder / f"big{i:02d}.{'png' if i % 2 == 0 else 'jpg'}"
        img.save(path, compress_level=1) if path.suffix == ".png" else img.save(path, quality=85)
        files.append(path)
    return files


def rss(field: str) -> int:
    """``VmRSS`` (now) or ``VmHWM`` (the peak since :func:`reset_peak`) of this process, in bytes.
    ``getrusage``'s peak would not do: after a fork and exec it still counts the parent's pages."""
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith(field + ":"))
    return int(line.split()[1]) * 1024


def reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")   # Linux: the peak RSS starts again from the current RSS


def measure(store: str, model: str | None, workers: int, files: list[str]) -> dict[str, Any]:
    """Runs in the fresh process: ingest ``files`` as one batch; RSS before it and its peak."""
    import vitr_qdrant as vq

    settings = {"workers": workers, "batch_size": len(files)}
    with vq.VitrCollection("memory", path=store, model=vq.load_model(model), settings=settings) as col:
        col.add_images(np.zeros((1, 48, 48, 3), np.uint8), progress=False)
        before = rss("VmRSS")
        reset_peak()
        report = col.add_images(files, progress=False)
        after = rss("VmHWM")
        fit = col.model.backbone.image_size
    return {"added": report.added, "failed": report.failed, "model_input": fit,
            "rss_before_mb": round(before / 2**20), "rss_peak_mb": round(after / 2**20),
            "growth_mb": round((after - before) / 2**20)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=12, help="images in the batch (half PNG, half JPEG)")
    ap.add_argument("--width", type=int, default=6000)
    ap.add_argument("--height", type=int, default=4000)
    ap.add_argument("--workers", type=int, default=4, help="reader threads (Settings.workers; default 4)")
    ap.add_argument("--model", help="model name or directory (default: the bundled model)")
    ap.add_argument("--workdir", type=Path, help="scratch directory (default: a temp dir)")
    ap.add_argument("--out", type=Path, help="also write the JSON here")
    ap.add_argument("--measure", nargs="+", help=argparse.SUPPRESS)   # the fresh process: STORE FILE...
    a = ap.parse_args()
    if a.measure:
        print(json.dumps(measure(a.measure[0], a.model, a.workers, a.measure[1:])))
        return
    root = Path(tempfile.mkdtemp(prefix="vitr-bench-memory-", dir=a.workdir))
    try:
        files = write_images(root / "images", a.n, a.width, a.height)
        cmd = [sys.executable, __file__, "--workers", str(a.workers), "--measure", str(root / "store"),
               *map(str, files)] + (["--model", a.model] if a.model else [])
        measured = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        file_mb = sum(p.stat().st_size for p in files) / 2**20
    finally:
        shutil.rmtree(root, ignore_errors=True)
    decoded_mb = a.width * a.height * 4 / 2**20   # PIL keeps RGB as 4 bytes a pixel
    result = {"benchmark": "memory", "images": a.n, "size": f"{a.width}x{a.height}", "files_mb": round(file_mb, 1),
              "workers": a.workers, "cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
              **measured, "originals_decoded_mb": round(a.n * decoded_mb),
              "bound_mb": round(2 * a.workers * decoded_mb + a.n * (4 * 2 * measured["model_input"]) ** 2 * 4 / 2**20)}
    emit(result, a.out)


if __name__ == "__main__":
    main()
