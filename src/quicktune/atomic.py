"""Atomic file writes: readers, concurrent writers and crashes see the old file or the whole new
one, never half of one.

The file is written under a temporary name (".tmp-<random>-<name>") in the destination's
directory, flushed and fsync'ed, then os.replace'd over the destination; the temporary file is
removed if anything fails. Readers that list directories skip ".tmp-*" names.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

TMP_PREFIX = ".tmp-"


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a rename in `path` durable (best effort: not every platform can fsync a directory)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_write(dest: str | os.PathLike[str], mode: str = "wb", *, sync_dir: bool = False) -> Iterator[IO[Any]]:
    """Open a temporary file for writing (`mode` "wb" or "w") that replaces `dest` when the block
    ends without an exception. sync_dir: also fsync the directory, so the rename survives a crash.

        with atomic_write(path) as f:
            torch.save(obj, f)
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f"{TMP_PREFIX}{uuid.uuid4().hex}-{dest.name}"
    try:
        with open(tmp, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()
    if sync_dir:
        fsync_dir(dest.parent)
