"""`--help` of every command: values labelled TEXT / INTEGER / PATH, flags unlabelled (Typer's
default labels every option `<str>`, `<bool>`, ...)."""

import re

import pytest
from typer.testing import CliRunner

from quicktune.cli import app

COMMANDS = [[], ["suggest"], ["collect"], ["metatrain"], ["benchmark"], ["metadataset", "merge"],
            ["metadataset", "info"], ["metadataset", "compact"], ["hub", "list"]]


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: " ".join(c) or "quicktune")
def test_help_shows_no_python_type_metavars(cmd):
    r = CliRunner().invoke(app, [*cmd, "--help"], env={"COLUMNS": "160"})
    assert r.exit_code == 0, r.output
    assert not re.search(r"<(bool|str|int|float|path|Path|list\[[A-Za-z]+\])>", r.output), r.output
    if cmd == ["suggest"]:
        assert re.search(r"--top\s+INTEGER", r.output) and re.search(r"--json\s+Machine", r.output)
