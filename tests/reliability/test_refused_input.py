"""Input that is refused with one line naming the option (exit 2), never a traceback or a
surprising place on disk."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from quicktune.cli import app
from quicktune.data import DataError, TaskSpec
from quicktune.suggest import default_workdir
from tests.helpers import make_image_folder

runner = CliRunner()


def _one_line_error(r, *words):
    assert r.exit_code == 2, r.output
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in r.output, r.output
    for w in words:
        assert w in lines[0], r.output


@pytest.fixture
def unsplit(tmp_path):
    return make_image_folder(tmp_path / "flat", classes=3, per_class=5)  # <class>/*: split 80/20 here


@pytest.mark.parametrize("opt, words", [("seed=-3", ["seed >= 0", "seed=-3"]), ("name=..", ["`name`", "'..'"]),
                                        ("name=a/b", ["`name`"]), ("name=.hidden", ["`name`"])])
def test_bad_task_options_are_one_line(unsplit, tmp_path, monkeypatch, opt, words):
    monkeypatch.chdir(tmp_path)
    for cmd in (["suggest", "--data", f"{unsplit}:{opt}", "--budget", "0"],
                ["collect", "--datasets", f"{unsplit}:{opt}", "--models", "test_resnet", "--configs", "1",
                 "--out", str(tmp_path / "s")]):
        _one_line_error(runner.invoke(app, cmd), *words)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flat"]  # nothing written anywhere


@pytest.mark.parametrize("cmd", [["collect", "--datasets", "x", "--models", "m", "--configs", "1", "--out", "s"],
                                 ["suggest", "--data", "x"]])
def test_a_negative_seed_names_the_option(tmp_path, monkeypatch, cmd):
    monkeypatch.chdir(tmp_path)
    _one_line_error(runner.invoke(app, [*cmd, "--seed", "-1"]), "--seed >= 0", "-1")


def test_the_default_work_dir_stays_inside_dot_quicktune():
    for name in ("..", ".", "a/../..", "../x", "...", "/"):
        wd = default_workdir(name)
        assert wd.parent.name == ".quicktune" and wd.name not in ("", ".", "..") and "/" not in wd.name, (name, wd)
    with pytest.raises(DataError, match="seed >= 0"):
        TaskSpec("x", seed=-1)
