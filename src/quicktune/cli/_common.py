"""Helpers shared by the CLI commands: one-line errors with a non-zero exit, duration parsing,
loading a meta-dataset."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer
from rich.console import Console

from quicktune.durations import parse_duration as parse_duration  # re-exported for the commands

if TYPE_CHECKING:
    import pandas as pd

    from quicktune.metadataset.tabular import CurveTable

console = Console(stderr=True)

EXIT_BAD_INPUT = 2

# time.perf_counter() at the start of the command as the user sees it: the process start when
# run as a program (set by quicktune.cli.main), else (the app invoked in-process) None.
COMMAND_START: float | None = None


# Library errors name arguments; at the command line the same advice names the option.
_AS_OPTIONS = {"pass skip_unreadable": "pass --skip-unreadable", "point the weights dir": "point --weights-dir"}


def fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    """Print `error: message` on one line (no traceback) and exit with `code`."""
    from rich.markup import escape

    # escape: messages quote user input and values such as "quicktune[ray]", never markup
    for arg, option in _AS_OPTIONS.items():
        message = message.replace(arg, option)
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
