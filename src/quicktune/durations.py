"""Durations as people write them: one parser and one formatter for every command and report."""

from __future__ import annotations

import re

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """'90' / '90s' / '30m' / '4h' / '1.5h' / '1h30m' -> seconds."""
    t = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", t):
        return float(t)
    parts = re.findall(r"(\d+(?:\.\d+)?)([smhd])", t)
    if not parts or "".join(n + u for n, u in parts) != t:
        raise ValueError(f"a duration looks like 90s, 30m, 4h or 1h30m, but got {text!r}")
    return sum(float(n) * _UNITS[u] for n, u in parts)


def format_duration(seconds: float, clock: bool = False) -> str:
    """3600 -> '1h', 5400 -> '1h30m', 90 -> '1m30s', 45 -> '45s' (what `parse_duration` reads);
    clock=True: a running clock, 90 -> '1:30', 5400 -> '1:30:00'. Rounded to whole seconds."""
    s = int(round(max(0.0, float(seconds))))
    if clock:
        h, rem = divmod(s, 3600)
        m, sec = divmod(rem, 60)
        return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"
    if s == 0:
        return "0s"
    out = ""
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if s >= n:
            out += f"{s // n}{unit}"
            s %= n
    return out
