"""Helpers shared by the CLI commands: one-line errors with a non-zero exit, duration parsing,
loading a meta-dataset."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer
from rich.console import Console

if TYPE_CHECKING:
    import pandas as pd

    from quicktune.metadataset.tabular import CurveTable

console = Console(stderr=True)

EXIT_BAD_INPUT = 2

# time.perf_counter() at the start of the command as the user sees it: the process start when
# run as a program (set by quicktune.cli.main), else (the app invoked in-process) None.
COMMAND_START: float | None = None


def fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    """Print `error: message` on one line (no traceback) and exit with `code`."""
    from rich.markup import escape

    # escape: messages quote user input and values such as "quicktune[ray]", never markup
    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def note(message: str) -> None:
    """Print `note: message` on one line to stderr (something the user should know, not an error)."""
    from rich.markup import escape

    console.print(f"[yellow]note:[/] {escape(message)}", highlight=False, soft_wrap=True)


def warnings_as_notes() -> None:
    """Show quicktune's notices (`quicktune.notice.Notice`, e.g. images skipped with
    --skip-unreadable) as one `note:` line each instead of Python's `file:line: UserWarning:` form;
    every other warning keeps the default form."""
    import warnings

    from quicktune.notice import Notice

    default = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):  # type: ignore[no-untyped-def]
        if issubclass(category, Notice):
            note(str(message).splitlines()[0] if str(message) else "(empty notice)")
        else:
            default(message, category, filename, lineno, file, line)

    warnings.showwarning = show


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


def load_metadataset(path: Path, status: Console) -> tuple[CurveTable, pd.DataFrame]:
    """The curves of the meta-dataset at `path` (a store or a Quick-Tune-format folder) and its run
    rows, read once behind a status line on `status`; anything unreadable exits with a one-line
    error naming --metadataset."""
    from quicktune.metadataset import StoreError, load_rows
    from quicktune.metadataset.tabular import CurveTable

    try:
        with status.status(f"loading {path} ..."):
            runs, features = load_rows(path)
            return CurveTable(runs, features), runs
    except (StoreError, ValueError, KeyError, OSError) as e:
        fail(f"--metadataset {path}: {e}")
