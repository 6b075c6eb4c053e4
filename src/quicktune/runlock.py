"""Exclusive locks that a crash can not leave behind: `fcntl.flock` on a lock file.

The kernel releases a flock when its holder's file descriptor closes, which includes the
process dying by any signal (kill -9 too), so there is never a stale lock to clean up. Lock
files are tiny and are never deleted: deleting one while another process holds or waits on it
would let a third process lock a new file of the same name.

Used for one training run at a time (two `collect`s on one store train a run once, the second
then finds it stored) and for one `suggest` search per work dir.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType

try:
    import fcntl
except ImportError:  # not POSIX: no locking (single-writer use stays safe)
    fcntl = None  # type: ignore[assignment]


class Busy(RuntimeError):
    """The lock is held by another process (non-blocking acquire)."""


class FileLock:
    """An exclusive lock on `path` (created if missing).

        with FileLock(p):               # waits until free
        with FileLock(p, wait=False):   # raises Busy when another process holds it
    """

    def __init__(self, path: str | os.PathLike[str], wait: bool = True) -> None:
        self.path = Path(path)
        self.wait = wait
        self._fd: int | None = None

    def acquire(self) -> FileLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if self.wait else fcntl.LOCK_NB))
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise Busy(f"{self.path}: held by another process{f' (pid {holder})' if holder else ''}") from None
            except BaseException:
                os.close(fd)
                raise
        # Who holds it (for the message another process gets); the content is informative only.
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the flock
            self._fd = None

    def __enter__(self) -> FileLock:
        return self.acquire()

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        return os.pread(fd, 32, 0).decode(errors="replace").strip()
    except OSError:
        return ""


__all__ = ["Busy", "FileLock"]
