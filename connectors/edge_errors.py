"""The embedded engine's errors, said as ours: which collection, what is wrong, what to do.

The engine raises plain ``Exception`` s whose text names its internals (``Can't init WAL ...
Illegal segment header``, ``Gridstore IO error``); :class:`GuardedShard` turns those of a damaged
store into :class:`StoreCorruptError`, a full disk into :class:`StoreFullError` and a shard open
elsewhere into :class:`StoreLockedError`, and lets the others through.
"""
from __future__ import annotations

import errno
import re
from pathlib import Path
from typing import Any, Callable

from ..errors import StoreCorruptError, StoreError, StoreFullError, StoreLockedError, VitrError

_DAMAGE_RE = re.compile(r"service runtime error|io error|gridstore|wal|segment|deseriali[sz]|mmap|tracker|"
                        r"no such file|unexpected end|out of bounds", re.IGNORECASE)


def engine_error(exc: Exception, collection: str, where: Path, opening: bool) -> Exception:
    """Our error for an engine error ``exc`` about ``collection`` (stored at ``where``); ``exc``
    itself when it is none of ours. Any failure while ``opening`` a shard that is not a lock, a
    full disk or a permission is damage."""
    text = " ".join(str(exc).split())
    if isinstance(exc, VitrError):
        return exc
    if getattr(exc, "errno", None) == errno.ENOSPC or "No space left" in text:
        return StoreFullError(f"collection {collection!r} at {where}: the disk is full ({text}). Free some "
                              f"space there, then go on: everything stored before is kept.")
    if "WouldBlock" in text:
        return StoreLockedError(f"the embedded store at {where} is already open elsewhere")
    if "Permission denied" in text:
        return StoreError(f"collection {collection!r} at {where} cannot be read: {text}")
    if opening or _DAMAGE_RE.search(text):
        return StoreCorruptError(
            f"collection {collection!r} at {where} is damaged and cannot be read: {text}. Restore {where} "
            f"from a backup, or move it away and rebuild the collection with `vitr index` (the images are "
            f"read again; ids from content hashes come back the same).")
    return exc


class GuardedShard:
    """An engine shard whose every call raises :func:`engine_error` s."""

    def __init__(self, shard: Any, collection: str, where: Path):
        self._shard, self._collection, self._where = shard, collection, where

    def __getattr__(self, attr: str) -> Callable[..., Any]:
        fn = getattr(self._shard, attr)

        def call(*args: Any, **kwargs: Any) -> Any:
            return guarded(fn, self._collection, self._where, False, *args, **kwargs)

        return call


def guarded(fn: Callable[..., Any], collection: str, where: Path, opening: bool, *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``, an engine error raised as :func:`engine_error` says."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:
        ours = engine_error(exc, collection, where, opening)
        if ours is exc:
            raise
        raise ours from exc
