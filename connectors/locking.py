"""An exclusive, process-safe lock file for an embedded store directory."""
from __future__ import annotations

import logging
import os
import weakref
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


_HELD: "weakref.WeakSet[DirLock]" = weakref.WeakSet()


def _close_in_child() -> None:
    """After a fork, the child lets go of its copies of the open stores' files (the lock file and
    the engine's own, whose write-ahead log is locked too): the stores stay the parent's, and are
    free when the parent exits, not when its last child does. The engine's descriptors are pointed
    at /dev/null rather than closed, so that no number it holds is reused behind its back."""
    for lock in list(_HELD):
        fd, lock._fd = lock._fd, None
        if lock._finalizer is not None:
            lock._finalizer.detach()
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass
        _detach_files_under(lock.path.parent)


def _detach_files_under(directory: Path) -> None:
    try:
        prefix = str(directory.resolve()) + os.sep
        fds = os.listdir("/proc/self/fd")
    except OSError:   # not Linux: nothing more to do
        return
    null = os.open(os.devnull, os.O_RDWR)
    try:
        for fd in fds:
            try:
                if os.readlink(f"/proc/self/fd/{fd}").startswith(prefix):
                    os.dup2(null, int(fd))
            except OSError:
                continue
    finally:
        os.close(null)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_in_child)


class DirLock:
    """Hold ``<directory>/.lock`` exclusively while a store is open.

    The OS releases the lock when the holder exits, even on a crash, so a stale file never
    blocks a reopen. ``flock`` locks belong to an open file, so a second open in the same
    process is refused too. A forked child does not keep its parent's lock, and a lock whose
    object is garbage-collected is released.
    """

    def __init__(self, directory: str | os.PathLike[str]):
        self.path = Path(directory) / ".lock"
        self._fd: int | None = None
        self._finalizer: weakref.finalize | None = None

    def acquire(self) -> None:
        """Take the lock or raise StoreLockedError naming the holder's pid when known."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if not _try_lock(fd):
            os.close(fd)
            raise StoreLockedError(self._refusal())
        self._fd = fd
        self._finalizer = weakref.finalize(self, _close_fd, fd)
        _HELD.add(self)
        try:   # the holder's pid, for the message of a refused open; a full disk may refuse it
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
        except OSError as exc:
            logger.debug("could not write the pid into %s: %s", self.path, exc)

    def release(self) -> None:
        """Release the lock (idempotent)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            if self._finalizer is not None:
                self._finalizer.detach()
            try:
                _unlock(fd)
            finally:
                os.close(fd)

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def _refusal(self) -> str:
        """Why the lock was refused, who holds it, and what to do."""
        store, pid = self.path.parent, self._recorded_pid()
        holders = [p for p in _processes_with(self.path) if p != os.getpid()]
        if pid == os.getpid() and not holders:
            who = " in this process (close the other VitrCollection or backend first)"
        elif pid is not None and not _alive(pid):
            who = (f": process {pid}, which opened it, has exited, but a process it started still holds it"
                   f"{_named(holders) or ''}. Stop that process (`fuser -v {self.path}` finds it)")
        else:
            shown = _named(holders) or (f" by process {pid}" if pid is not None else "")
            who = f"{shown}. Wait for it to finish or stop it"
        return (f"the embedded store at {store} is already open{who}. The embedded engine lets one process open a "
                f"store at a time, for reading too (vitr info and search included); to read while another "
                f"process writes, serve the collection with `vitr serve` and query that, or use a Qdrant server "
                f"(url=...). A lock is never left behind by a crash: it goes with the process that holds it.")

    def _recorded_pid(self) -> int | None:
        try:
            text = self.path.read_text().strip()
        except OSError:
            return None
        return int(text) if text.isdigit() else None


def _close_fd(fd: int) -> None:
    try:
        os.close(fd)   # closing the only descriptor releases the flock
    except OSError:
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:   # another user's process
        return True
    return True


def _processes_with(path: Path) -> list[int]:
    """The pids that have ``path`` open (Linux ``/proc``; elsewhere none are known)."""
    target, found = str(path.resolve()), []
    try:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return []
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            if any(os.readlink(f"/proc/{pid}/fd/{fd}") == target for fd in fds):
                found.append(pid)
        except OSError:   # gone meanwhile, or not ours to read
            continue
    return found


def _named(pids: list[int]) -> str:
    """`` by process 12 (vitr index ...)`` for the pids given (with their command lines where readable)."""
    if not pids:
        return ""
    shown = []
    for pid in pids[:3]:
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            cmd = ""
        shown.append(f"{pid} ({cmd[:80]})" if cmd else str(pid))
    return f" by process {', '.join(shown)}"
