"""The search's work dir and its session records."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quicktune.atomic import atomic_write
from quicktune.suggest.errors import SuggestError

SESSION_FILE = "session.json"
SESSION_FORMAT = "quicktune-suggest-session"
SESSION_VERSION = 1


# ------------------------------------------------------------------------------------------------
# The timed search
# ------------------------------------------------------------------------------------------------
def default_workdir(target_name: str, root: str | os.PathLike[str] = ".quicktune") -> Path:
    """./.quicktune/<data name> (a derived task's options joined with '_'); always one folder
    inside `root` (a name such as ".." or "a/../.." can not climb out of it)."""
    safe = re.sub(r"[^\w.+-]+", "_", target_name).strip("_.")
    return Path(root) / (safe or "data")


def _atomic_json(obj: Any, path: Path) -> None:
    with atomic_write(path, "w") as f:  # a kill leaves the old session or the new one, never half of one
        json.dump(obj, f, indent=1, allow_nan=True)


@dataclass
class StepRecord:
    """One step of the search: config `config_id` trained to `epoch` (one more epoch)."""

    step: int
    config_id: int
    epoch: int
    accuracy: float
    seconds: float  # wall-clock of the step (model building and checkpointing included)
    elapsed: float  # session clock at the end of the step
    overhead: float  # optimizer seconds (refit + acquisition) before the step
    max_ei: float | None = None  # the optimizer's largest expected improvement when it chose the step
    recovered: bool = False  # an epoch found in a checkpoint but not in the session (a kill between them)


_HELD: dict[str, Any] = {}  # work dir -> its lock, held by this process until it exits


def lock_workdir(workdir: Path) -> Any:
    """Refuse a work dir another process is searching in. The lock is kept until this process
    exits (the kernel releases it then, kill -9 included); a later Search in this same process
    (e.g. resuming in a notebook) reuses it."""
    from quicktune.runlock import Busy, FileLock

    key = str(workdir.resolve())
    if key in _HELD:
        return _HELD[key]
    try:
        _HELD[key] = FileLock(workdir / ".lock", wait=False).acquire()
        return _HELD[key]
    except Busy as e:
        raise SuggestError(f"another quicktune suggest is running in {workdir} ({str(e).split('(')[-1].rstrip(')')}); "
                           "wait for it to end, or pass another --workdir") from None


def read_session(path: Path) -> dict[str, Any] | None:
    """The saved session at `path` (a work dir's `SESSION_FILE`), None when there is none; an
    unreadable file or another format or version is a SuggestError. Whether it belongs to the
    same search (its identity) is `Search`'s check."""
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise SuggestError(f"{path}: unreadable search session ({e}); delete it to start over") from None
    if state.get("format") != SESSION_FORMAT or state.get("version") != SESSION_VERSION:
        raise SuggestError(f"{path}: not a quicktune suggest session of version {SESSION_VERSION}")
    return dict(state)
