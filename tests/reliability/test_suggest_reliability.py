"""A timed `quicktune suggest` under kill -9, a slow start-up, and a second search on its work dir."""

from __future__ import annotations

import json
from pathlib import Path

from quicktune.runlock import FileLock
from tests.reliability.conftest import CONFIGS, EPOCHS, suggest_args


def _tree(root: Path) -> list[tuple[str, int]]:
    return sorted((str(p.relative_to(root)), p.lstat().st_mtime_ns) for p in root.rglob("*"))


def test_a_kill_between_checkpoint_and_session_save_keeps_every_epoch_in_the_step_log(cli, suggest_folder, suggest_env,
                                                                                     tmp_path):
    wd = tmp_path / "work"
    weights_before = _tree(suggest_env.weights)
    args = suggest_args(suggest_folder, suggest_env, wd, "5m")
    cli.run(*args, kill_at={"after_checkpoint": 3})  # kill -9 with epoch 3 checkpointed, its step unsaved
    r = cli.run(*args)
    assert r.code == 0, r.err
    report = json.loads(r.out)
    assert report["stop_reason"] == "every candidate is finished"
    assert report["epochs_trained"] == CONFIGS * EPOCHS
    log = [(s["config_id"], s["epoch"]) for s in report["step_log"]]
    # one step per trained epoch, none missing, none twice; the one the kill hid is marked recovered
    assert len(log) == len(set(log)) == report["epochs_trained"], log
    assert sum(s["recovered"] for s in report["step_log"]) == 1
    assert _tree(suggest_env.weights) == weights_before  # the user's weights folder is only read


def test_the_budget_counts_the_start_up(cli, suggest_folder, suggest_env, tmp_path):
    # A start-up slower than the whole budget (the test hook sleeps before the command runs):
    # the clock started at the process start, so the search trains only its one guaranteed epoch.
    cli.hooks.mkdir(exist_ok=True)
    (cli.hooks / "cli_start.sleep").write_text("12")
    cli.env["QUICKTUNE_TEST_HOOK_DIR"] = str(cli.hooks)
    r = cli.run(*suggest_args(suggest_folder, suggest_env, tmp_path / "work", "10s"))
    assert r.code == 0, r.err
    report = json.loads(r.out)
    assert report["epochs_trained"] == 1 and report["stop_reason"] == "budget", report["step_log"]
    assert report["elapsed_seconds"] >= 12


def test_a_second_search_on_a_busy_work_dir_is_refused(cli, suggest_folder, suggest_env, tmp_path):
    wd = tmp_path / "work"
    with FileLock(wd / ".lock"):  # stands for a search running there
        r = cli.run(*suggest_args(suggest_folder, suggest_env, wd, "1m"))
    assert r.code == 2, r.err
    lines = [line for line in r.err.splitlines() if line.strip()]
    assert lines[-1].startswith("error: another quicktune suggest is running in") and "Traceback" not in r.err
    assert not (wd / "session.json").exists()
