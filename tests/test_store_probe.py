"""The outside probe of the embedded store, row by row (issue 21): small disks, locks held by
forked children, dropped and garbage-collected collections, the message of a refused open, and
damage that went unnoticed. Each test failed before the change it names."""
from __future__ import annotations

import gc
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import vitr_qdrant as vq
from vitr_qdrant.connectors import CollectionSpec, create_backend
from vitr_qdrant.connectors import disk as disk_module

ROOT = Path(__file__).resolve().parents[1]


def run_python(code: str, *args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


# --- locks ------------------------------------------------------------------------------------
def test_a_collection_dropped_without_close_releases_its_lock(tmp_path, tiny_model, scene_files):
    col = vq.VitrCollection("dropped", path=tmp_path, model=tiny_model)
    col.add_images(scene_files[:2], progress=False)
    del col
    gc.collect()
    with vq.VitrCollection("dropped", path=tmp_path, model=tiny_model) as again:
        assert len(again) == 2


FORKS = """
    import os, sys, time
    from vitr_qdrant.connectors import CollectionSpec, create_backend
    b = create_backend(path=sys.argv[1])
    b.open_collection(CollectionSpec("c", 16, 8))
    child = os.fork()
    if child == 0:
        time.sleep(120)   # a worker that outlives its parent
        os._exit(0)
    print(child, flush=True)
    os._exit(0)           # the parent dies without closing
"""


def test_a_forked_child_does_not_keep_its_parents_lock(tmp_path):
    proc = run_python(FORKS, str(tmp_path), stdin=subprocess.DEVNULL)
    line = proc.stdout.readline()   # not communicate(): the child keeps the pipe open
    proc.wait(60)
    assert line.strip().isdigit(), proc.stderr.read()
    child = int(line)
    try:
        with create_backend(path=tmp_path) as b:
            b.open_collection(CollectionSpec("c", 16, 8))   # the parent is gone: so is the lock
            assert b.count() == 0
    finally:
        os.kill(child, signal.SIGKILL)


HOLDS = """
    import sys, time
    from vitr_qdrant.connectors import CollectionSpec, create_backend
    b = create_backend(path=sys.argv[1])
    b.open_collection(CollectionSpec("c", 16, 8))
    print("ready", flush=True)
    time.sleep(120)
"""


@pytest.fixture()
def holder(tmp_path):
    proc = run_python(HOLDS, str(tmp_path))
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
    yield proc
    proc.kill()
    proc.wait(10)


def test_a_refused_open_says_who_holds_the_store_and_what_to_do(tmp_path, holder):
    with pytest.raises(vq.StoreLockedError) as info:
        create_backend(path=tmp_path).open_collection(CollectionSpec("c", 16, 8))
    message = str(info.value)
    assert f"by process {holder.pid} (" in message and "vitr serve" in message and "for reading too" in message


def test_a_lock_kept_by_a_dead_openers_child_names_it_and_how_to_clear(tmp_path, holder):
    dead = subprocess.Popen(["true"])
    dead.wait()
    (tmp_path / "c" / ".lock").write_text(str(dead.pid))   # the opener's pid; the holder is another process
    with pytest.raises(vq.StoreLockedError) as info:
        create_backend(path=tmp_path).open_collection(CollectionSpec("c", 16, 8))
    message = str(info.value)
    assert f"process {dead.pid}, which opened it, has exited" in message
    assert f"by process {holder.pid}" in message and "fuser" in message


# --- small disks ------------------------------------------------------------------------------
def test_a_store_created_on_a_small_disk_reopens_there(tmp_path, tiny_model, scene_files, monkeypatch):
    if disk_module.fills_holes(tmp_path):
        pytest.skip("the temporary directory is on a memory file system")
    real = disk_module.shutil.disk_usage
    monkeypatch.setattr(disk_module.shutil, "disk_usage", lambda where: real(where)._replace(free=40 * 2**20))
    with vq.VitrCollection("small", path=tmp_path, model=tiny_model) as col:
        assert col.add_images(scene_files, progress=False).added == 6
    with vq.VitrCollection("small", path=tmp_path, model=tiny_model) as col:
        assert len(col) == 6 and col.search("red circle", limit=2)


def mount(kind: str, target: Path, size_mb: int) -> None:
    target.mkdir()
    if kind == "tmpfs":
        cmd = ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(target)]
    else:
        image = target.with_suffix(".img")
        subprocess.run(["truncate", "-s", f"{size_mb}M", str(image)], check=True)
        made = subprocess.run(["mkfs.ext4", "-q", str(image)], capture_output=True, text=True)
        if made.returncode != 0:
            pytest.skip(f"no mkfs.ext4: {made.stderr.strip()}")
        cmd = ["mount", "-o", "loop", str(image), str(target)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a small {kind} for this test (needs root): {res.stderr.strip()}")


@pytest.mark.parametrize("kind, size_mb", [("tmpfs", 40), ("ext4", 100)])
def test_real_small_file_systems(tmp_path, tiny_model, scene_files, kind, size_mb):
    """A real 100 MB ext4 keeps and reopens a store; on a 40 MB tmpfs (where opening fills the
    store's sparse files, ~100 MB) the store is refused when created, never left unopenable."""
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    disk = tmp_path / "disk"
    mount(kind, disk, size_mb)
    try:
        if kind == "tmpfs":
            with pytest.raises(vq.StoreFullError, match="to be opened again"):
                vq.VitrCollection("small", path=disk, model=tiny_model)
            assert not (disk / "small" / "shard").exists()
            return
        with vq.VitrCollection("small", path=disk, model=tiny_model) as col:
            assert col.add_images(scene_files, progress=False).added == 6
        with vq.VitrCollection("small", path=disk, model=tiny_model) as col:
            assert len(col) == 6
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


# --- damage -----------------------------------------------------------------------------------
def hundred_points(path: Path) -> Path:
    """A store of 100 points written in 10 upserts; returns its segments directory."""
    import numpy as np

    from vitr_qdrant.connectors import StoredPoint

    rng = np.random.default_rng(0)
    with create_backend(path=path) as b:
        b.open_collection(CollectionSpec("c", 16, 8))
        for start in range(0, 100, 10):
            b.upsert([StoredPoint(i, rng.normal(size=16), rng.normal(size=(3, 8))) for i in range(start, start + 10)])
    return path / "c" / "shard" / "segments"


def vector_files(segments: Path) -> list[Path]:
    return [p for p in segments.rglob("*") if p.is_file() and "vector_storage" in str(p) and p.stat().st_size > 0]


def damage_deleted_segment(segments: Path) -> None:
    shutil.rmtree(next(segments.iterdir()))


def damage_zeroed_vectors(segments: Path) -> None:
    for p in vector_files(segments):
        p.write_bytes(b"\0" * p.stat().st_size)


def damage_truncated_vectors(segments: Path) -> None:
    for p in vector_files(segments):
        if p.name.startswith("chunk_"):
            os.truncate(p, 200)


@pytest.mark.parametrize("damage, says", [(damage_deleted_segment, "holds 10 points, but 100 were stored"),
                                          (damage_zeroed_vectors, "vectors of point 0 are missing or damaged"),
                                          (damage_truncated_vectors, "is damaged")])
def test_a_damaged_store_is_said_not_opened(tmp_path, damage, says):
    damage(hundred_points(tmp_path))
    with pytest.raises(vq.StoreCorruptError, match=says) as info:
        create_backend(path=tmp_path).open_collection(CollectionSpec("c", 16, 8))
    assert "Restore" in str(info.value) and "vitr index" in str(info.value)
    if damage is not damage_truncated_vectors:   # the engine's failed load keeps its WAL until its error is collected
        with pytest.raises(vq.StoreCorruptError):   # the lock went with the error: the same answer again
            create_backend(path=tmp_path).open_collection(CollectionSpec("c", 16, 8))


def test_the_way_back_keeps_what_is_left(tmp_path):
    import json

    damage_deleted_segment(hundred_points(tmp_path))
    meta = tmp_path / "c" / "vitr_collection.json"
    record = json.loads(meta.read_text())
    del record["points"]   # what the message says to do to keep the points left
    meta.write_text(json.dumps(record))
    with create_backend(path=tmp_path) as b:
        b.open_collection(CollectionSpec("c", 16, 8))
        assert b.count() == 10


def test_a_write_cut_short_is_no_damage(tmp_path, monkeypatch):
    """A crash between the sidecar's record and the end of a write leaves a count in the recorded range."""
    import numpy as np

    from vitr_qdrant.connectors import StoredPoint
    from vitr_qdrant.connectors import edge

    hundred_points(tmp_path)
    real = edge._record_points
    calls = []

    def crash_after_first(meta, low, high):
        calls.append((low, high))
        if len(calls) == 2:
            raise KeyboardInterrupt   # the process dies after the points were written, before the count
        real(meta, low, high)

    monkeypatch.setattr(edge, "_record_points", crash_after_first)
    b = create_backend(path=tmp_path)
    b.open_collection(CollectionSpec("c", 16, 8))
    with pytest.raises(KeyboardInterrupt):
        b.upsert([StoredPoint(1000 + i, np.ones(16), np.ones((2, 8))) for i in range(5)])
    b.close()
    monkeypatch.undo()
    assert calls[0] == (100, 105)
    with create_backend(path=tmp_path) as b:
        b.open_collection(CollectionSpec("c", 16, 8))
        assert b.count() == 105


# --- leftovers of a killed optimize -----------------------------------------------------------
def test_segments_a_killed_optimize_was_building_are_removed_on_open(tmp_path):
    hundred_points(tmp_path)
    builder = tmp_path / "c" / "shard" / "temp_segments" / "segment_builder_x"
    (builder / "vector_storage").mkdir(parents=True)
    (builder / "vector_storage" / "chunk_0.mmap").write_bytes(b"\1" * 4096)
    with create_backend(path=tmp_path) as b:
        b.open_collection(CollectionSpec("c", 16, 8))
        assert b.count() == 100
    assert not builder.exists()


OPTIMIZE = """
    import sys
    import numpy as np
    from vitr_qdrant.connectors import CollectionSpec, StoredPoint, create_backend
    b = create_backend(path=sys.argv[1], optimize_every=0)
    b.open_collection(CollectionSpec("c", 128, 64))
    if sys.argv[2] == "fill":
        rng = np.random.default_rng(0)
        for s in range(0, 20000, 1000):
            b.upsert([StoredPoint(i, rng.normal(size=128), rng.normal(size=(8, 64))) for i in range(s, s + 1000)])
    else:
        print("optimizing", flush=True)
        b.optimize()
    b.close()
"""


@pytest.mark.slow
def test_a_killed_optimize_leaves_no_second_copy(tmp_path):
    subprocess.run([sys.executable, "-c", textwrap.dedent(OPTIMIZE), str(tmp_path), "fill"], cwd=ROOT, check=True,
                   timeout=300)
    clean = disk_module.usage(tmp_path / "c")[0]
    proc = run_python(OPTIMIZE, str(tmp_path), "optimize")
    temp = tmp_path / "c" / "shard" / "temp_segments"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and disk_module.usage(temp)[0] < clean // 2:
        time.sleep(0.2)
    proc.kill()
    proc.wait(30)
    assert disk_module.usage(temp)[0] >= clean // 2, "the optimize never got far enough to leave a copy"
    with create_backend(path=tmp_path, optimize_every=0) as b:
        b.open_collection(CollectionSpec("c", 128, 64))
        assert b.count() == 20000
    assert disk_module.usage(tmp_path / "c")[0] < 1.2 * clean
