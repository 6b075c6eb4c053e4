"""Helpers shared by the CLI commands: one-line errors with a non-zero exit, duration parsing."""

from __future__ import annotations

import re
from typing import NoReturn

import typer
from rich.console import Console

console = Console(stderr=True)

EXIT_BAD_INPUT = 2


def fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    """Print `error: message` on one line (no traceback) and exit with `code`."""
    from rich.markup import escape

    # escape: messages quote user input and values such as "quicktune[ray]", never markup
    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


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
