"""The search's work dir and its session records."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quicktune.atomic import atomic_write

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
