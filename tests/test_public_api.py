"""The public API: the names of `quicktune.__all__` import, and the README's Python example runs
as written (with a stand-in for the user's training function)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

import quicktune

README = Path(__file__).resolve().parents[1] / "README.md"


def _readme_example() -> str:
    text = README.read_text()
    section = text.split("## Python API", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_every_public_name_imports() -> None:
    for name in quicktune.__all__:
        assert getattr(quicktune, name) is not None, name
    from quicktune import (  # noqa: F401  the issue's list
        Config,
        FinetuneObjective,
        GridSearch,
        Hyperband,
        QuickTune,
        RandomSearch,
        ReplayObjective,
        SearchSpace,
        load_surrogate,
    )


def test_the_literal_all_lists_match_the_lazy_exports() -> None:
    # __all__ is written out (type checkers read only literal lists); it must name every lazy export
    import quicktune.metadataset

    assert quicktune.__all__ == ["__version__", *sorted(quicktune._EXPORTS)]
    assert quicktune.metadataset.__all__ == sorted(quicktune.metadataset._EXPORTS)


def test_the_readme_example_runs_quick_tune_in_a_users_loop(capsys) -> None:
    told = []

    def train_one_epoch(config, epoch):
        # A stand-in for the user's training: accuracy rises with epochs, best near ELR 0.1.
        acc = (0.9 - 0.1 * (math.log10(config.elr) + 1) ** 2) * (1 - 0.5 ** epoch)
        told.append((config, epoch))
        return acc, 2.0 if config.model.startswith("resnet") else 5.0

    env: dict = {"train_one_epoch": train_one_epoch}
    exec(compile(_readme_example(), "README.md", "exec"), env)
    opt = env["opt"]
    assert len(told) == 20 and sum(len(c) for c in opt.curves.values()) == 20
    # each config's run was continued epoch by epoch, never restarted or skipped
    for config in {c for c, _ in told}:
        assert [e for c, e in told if c == config] == list(range(1, 1 + sum(c == config for c, _ in told)))
    best_id, best_acc = env["best_id"], env["best_acc"]
    assert best_acc == max(v for c in opt.curves.values() for v in c)
    assert opt.space[best_id].describe() in capsys.readouterr().out


def test_tell_with_a_score_reports_exactly_one_epoch() -> None:
    from quicktune import Observation, RandomSearch, SearchSpace, Trial

    opt = RandomSearch(SearchSpace.grid(["m"], [0.01, 0.1]), max_epochs=3, seed=0)
    trial = opt.ask()  # random search trains a config to the horizon: three new epochs
    with pytest.raises(TypeError, match="score"):
        opt.tell(trial)
    with pytest.raises(ValueError, match="3 score"):
        opt.tell(trial, score=0.5)
    with pytest.raises(TypeError, match="Trial"):
        opt.tell(Observation(trial, (0.5,), 1.0), score=0.5)
    opt.tell(trial, score=[0.3, 0.4, 0.5], seconds=6.0)
    assert opt.curves[trial.config_id] == (0.3, 0.4, 0.5) and trial.config_id in opt.finished
    assert opt.as_observation(Trial(1, 1), score=0.2, seconds=3.0).epoch_seconds == (3.0,)


def test_load_surrogate_by_name_or_path(tmp_path: Path) -> None:
    from quicktune import load_surrogate, shipped_surrogates

    assert "v1" in shipped_surrogates()
    by_name = load_surrogate("v1")
    assert by_name.max_epochs == load_surrogate(shipped_surrogates()["v1"]).max_epochs
    with pytest.raises(ValueError, match="shipped surrogates: .*v1"):
        load_surrogate("no-such-surrogate")


def test_no_torch_future_warning_reaches_the_user() -> None:
    import subprocess
    import sys

    code = "import quicktune; quicktune.QuickTune; quicktune.load_surrogate()"
    r = subprocess.run([sys.executable, "-W", "default", "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "FutureWarning" not in r.stderr, r.stderr
