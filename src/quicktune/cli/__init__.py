"""`quicktune` command line. Thin: each command parses arguments, calls the library, reports.

Commands live in their own modules (each exposes `register(app)`); heavy imports happen inside
the command functions so `quicktune --help` stays fast.
"""

from __future__ import annotations

import typer

from quicktune.cli import benchmark_cmd, collect_cmd, hub_cmd, metadataset_cmd, metatrain_cmd, suggest_cmd

app = typer.Typer(
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
