"""Scene rendering speed of each world: scenes per second on one core (target >= 300 at 128 px).

    python benchmarks/bench_render.py [--world relation-scenes|object-scenes] [--size 128]
        [--seconds 3] [--split train]

Prints one JSON object per world (both by default). Sampling and rendering run in this single
process; the per-core rate divides by the process's CPU time, so other jobs on a shared machine
do not lower it (the wall-clock rate is printed too). The first scene of each world is drawn
before timing starts (Object Scenes loads its sprite atlas then).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time

from vitr_qdrant.encoders.data.world import SPLITS
from vitr_qdrant.encoders.data.worlds import WORLD_NAMES, get_world

TARGET = 300


def measure(world_name: str, size: int, seconds: float, split: str) -> dict:
    world = get_world(world_name)
    if world.art_sets:  # load every sprite before timing
        for k in range(200):
            world.render(world.sample_scene(-1 - k, split), size)
    world.render(world.sample_scene(0, split), size)
    n, sample_cpu, render_cpu = 0, 0.0, 0.0
    wall, cpu = time.perf_counter(), time.process_time()
    while time.perf_counter() - wall < seconds:
        t0 = time.process_time()
        scene = world.sample_scene(n, split)
        t1 = time.process_time()
        world.render(scene, size)
        render_cpu += time.process_time() - t1
        sample_cpu += t1 - t0
        n += 1
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"benchmark": "render", "world": world.name, "size": size, "split": split,
            "scenes": n, "scenes_per_s_per_core": round(n / cpu, 1),
            "scenes_per_s_wall": round(n / wall, 1),
            "render_only_per_cpu_s": round(n / max(render_cpu, 1e-9), 1),
            "sample_only_per_cpu_s": round(n / max(sample_cpu, 1e-9), 1),
            "target_per_s_per_core": TARGET, "meets_target": n / cpu >= TARGET,
            "cpu": platform.processor() or platform.machine(), "cpus_visible": os.cpu_count()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--world", choices=WORLD_NAMES, action="append",
                    help="world to measure (repeatable; default both)")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--split", choices=SPLITS, default="train")
    args = ap.parse_args()
    for world in args.world or WORLD_NAMES:
        print(json.dumps(measure(world, args.size, args.seconds, args.split), indent=2))


if __name__ == "__main__":
    main()
