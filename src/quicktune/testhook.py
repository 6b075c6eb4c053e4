"""Kill points for the reliability tests: inert unless $QUICKTUNE_TEST_HOOK_DIR is set.

Code calls `kill_point("name")` at the moments a crash matters (e.g. between a run's checkpoint
write and the store append). A test that wants a SIGKILL there writes `<dir>/<name>` holding N:
the N-th time any process reaches that point, it writes `<dir>/<name>.fired` and SIGKILLs its own
process group, exactly like `kill -9` of the command and its workers (a test starts the command
in a new session, so the group is that command alone). Hits are counted across processes (an
O_APPEND file), so pool workers count with the parent.

`delay_point("name")` sleeps the seconds `<dir>/<name>.sleep` holds (a slow moment, on demand).

Without the environment variable this costs one dictionary lookup and does nothing.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

ENV = "QUICKTUNE_TEST_HOOK_DIR"


def kill_point(name: str) -> None:
    """SIGKILL this process group at the N-th hit of `name` when a test asked for it (see above)."""
    root = os.environ.get(ENV)
    if not root:
        return
    want = Path(root) / name
    try:
        n = int(want.read_text().strip())
    except (OSError, ValueError):
        return
    fd = os.open(Path(root) / f"{name}.hits", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, b"x")
        hits = os.fstat(fd).st_size
    finally:
        os.close(fd)
    if hits == n:
        (Path(root) / f"{name}.fired").write_text(str(os.getpid()))
        os.killpg(os.getpgrp(), signal.SIGKILL)


def delay_point(name: str) -> None:
    """Sleep for the seconds `<dir>/<name>.sleep` holds, when a test asked for it (e.g. to
    stand for a slow start-up that a wall-clock budget must count)."""
    root = os.environ.get(ENV)
    if not root:
        return
    try:
        seconds = float((Path(root) / f"{name}.sleep").read_text().strip())
    except (OSError, ValueError):
        return
    import time

    time.sleep(seconds)


__all__ = ["ENV", "delay_point", "kill_point"]
