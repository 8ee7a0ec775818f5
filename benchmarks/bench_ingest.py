"""Ingest throughput end to end: image files on disk -> decode -> encode -> embedded store (JSON out).

    python benchmarks/bench_ingest.py --device cuda --model vitr-ViT-B-32 --n 20000 --batch-size 256
    python benchmarks/bench_ingest.py --device cpu --model vitr-scenes-s --n 500
    python benchmarks/bench_ingest.py --device cpu --images scenes --model vitr-objects-s --weights load \
        --n 2000 --batch-size 32 --repeat 3

Writes ``--n`` images to a temp dir, then times ``VitrCollection.add_images`` on them (after a
warm-up batch, into a fresh collection each of ``--repeat`` times). ``--images jpeg``: synthetic
photo-like JPEGs (``--width`` x ``--height``, each unique); ``--images scenes``: Object Scenes of
the evaluation seeds rendered at ``--size`` px, as PNG files. With CUDA the automatic path decodes
JPEGs on the GPU (nvJPEG); ``--decoder pil`` forces the CPU decoders for comparison. By default
the model is built with random weights (``create_model(..., load_pretrained=False)``: no download;
speed does not depend on the weights); ``--weights load`` loads it (``load_model``: the bundled
models ship theirs). ``stages`` (JPEGs only) times each stage alone on the same data: device
decode + resize, encode, store upsert, so a slow end-to-end number names its bottleneck.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

import vitr_qdrant as vq
from vitr_qdrant.connectors import CollectionSpec, StoredPoint, create_backend, make_payload
from vitr_qdrant.ingest.decoders import choose_decoder, decode_jpegs
from vitr_qdrant.encoders import VitrModel
from vitr_qdrant.encoders.data.worlds import get_world
from vitr_qdrant.encoders.evaluation import EVAL_SEED
from vitr_qdrant.encoders.images import preprocess_tensors
from vitr_qdrant.sources.inputs import iter_sources

from common import emit  # benchmarks/common.py

N_BASES = 32


def base_images(width: int, height: int, seed: int = 0) -> list[np.ndarray]:
    """Smooth random colour fields with mild noise: JPEG sizes close to photos', not to noise's."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(N_BASES):
        coarse = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize((width, height), Image.BICUBIC)
        arr = np.asarray(coarse, np.int16) + rng.normal(0, 6, (height, width, 3)).astype(np.int16)
        out.append(np.clip(arr, 0, 255).astype(np.uint8))
    return out


def write_jpegs(folder: Path, n: int, width: int, height: int, workers: int, start: int = 0) -> list[Path]:
    """``n`` unique JPEGs: a base image with the item's number drawn as a corner bit pattern."""
    bases = base_images(width, height)
    folder.mkdir(parents=True, exist_ok=True)

    def one(i: int) -> Path:
        arr = bases[i % N_BASES].copy()
        for bit in range(24):   # 24 8x8 blocks, black or white: the number in binary
            arr[:8, 8 * bit:8 * bit + 8] = 255 * ((i >> bit) & 1)
        path = folder / f"{i:07d}.jpg"
        Image.fromarray(arr).save(path, "JPEG", quality=90)
        return path

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, range(start, start + n)))


def write_scenes(folder: Path, n: int, size: int, workers: int, start: int = 0) -> list[Path]:
    """``n`` Object Scenes (the evaluation seeds, ``test-iid``) rendered at ``size`` px, as PNG files."""
    world = get_world("object-scenes")
    folder.mkdir(parents=True, exist_ok=True)

    def one(k: int) -> Path:
        path = folder / f"{k:07d}.png"
        if path.is_file():   # kept by an earlier run (--files): the same scene
            return path
        world.render(world.first_scene(EVAL_SEED + k, "test-iid"), size).save(path, "PNG")
        return path

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, range(start, start + n)))


def time_stages(model: VitrModel, files: list[Path], batch: int, store_dir: Path) -> dict[str, float]:
    """Images per second of each stage alone: device decode + resize, encode, store upsert."""
    bb, out = model.backbone, {}
    data = [bytearray(p.read_bytes()) for p in files]
    t0 = time.perf_counter()
    for i in range(0, len(data), batch):
        frames = decode_jpegs(data[i:i + batch], model.device)
        px = preprocess_tensors(frames, bb.image_size, bb.image_mean, bb.image_std)
        px[0, 0, 0, 0].item()   # waits for the device
    out["decode_resize_images_per_s"] = len(data) / (time.perf_counter() - t0)
    n_batches = max(1, len(data) // len(px))
    t0 = time.perf_counter()
    for _ in range(n_batches):
        emb = model.encode_pixels(px)   # returns numpy: waits for the device
    out["encode_images_per_s"] = n_batches * len(px) / (time.perf_counter() - t0)
    g, r = emb.global_vectors[0], emb.region_vectors[0]
    points = [StoredPoint(i, g, r, make_payload(uri=str(p), sha256=f"{i:064x}", width=640, height=480))
              for i, p in enumerate(files)]
    with create_backend(path=store_dir) as store:
        store.open_collection(CollectionSpec("stages", global_dim=len(g), region_dim=r.shape[1]))
        t0 = time.perf_counter()
        for i in range(0, len(points), batch):
            store.upsert(points[i:i + batch])
        out["store_upsert_images_per_s"] = len(points) / (time.perf_counter() - t0)
    return {k: round(v, 1) for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", choices=("cuda", "cpu"), default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--model", default="vitr-ViT-B-32", help="registered model name (random weights)")
    ap.add_argument("--weights", choices=("random", "load"), default="random",
                    help="random weights (create_model), or the model's own (load_model)")
    ap.add_argument("--images", choices=("jpeg", "scenes"), default="jpeg",
                    help="synthetic photo-like JPEGs, or rendered Object Scenes as PNG files")
    ap.add_argument("--n", type=int, default=2000, help="images to ingest")
    ap.add_argument("--width", type=int, default=640, help="JPEG width")
    ap.add_argument("--height", type=int, default=480, help="JPEG height")
    ap.add_argument("--size", type=int, default=256, help="side of the rendered scenes")
    ap.add_argument("--repeat", type=int, default=1, help="timed ingests, each into a fresh collection")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 4, help="reader threads")
    ap.add_argument("--decoder", choices=("auto", "pil", "torchvision"), default="auto")
    ap.add_argument("--no-stages", action="store_true", help="skip the per-stage timings")
    ap.add_argument("--workdir", type=Path, help="scratch directory (default: a temp dir)")
    ap.add_argument("--files", type=Path, help="keep the rendered scenes here and reuse them in later runs")
    ap.add_argument("--out", type=Path, help="also write the JSON here")
    a = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="vitr-bench-ingest-", dir=a.workdir))
    try:
        result = run(a, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    emit(result, a.out)


def write_images(a: argparse.Namespace, root: Path) -> tuple[list[Path], list[Path], str]:
    """The files to ingest, the warm-up files and what they are."""
    if getattr(a, "images", "jpeg") == "scenes":
        size, kept = getattr(a, "size", 256), getattr(a, "files", None)
        folder = kept / f"scenes-{size}" if kept else root
        return (write_scenes(folder / "images", a.n, size, a.workers),
                write_scenes(folder / "warmup", min(a.n, 2 * a.batch_size), size, a.workers, start=a.n),
                f"Object Scenes {size}x{size} PNG")
    return (write_jpegs(root / "images", a.n, a.width, a.height, a.workers),
            write_jpegs(root / "warmup", min(a.n, 2 * a.batch_size), a.width, a.height, a.workers, start=a.n),
            f"{a.width}x{a.height} JPEG q90")


def bench_model(a: argparse.Namespace) -> VitrModel:
    """``--model`` with its own weights (``--weights load``) or random ones."""
    if getattr(a, "weights", "random") == "load":
        return vq.load_model(a.model, device=a.device)
    model = vq.create_model(a.model, device=a.device, load_pretrained=False)
    model.head_trained = True
    return model


def setup(a: argparse.Namespace, kind: str, files: list[Path]) -> dict[str, Any]:
    """What was measured, on what."""
    return {
        "benchmark": "ingest", "model": a.model, "device": a.device,
        "weights": "loaded" if getattr(a, "weights", "random") == "load" else "random (speed only)",
        "gpu": torch.cuda.get_device_name() if a.device == "cuda" else None,
        "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "processor": platform.processor() or platform.machine(), "torch": torch.__version__, "n": a.n,
        "image": kind, "mean_file_kb": round(float(np.mean([p.stat().st_size for p in files[:200]])) / 1024, 1),
        "batch_size": a.batch_size, "workers": a.workers, "decoder": a.decoder,
    }


def run(a: argparse.Namespace, root: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    files, warm, kind = write_images(a, root)
    written_s = time.perf_counter() - t0
    model = bench_model(a)
    settings = {"batch_size": a.batch_size, "workers": a.workers, "jpeg_decoder": a.decoder}
    runs = []
    for r in range(getattr(a, "repeat", 1)):
        with vq.VitrCollection(f"bench{r}", path=root / "store", model=model, settings=settings) as col:
            col.add_images(warm, progress=False)   # CUDA context, cuDNN autotune, allocator, store files
            t0, c0 = time.perf_counter(), time.process_time()
            report = col.add_images(files, progress=False)
            runs.append((report, time.perf_counter() - t0, time.process_time() - c0))
            path = choose_decoder(model, col.settings, list(iter_sources(files[:1]))).name
    rates = [rep.added / seconds for rep, seconds, _ in runs]
    report, seconds, cpu = runs[int(np.argsort(rates)[len(rates) // 2])]   # the median run (the faster of two)
    out = {**setup(a, kind, files), "path": path,
           "images_per_s": round(report.added / seconds, 1), "seconds": round(seconds, 2),
           "runs_images_per_s": [round(x, 1) for x in rates],
           "cpu_ms_per_image": round(1000 * cpu / max(1, report.added), 2),   # every thread of the process
           "runs_cpu_ms_per_image": [round(1000 * c / max(1, rep.added), 2) for rep, _, c in runs],
           "added": report.added, "failed": len(report.failed), "files_write_s": round(written_s, 1)}
    if not a.no_stages and kind.endswith("JPEG q90"):   # the device path's stages
        out["stages"] = time_stages(model, files[: min(len(files), 8 * a.batch_size)], a.batch_size,
                                    root / "stages-store")
    return out


if __name__ == "__main__":
    main()
