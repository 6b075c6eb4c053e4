"""When this process started, on the `time.perf_counter()` clock.

A time budget is wall-clock from the user's point of view: it starts when they press Enter, so
the interpreter start and the imports (torch alone takes seconds) count too. Linux tells the
process start time (/proc/self/stat, field 22, in clock ticks since boot); elsewhere the time
this module was first imported is the closest we know.
"""

from __future__ import annotations

import os
import time

_IMPORTED = time.perf_counter()


def _age_seconds() -> float | None:
    """Seconds since this process started, from /proc (None when unavailable)."""
    try:
        with open("/proc/self/stat") as f:
            stat = f.read()
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
        fields = stat[stat.rindex(")") + 2 :].split()
        start_ticks = int(fields[19])  # field 22 overall
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


def process_start() -> float:
    """The `time.perf_counter()` value at which this process started (at the latest: when this
    module was imported)."""
    age = _age_seconds()
    now = time.perf_counter()
    return min(_IMPORTED, now - age) if age is not None else _IMPORTED


__all__ = ["process_start"]
