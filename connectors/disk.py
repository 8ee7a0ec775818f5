"""Free disk space, checked before a local store writes.

The embedded engine writes through memory-mapped files that it makes sparse and fills as it
goes; on a full disk such a write is a SIGBUS that kills the process, not an error. So before
every write the store asks for the room the write needs plus a headroom, and refuses with
:class:`StoreFullError` before writing anything when the disk has less.

The headroom depends on the file system. On a disk (ext4, xfs, btrfs, APFS...) the holes of the
sparse files stay holes when a store is opened: the headroom is :data:`MARGIN`, so a store created
on a small disk reopens there (a 20-point store takes about 150 KB). On a memory file system
(tmpfs) opening a store fills its holes (measured: ~100 MB for a fresh store, whatever its size):
there the headroom is the holes plus :data:`WRITE_RESERVE` (the files a write may start), and a
store is created only where it could be opened again.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterable

from ..errors import StoreFullError

MARGIN = 16 * 2**20
"""Room kept free besides what an operation needs: file-system metadata, the engine's small files."""
ENGINE_FILE = 32 * 2**20
"""The step the engine grows by: a write-ahead-log segment, a vector chunk, a payload page."""
WRITE_RESERVE = MARGIN + 4 * ENGINE_FILE
"""Room kept free besides a write's data and the store's holes: the files the write may start."""
GROWTH = 4
"""Bytes on disk per byte of point data written: the segment, the write-ahead log, and slack."""


def point_bytes(vectors: Iterable[Any], payloads: Iterable[dict[str, Any]]) -> int:
    """The bytes of some points' data: their vectors (numpy arrays) and payloads (as JSON)."""
    return sum(v.nbytes for v in vectors) + sum(len(json.dumps(p, default=str)) for p in payloads)


def usage(root: Path) -> tuple[int, int]:
    """(bytes occupied on disk, bytes of holes) of the files under ``root``: the holes are what
    sparse files are long but do not occupy, and what the engine may fill without writing data."""
    occupied = holes = 0
    for dirpath, _, files in os.walk(root):
        for name in files:
            try:
                st = os.stat(os.path.join(dirpath, name))
            except OSError:   # removed meanwhile
                continue
            occupied += st.st_blocks * 512
            holes += max(0, st.st_size - st.st_blocks * 512)
    return occupied, holes


MEMORY_FILESYSTEMS = frozenset({"tmpfs", "ramfs", "shm", "devtmpfs"})
"""File systems without sparse files: opening a store fills the holes of its files."""


def fills_holes(where: Path) -> bool:
    """Whether ``where`` is on a memory file system (from ``/proc/mounts``; elsewhere: False)."""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return False
    target = str(_existing(where).resolve())
    best, kind = "", ""
    for line in mounts:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, fields[2]
    return kind in MEMORY_FILESYSTEMS


def headroom(cdir: Path, write: bool) -> int:
    """The room kept free besides what an operation on the store at ``cdir`` needs: :data:`MARGIN`
    on a disk; on a memory file system the holes of its files too (and :data:`WRITE_RESERVE` for a write)."""
    if not fills_holes(cdir):
        return MARGIN
    return usage(cdir)[1] + (WRITE_RESERVE if write else MARGIN)


def _existing(where: Path) -> Path:
    return next(p for p in (where, *where.parents) if p.exists())


def require_free(where: Path, needed: int, what: str) -> None:
    """Raise :class:`StoreFullError` unless the disk of ``where`` (or of its nearest existing
    parent) has ``needed`` bytes free; ``what`` names the write."""
    free = shutil.disk_usage(_existing(where)).free
    if free < needed:
        raise StoreFullError(
            f"{what} needs about {_mb(needed)} free on the disk of {where}, and {_mb(free)} are free: "
            f"nothing was written. Free some space there (or move the store elsewhere), then go on: "
            f"everything stored before is kept.")


def _mb(n: int) -> str:
    return f"{n / 2**20:,.0f} MB" if n >= 2**20 else f"{n / 1024:,.0f} KB"
