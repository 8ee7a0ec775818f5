"""The reliability suite (``pytest -m slow``; ``.ci/run`` runs it): SIGKILL during add, delete and an
index rebuild, then reopen and check counts and ids; a real full disk (a small tmpfs made for the
test); the memory bound of ingest. The mixed bad-item batch and the misbehaving HTTP server are in
test_bad_items.py and test_urls.py (the default suite)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import vitr_qdrant as vq
from vitr_qdrant.connectors import CollectionSpec, create_backend, point_id

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent


def child(code: str, *args: str) -> subprocess.Popen:
    """A Python process running ``code`` (dedented) with ``args``; its stdout is a pipe of JSON lines."""
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)


def read_until(proc: subprocess.Popen, n_lines: int, timeout: float = 240) -> list[dict]:
    """The first ``n_lines`` JSON lines of ``proc`` (or all, if it ends first)."""
    lines, end = [], time.monotonic() + timeout
    while len(lines) < n_lines and time.monotonic() < end:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(json.loads(line))
    return lines


def kill(proc: subprocess.Popen) -> list[dict]:
    """SIGKILL ``proc``; the JSON lines it wrote before dying."""
    proc.send_signal(signal.SIGKILL)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    return [json.loads(line) for line in out.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tiny_model):
    from vitr_qdrant.encoders import save_model

    return str(save_model(tiny_model, tmp_path_factory.mktemp("model")))


def images(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (40, 48, 3), dtype=np.uint8) for _ in range(n)]


ADD = """
    import json, sys
    import numpy as np
    import vitr_qdrant as vq
    rng = np.random.default_rng(0)
    items = [rng.integers(0, 256, (40, 48, 3), dtype=np.uint8) for _ in range(int(sys.argv[3]))]
    with vq.VitrCollection("k", path=sys.argv[1], model=vq.load_model(sys.argv[2])) as col:
        for start in range(0, len(items), 8):
            report = col.add_images(items[start:start + 8], batch_size=4, progress=False)
            print(json.dumps({"ids": report.ids, "added": report.added}), flush=True)
"""


@pytest.mark.parametrize("after", [1, 4, 9])
def test_sigkill_during_add_loses_nothing_acknowledged(tmp_path, model_dir, after):
    n = 200
    proc = child(ADD, str(tmp_path), model_dir, str(n))
    done = read_until(proc, after)
    acked = [i for line in done + kill(proc) for i in line["ids"]]
    assert len(acked) >= 8 * after
    model = vq.load_model(model_dir)
    with vq.VitrCollection("k", path=tmp_path, model=model) as col:
        stored = [p.id for p in col._store.iter_points()]
        assert len(stored) == len(set(stored)) == len(col) >= len(acked)       # nothing doubled
        assert set(acked) <= set(stored)                                        # nothing acknowledged lost
        assert all(point_id(sha256=r.payload["sha256"]) == r.id for r in col.get(stored))   # whole points
        report = col.add_images(images(n), progress=False)                      # the rerun resumes
        assert report.added + report.skipped == n and report.failed == [] and len(col) == n
        assert report.skipped >= len(acked)


DELETE = """
    import json, sys
    from vitr_qdrant.connectors import CollectionSpec, create_backend, point_id
    with create_backend(path=sys.argv[1]) as b:
        b.open_collection(CollectionSpec("d", 8, 4))
        for start in range(0, 2000, 20):
            b.delete(list(range(start, start + 20)))
            print(json.dumps({"deleted": [start, start + 20]}), flush=True)
"""


def points(start: int, n: int, dim: int = 8, regions: int = 4, rdim: int = 4):
    from vitr_qdrant.connectors import StoredPoint, make_payload

    rng = np.random.default_rng(start)
    return [StoredPoint(i, rng.normal(size=dim), rng.normal(size=(regions, rdim)), make_payload(uri=f"p{i}"))
            for i in range(start, start + n)]


def test_sigkill_during_delete(tmp_path):
    with create_backend(path=tmp_path) as b:
        b.open_collection(CollectionSpec("d", 8, 4))
        for start in range(0, 2000, 500):
            b.upsert(points(start, 500))
    proc = child(DELETE, str(tmp_path))
    done = read_until(proc, 10)
    gone = [i for line in done + kill(proc) for i in range(*line["deleted"])]
    with create_backend(path=tmp_path) as b:
        b.open_collection(CollectionSpec("d", 8, 4))
        left = {p.id for p in b.iter_points()}
        assert not left & set(gone) and len(left) == b.count() <= 2000 - len(gone)
        assert set(range(gone[-1] + 21, 2000)) <= left          # nothing after the batch in flight went


REBUILD = """
    import json, sys
    import numpy as np
    from vitr_qdrant.connectors import CollectionSpec, StoredPoint, create_backend
    rng = np.random.default_rng(1)
    with create_backend(path=sys.argv[1], optimize_every=0) as b:
        b.open_collection(CollectionSpec("r", 128, 64))
        for start in range(0, 12000, 1000):
            b.upsert([StoredPoint(i, rng.normal(size=128), rng.normal(size=(8, 64)))
                      for i in range(start, start + 1000)])
        print(json.dumps({"acked": 12000}), flush=True)
        b.optimize()
        print(json.dumps({"rebuilt": True}), flush=True)
"""


def test_sigkill_during_a_rebuild(tmp_path):
    proc = child(REBUILD, str(tmp_path))
    assert read_until(proc, 1) == [{"acked": 12000}]
    time.sleep(0.5)    # inside optimize(): it takes seconds at this size
    rest = kill(proc)
    assert rest == [], "the rebuild ended before the kill: make it longer"
    with create_backend(path=tmp_path) as b:
        b.open_collection(CollectionSpec("r", 128, 64))
        assert b.count() == 12000 and {p.id for p in b.iter_points()} == set(range(12000))
        b.optimize()                                                             # and a rebuild completes
        assert b.count() == 12000


FULL = """
    import json, sys
    import numpy as np
    import vitr_qdrant as vq
    from vitr_qdrant.connectors import CollectionSpec, StoredPoint, create_backend, search
    path, model_dir = sys.argv[1], sys.argv[2]
    rng = np.random.default_rng(0)
    out, acked = {}, 0
    b = create_backend(path=path)
    b.open_collection(CollectionSpec("full", 64, 64))
    try:
        while True:
            b.upsert([StoredPoint(acked + i, rng.normal(size=64), rng.normal(size=(64, 64))) for i in range(64)])
            acked += 64
    except vq.StoreFullError as exc:
        out["first_error"] = str(exc)
    out["acked"] = acked
    b.close()
    b.open_collection(CollectionSpec("full", 64, 64))                # reopens in the same process
    out["count"] = b.count()
    out["hits"] = len(search(b, rng.normal(size=64), rng.normal(size=(3, 64)), limit=5))
    try:
        b.upsert([StoredPoint(10**6, rng.normal(size=64), rng.normal(size=(64, 64)))])
    except vq.StoreFullError:
        out["still_full"] = True
    b.close()
    with vq.VitrCollection("imgs", path=path, model=vq.load_model(model_dir)) as col:   # the library's path
        try:
            while True:
                col.add_images([rng.integers(0, 256, (40, 48, 3), dtype=np.uint8) for _ in range(32)], progress=False)
        except vq.StoreFullError as exc:
            out["images"], out["images_error"] = len(col), type(exc).__name__
    print(json.dumps(out), flush=True)
"""

PROBE = """
    import json, sys
    import vitr_qdrant as vq
    from vitr_qdrant.connectors import CollectionSpec, create_backend, point_id
    b = create_backend(path=sys.argv[1])
    try:
        b.open_collection(CollectionSpec("full", 64, 64))
        print(json.dumps({"opened": b.count()}))
        b.close()
    except vq.StoreFullError as exc:
        print(json.dumps({"refused": str(exc)}))
"""


@pytest.fixture()
def small_disk(tmp_path):
    """A 512 MB tmpfs mounted for the test (needs root, or CAP_SYS_ADMIN)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a small filesystem for the full-disk test (needs root): {res.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_full_disk_is_a_store_full_error_never_a_sigbus(small_disk, model_dir):
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(FULL), str(small_disk / "store"), model_dir],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, f"exit {proc.returncode} (-7 is SIGBUS): {proc.stderr[-2000:]}"
    out = json.loads(proc.stdout)
    assert out["acked"] >= 640 and "nothing was written" in out["first_error"]
    assert out["count"] == out["acked"] and out["hits"] == 5 and out["still_full"]
    assert out["images_error"] == "StoreFullError"
    # the disk filled up by someone else: opening refuses or works, it never crashes
    free = os.statvfs(small_disk)
    with open(small_disk / "filler", "wb") as f:
        f.write(b"\0" * (free.f_bavail * free.f_frsize))
    probe = subprocess.run([sys.executable, "-c", textwrap.dedent(PROBE), str(small_disk / "store")],
                           capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert probe.returncode == 0, f"exit {probe.returncode} (-7 is SIGBUS): {probe.stderr[-2000:]}"
    said = json.loads(probe.stdout)
    assert said.get("opened") == out["acked"] or "opening collection 'full'" in said["refused"]
    (small_disk / "filler").unlink()
    with create_backend(path=small_disk / "store") as b:
        b.open_collection(CollectionSpec("full", 64, 64))
        assert b.count() == out["acked"]


MEMORY = """
    import json, sys
    import numpy as np
    import vitr_qdrant as vq

    def rss(field):   # VmRSS now, or VmHWM: the peak since clear_refs (getrusage counts a forked parent's pages)
        with open("/proc/self/status") as f:
            return int(next(line for line in f if line.startswith(field + ":")).split()[1]) * 1024

    files = sys.argv[3:]
    with vq.VitrCollection("m", path=sys.argv[1], model=vq.load_model(sys.argv[2]),
                           settings={"workers": 2, "batch_size": len(files)}) as col:
        col.add_images(np.zeros((1, 40, 40, 3), np.uint8), progress=False)      # warm: model, store, threads
        before = rss("VmRSS")
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        report = col.add_images(files, progress=False)
        peak = rss("VmHWM")
    print(json.dumps({"added": report.added, "failed": report.failed, "growth": peak - before}))
"""


def test_ingest_memory_is_bounded_by_the_batch_not_the_originals(tmp_path, model_dir):
    """Eight 24-megapixel images (about 100 MB each decoded) in one batch: the batch keeps them
    reduced, so peak RSS grows by what two workers decode at once, not by eight originals."""
    from PIL import Image

    y, x = np.mgrid[0:4000, 0:6000]
    files = []
    for i in range(4):
        img = Image.fromarray(np.stack([(x + 97 * i) % 256, (y + 31 * i) % 256, (x + y) % 256], -1).astype(np.uint8))
        for fmt in ("png", "jpg"):
            files.append(tmp_path / f"big{i}.{fmt}")
            img.save(files[-1], compress_level=1) if fmt == "png" else img.save(files[-1], quality=80)
    del img, x, y
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(MEMORY), str(tmp_path / "store"), model_dir,
                           *map(str, files)], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert out["added"] == 8 and out["failed"] == []
    decoded = 6000 * 4000 * 4                       # one image decoded at full size, 4 bytes a pixel
    assert out["growth"] < 2 * 2 * decoded, out     # two workers, and a copy each; eight originals: > 8x
