"""`quicktune suggest` end to end on tiny offline things (see tests/test_suggest.py's make_env)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from quicktune.cli import app
from tests.helpers import make_image_folder
from tests.test_suggest import MODELS, Env, make_env

runner = CliRunner()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("suggest_cmd")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("QUICKTUNE_CACHE", str(root / "cache"))
        mp.setenv("QUICKTUNE_FEATURES_CACHE", str(root / "features"))
        yield make_env(root)


@pytest.fixture(autouse=True)
def _caches(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUICKTUNE_CACHE", str(env.root / "cache"))
    monkeypatch.setenv("QUICKTUNE_FEATURES_CACHE", str(env.root / "features"))


def invoke(env: Env, *args: str, data: Path | None = None, surrogate: Path | None = None):
    base = ["suggest", "--data", str(data or env.data), "--surrogate", str(surrogate or env.surrogate),
            "--weights-dir", str(env.weights), "--epochs", "2", "--candidates", "3"]
    return runner.invoke(app, [*base, *args])


def test_zero_shot_prints_a_ranked_table(env: Env) -> None:
    r = invoke(env, "--top", "4")
    assert r.exit_code == 0, r.output
    assert "zero-shot ranking for colours: top 4 of 6 candidates" in r.stdout
    assert "lr = ELR * (1 - momentum)" in r.stdout
    assert any(m in r.stdout for m in MODELS)


def test_zero_shot_json_is_sorted_complete_and_alone_on_stdout(env: Env) -> None:
    r = invoke(env, "--budget", "0", "--json", "--top", "5")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)  # nothing but the JSON on stdout
    assert doc["task"] == "colours" and doc["candidates"] == 6 and doc["epochs"] == 2 and doc["models"] == list(MODELS)
    ranking = doc["ranking"]
    assert [e["rank"] for e in ranking] == [1, 2, 3, 4, 5]
    acc = [e["predicted_accuracy"] for e in ranking]
    assert acc == sorted(acc, reverse=True)
    for e in ranking:
        assert {"model", "elr", "lr", "momentum", "weight_decay", "predicted_accuracy", "predicted_accuracy_std",
                "predicted_seconds", "predicted_minutes"} <= set(e)
        assert e["lr"] == pytest.approx(e["elr"] * (1 - e["momentum"]))
        assert e["model"] in MODELS and 0 <= e["predicted_accuracy"] <= 1


def test_timed_search_reports_saves_the_model_and_resumes(env: Env, tmp_path: Path) -> None:
    from quicktune import hub

    work, saved = tmp_path / "work", tmp_path / "saved"
    r = invoke(env, "--budget", "0.000001s", "--workdir", str(work), "--json", "--save-model", str(saved))
    assert r.exit_code == 0, r.output
    first = json.loads(r.stdout)
    assert first["epochs_trained"] == 1 and first["sessions"] == 1  # the one guaranteed step, then the budget
    best = first["best"]
    assert best["lr"] == pytest.approx(best["elr"] * (1 - best["momentum"])) and len(best["curve"]) == 1
    assert Path(first["report_json"]) == work / "report.json" and json.loads((work / "report.json").read_text())["best"]
    assert (work / "report.png").read_bytes()[:4] == b"\x89PNG"
    assert first["saved_model"]["name"] in hub.list_models(saved)
    assert first["saved_model"]["epoch"] == best["epoch"] and first["saved_model"]["which"] == "best"
    test = first["test"]  # the unbiased estimate, on the held-out share of train (no test/ folder here)
    assert test["n"] > 0 and test["ci95"][0] <= test["accuracy"] <= test["ci95"][1] and "unbiased" in test["label"]
    assert first["stop_when"] == "patience=40"

    r = invoke(env, "--budget", "20s", "--workdir", str(work))  # the same search, a larger budget: continues
    # (20 s: the first session used its start-up and shut-down, and the shut-down is reserved again)
    assert r.exit_code == 0, r.output
    assert "resuming" in r.output and "1 epochs already trained" in r.output
    assert "best config" in r.stdout and "lr = ELR * (1 - momentum)" in r.stdout
    assert "test accuracy" in r.stdout and "95% CI" in r.stdout and "unbiased" in r.stdout
    assert "stopped: " in r.stdout
    doc = json.loads((work / "report.json").read_text())
    pairs = [(s["config_id"], s["epoch"]) for s in doc["step_log"]]
    assert doc["sessions"] == 2 and len(pairs) > 1 and len(set(pairs)) == len(pairs)
    assert pairs[0] == (first["step_log"][0]["config_id"], 1)
    assert doc["elapsed_seconds"] > first["elapsed_seconds"]



def test_an_interrupted_search_writes_its_report_and_exits_130(env: Env, tmp_path: Path, monkeypatch) -> None:
    from quicktune.objective import FinetuneObjective

    real = FinetuneObjective.evaluate
    calls = []

    def interrupt_second(self, trial):
        calls.append(trial)
        if len(calls) == 2:
            raise KeyboardInterrupt  # what Ctrl-C (or the command's SIGTERM handler) raises
        return real(self, trial)

    monkeypatch.setattr(FinetuneObjective, "evaluate", interrupt_second)
    work = tmp_path / "work"
    r = invoke(env, "--budget", "1m", "--workdir", str(work))
    assert r.exit_code == 130, r.output
    assert "run the same command again to continue" in r.stderr
    session = json.loads((work / "session.json").read_text())
    assert session["stop_reason"] == "interrupted" and len(session["steps"]) == 1
    assert json.loads((work / "report.json").read_text())["epochs_trained"] == 1

def _one_class(root: Path) -> Path:
    make_image_folder(root / "one", classes=2, per_class=3)
    import shutil

    shutil.rmtree(root / "one" / "class_1")
    return root / "one"


@pytest.mark.parametrize(
    "case, args, word",
    [
        ("missing folder", [], "no such directory"),
        ("one class", [], "only one class"),
        ("unknown model", ["--models", "tiny_a,nope"], "available offline"),
        ("bad budget", ["--budget", "half an hour"], "--budget"),
        ("missing surrogate", [], "no such surrogate"),
        ("incompatible surrogate", [], "not a"),
        ("bad top", ["--top", "0"], "--top"),
        ("bad stop rule", ["--budget", "1s", "--stop-when", "patience=soon"], "--stop-when"),
        ("bad save", ["--budget", "1s", "--save", "middle"], "--save"),
        ("other search in workdir", [], "other settings"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_no_traceback(env: Env, tmp_path: Path, case, args, word) -> None:
    data, surrogate = env.data, env.surrogate
    if case == "missing folder":
        data = tmp_path / "nowhere"
    elif case == "one class":
        data = _one_class(tmp_path)
    elif case == "missing surrogate":
        surrogate = tmp_path / "missing.pt"
    elif case == "incompatible surrogate":
        surrogate = tmp_path / "junk.pt"
        surrogate.write_text("junk")
    elif case == "other search in workdir":
        work = tmp_path / "work"
        assert invoke(env, "--budget", "0.000001s", "--workdir", str(work)).exit_code == 0
        args = ["--budget", "1s", "--workdir", str(work), "--seed", "7"]
    r = invoke(env, *args, data=data, surrogate=surrogate)
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output and r.exception is None or isinstance(r.exception, SystemExit)
    err_lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert err_lines[-1].startswith("error:") and word in r.stderr.replace("\n", " ")
    assert r.stdout == ""


# -- suggest --workers N: killed for real (kill -9 of the search and its workers) and resumed -----
def _parallel_cmd(env: Env, work: Path) -> list[str]:
    import sys

    return [sys.executable, "-m", "quicktune.cli", "suggest", "--data", str(env.data), "--surrogate", str(env.surrogate),
            "--weights-dir", str(env.weights), "--epochs", "2", "--candidates", "4", "--workdir", str(work),
            "--budget", "10m", "--workers", "2", "--threads", "1", "--json"]


def test_a_killed_parallel_search_restarts_its_pending_runs_from_their_last_epoch(env: Env, tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import time

    work, session = tmp_path / "work", tmp_path / "work" / "session.json"
    src = Path(__file__).resolve().parents[2] / "src"
    envvars = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(_parallel_cmd(env, work), env=envvars, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state: dict = {}
    deadline = time.monotonic() + 300
    try:  # once 2 steps are logged and 2 runs are in flight: kill -9 the search and its workers
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                state = json.loads(session.read_text())
            except (OSError, ValueError):
                state = {}
            if len(state.get("steps", [])) >= 2 and len(state.get("pending", [])) == 2:
                break
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert len(state.get("pending", [])) == 2, f"the search ended before the kill: {state.get('stop_reason')}"
    killed = json.loads(session.read_text())
    pending = {(c, e) for c, e in killed["pending"]}
    before = len(killed["steps"])

    r = subprocess.run(_parallel_cmd(env, work), env=envvars, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads(r.stdout)
    assert report["stop_reason"] == "every candidate is finished" and report["sessions"] == 2
    steps = [(s["config_id"], s["epoch"]) for s in report["step_log"]]
    assert len(steps) == len(set(steps)), "an epoch was trained twice"
    runs = {r["config_id"]: r for r in report["runs"]}
    assert len(runs) == 8 and all(r["epochs"] == 2 and len(r["curve"]) == 2 for r in runs.values())
    # Every epoch is in the step log, except one whose checkpoint was written just before the kill
    # (its run then continued from it: nothing was retrained).
    missing = {(c, e) for c in runs for e in (1, 2)} - set(steps)
    assert missing <= pending
    # The runs in flight at the kill were restarted from their last epoch, before any new trial.
    new = steps[before:]
    restarted = pending - missing
    assert restarted <= set(new)
    if len(restarted) == 2:  # both took the two workers first: the first result is one of them
        assert new[0] in restarted
    assert json.loads(session.read_text())["pending"] == []
