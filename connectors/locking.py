"""An exclusive, process-safe lock file for an embedded store directory."""
from __future__ import annotations

import logging
import os
from pathlib import Path

from ..errors import StoreLockedError

logger = logging.getLogger(__name__)

try:  # POSIX
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError:
            return False

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)

except ImportError:  # pragma: no cover - Windows
    import msvcrt

    def _try_lock(fd: int) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False

    def _unlock(fd: int) -> None:
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)


class DirLock:
    """Hold ``<directory>/.lock`` exclusively while a store is open.

    The OS releases the lock when the holder exits, even on a crash, so a stale file never
    blocks a reopen. ``flock`` locks belong to an open file, so a second open in the same
    process is refused too.
    """

    def __init__(self, directory: str | os.PathLike[str]):
        self.path = Path(directory) / ".lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise StoreLockedError naming the holder's pid when known."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if not _try_lock(fd):
            os.close(fd)
            holder = self._holder()
            raise StoreLockedError(
                f"the embedded store at {self.path.parent} is already open{holder}. Close the "
                f"other VitrCollection/backend first, or use a Qdrant server (url=...) for "
                f"concurrent access.")
        self._fd = fd
        try:   # the holder's pid, for the message of a refused open; a full disk may refuse it
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
        except OSError as exc:
            logger.debug("could not write the pid into %s: %s", self.path, exc)

    def release(self) -> None:
        """Release the lock (idempotent)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                _unlock(fd)
            finally:
                os.close(fd)

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def _holder(self) -> str:
        try:
            pid = self.path.read_text().strip()
        except OSError:
            return ""
        if not pid.isdigit():
            return ""
        return " in this process" if int(pid) == os.getpid() else f" by process {pid}"
