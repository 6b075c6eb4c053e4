"""`quicktune` command line. Thin: each command parses arguments, calls the library, reports.

Commands live in their own modules (each exposes `register(app)`); heavy imports happen inside
the command functions so `quicktune --help` stays fast.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperArgument, TyperGroup, TyperOption

from quicktune.cli import (
    benchmark_cmd,
    collect_cmd,
    hub_cmd,
    metadataset_cmd,
    metatrain_cmd,
    suggest_cmd,
)

_NAMES = {"str": "TEXT", "int": "INTEGER", "float": "FLOAT", "Path": "PATH"}


def _plain_metavars(command: Any) -> Any:
    """Typer labels every option's value by its Python type (`<str>`, `<bool>`); flags take no
    value, so they get no label, and values get click's names (TEXT, INTEGER, PATH)."""
    from typer._click import Context

    help_option = command.get_help_option(Context(command))  # created on first use, then cached
    for p in [*command.params, *([help_option] if help_option is not None else [])]:
        if isinstance(p, TyperOption) and p.metavar is None:
            p.metavar = "" if p.is_flag else _NAMES.get(p.bare_type(), p.bare_type().upper())
        elif isinstance(p, TyperArgument):
            # The argument's name column already says what it is (e.g. SOURCE...): no type column.
            p.display_type_rich = lambda ctx: None  # type: ignore[method-assign]
    for sub in getattr(command, "commands", {}).values():
        _plain_metavars(sub)
    return command


class _Group(TyperGroup):
    """Typer's group with plain metavars on every command it hands out (help and parsing alike)."""

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        cmd = super().get_command(ctx, cmd_name)
        return _plain_metavars(cmd) if cmd is not None else None

    def format_help(self, ctx: Any, formatter: Any) -> None:
        _plain_metavars(self)
        super().format_help(ctx, formatter)


app = typer.Typer(
    cls=_Group,
    name="quicktune",
    help="Which pretrained image model to fine-tune on your data, with which hyperparameters.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

@app.callback()
def _setup() -> None:
    from quicktune.cli._common import warnings_as_notes
    from quicktune.testhook import delay_point

    warnings_as_notes()
    delay_point("cli_start")  # (tests: a slow start-up, which a wall-clock budget must count)


for _module in (suggest_cmd, collect_cmd, metatrain_cmd, benchmark_cmd, metadataset_cmd, hub_cmd):
    _module.register(app)


def main() -> None:
    """The `quicktune` script and `python -m quicktune.cli`: the process was started for this
    command, so its clock (a suggest budget) starts at the process start."""
    from quicktune.cli import _common
    from quicktune.proctime import process_start

    _common.COMMAND_START = process_start()
    app()
