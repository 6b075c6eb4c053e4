from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from quicktune.cli import app
from quicktune.collect import (
    CollectError,
    MOMENTA,
    load_grid,
    make_configs,
    plan_collection,
    run_collection,
    sample_hyperparameters,
)
from quicktune.data import TaskSpec, load_task
from quicktune.features import FEATURE_NAMES
from quicktune.finetune import Finetuner
from quicktune.metadataset.schema import DATASET_DESCRIPTORS
from quicktune.metadataset.storage import MetaDatasetStore
from tests.helpers import make_image_folder

MODELS = ["test_efficientnet", "test_resnet"]  # tiny timm test architectures, trained from random init


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUICKTUNE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("QUICKTUNE_FEATURES_CACHE", str(tmp_path / "features-cache"))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return make_image_folder(tmp_path / "colours", classes=3, per_class=12, val_per_class=4, split=True, size=16)


def _plan(folder: Path, store: Path, epochs: int = 2, n_configs: int = 2, **kw):
    return plan_collection([TaskSpec(str(folder), size=16)], MODELS, sample_hyperparameters(n_configs, seed=0), epochs,
                           store, pretrained=False, batch_size=16, **kw)


def _key_rows(store: Path) -> set[tuple[str, int, float]]:
    df = MetaDatasetStore(store).read()
    return {(r.run_key, int(r.epoch), float(r.val_acc)) for r in df.itertuples()}


def _raw_rows(store: Path) -> pd.DataFrame:
    parts = sorted((store / "runs").glob("*.parquet"))
    return pd.concat([pq.read_table(p).to_pandas() for p in parts]) if parts else pd.DataFrame()


# -- configs ---------------------------------------------------------------------------------------
def test_sampled_hyperparameters_are_reproducible_and_in_range() -> None:
    a, b = sample_hyperparameters(200, seed=3), sample_hyperparameters(200, seed=3)
    assert a == b and a != sample_hyperparameters(200, seed=4)
    assert all(1e-3 * 0.999 <= h["elr"] <= 1.0 for h in a)
    assert all(h["weight_decay"] == 0.0 or 1e-6 * 0.999 <= h["weight_decay"] <= 1e-2 * 1.001 for h in a)
    assert {h["momentum"] for h in a} == set(MOMENTA)
    assert 0 < sum(h["weight_decay"] == 0.0 for h in a) < 100
    with pytest.raises(ValueError, match="n >= 1"):
        sample_hyperparameters(0)


def test_grid_files(tmp_path: Path) -> None:
    (tmp_path / "list.json").write_text(json.dumps([{"elr": 0.1, "momentum": 0.9}, {"elr": 0.01, "model": "m3"}]))
    cfgs = make_configs(["m1", "m2"], load_grid(tmp_path / "list.json"))
    assert [(c.model, c.elr) for c in cfgs] == [("m1", 0.1), ("m2", 0.1), ("m3", 0.01)]
    (tmp_path / "grid.json").write_text(json.dumps({"elr": [0.1, 0.01], "weight_decay": [0, 1e-4], "momentum": [0.9]}))
    assert len(make_configs(["m1"], load_grid(tmp_path / "grid.json"))) == 4
    (tmp_path / "bad.json").write_text("[{\"lr\": 1}]")
    with pytest.raises(CollectError, match="bad.json"):
        load_grid(tmp_path / "bad.json")
    with pytest.raises(CollectError, match="no such grid file"):
        load_grid(tmp_path / "missing.json")
    # the fine-tuner's extras are checked when the plan is made, not when a worker starts the run
    assert make_configs(["m1"], [{"elr": 1e-3, "optimizer": "adamw", "sched": "plateau"}])[0].extra("sched") == "plateau"
    with pytest.raises(CollectError, match="sched"):
        make_configs(["m1"], [{"elr": 0.1, "sched": "linear"}])


# -- collection ------------------------------------------------------------------------------------
def _fill_and_rerun(folder: Path, tmp_path: Path, workers: int) -> None:
    store = tmp_path / "store"
    plan = _plan(folder, store)
    assert plan.n_runs == 4 and len(plan.jobs) == 4 and plan.epochs_to_train == 8
    assert plan.work_dir.parent == tmp_path / ".checkpoints" and plan.work_dir.name.startswith("store-")
    events = []
    summary = run_collection(plan, workers=workers, threads=1, on_event=events.append)
    assert summary.failed == [] and summary.finished == 4 and summary.epochs_trained == 8
    df = MetaDatasetStore(store).read()
    assert len(df) == 8 and df["run_key"].nunique() == 4
    assert sorted(df["model"].unique()) == sorted(MODELS)
    assert all(sorted(g["epoch"]) == [1, 2] for _, g in df.groupby("run_key"))
    assert (df["dataset"] == "colours/16px").all() and df["val_acc"].between(0, 1).all()
    assert len(_raw_rows(store)) == 8  # every epoch appended exactly once
    assert sum(e["kind"] == "epoch" for e in events) == 8
    feats = MetaDatasetStore(store).read_features()
    ds, pairs = feats[feats["model"] == ""], feats[feats["model"] != ""]
    assert sorted(ds["name"]) == sorted(DATASET_DESCRIPTORS)
    # The domain features of every (model, task), as the campaign script computed them.
    assert set(pairs["model"]) == set(MODELS) and (pairs["dataset"] == "colours/16px").all()
    assert set(pairs["name"]) == set(FEATURE_NAMES) and summary.features == 2
    # finished runs leave no checkpoint (only their tiny lock files)
    assert [p for p in plan.work_dir.iterdir() if p.suffix != ".lock"] == []
    again = _plan(folder, store)
    assert again.n_complete == 4 and again.jobs == []
    # the same rows as a one-worker collection into another store
    run_collection(_plan(folder, tmp_path / "other", work_dir=tmp_path / "w2"), workers=1, threads=1)
    assert _key_rows(tmp_path / "other") == _key_rows(store)


def test_collect_fills_the_store_and_a_rerun_skips_everything(folder: Path, tmp_path: Path) -> None:
    _fill_and_rerun(folder, tmp_path, workers=1)


@pytest.mark.slow
def test_collect_with_a_process_pool(folder: Path, tmp_path: Path) -> None:
    _fill_and_rerun(folder, tmp_path, workers=2)


def test_partial_runs_continue_and_lost_checkpoints_are_retrained(folder: Path, tmp_path: Path) -> None:
    full = tmp_path / "full"
    run_collection(_plan(folder, full, epochs=3, n_configs=1), threads=1)
    # a store that kept only epoch 1 and no checkpoints: the runs are retrained from scratch,
    # reproduce epoch 1, and only epochs 2-3 are appended
    partial = tmp_path / "partial"
    MetaDatasetStore(partial).append(MetaDatasetStore(full).read().query("epoch == 1"))
    plan = _plan(folder, partial, epochs=3, n_configs=1, work_dir=tmp_path / "empty")
    assert len(plan.jobs) == 2 and plan.epochs_to_train == 4
    summary = run_collection(plan, threads=1)
    assert summary.epochs_trained == 4
    assert _key_rows(partial) == _key_rows(full)
    assert len(_raw_rows(partial)) == 6


def test_checkpointed_epochs_missing_from_the_store_are_appended(folder: Path, tmp_path: Path) -> None:
    # a kill between a run's checkpoint and its store append: the rerun appends the epoch
    store = tmp_path / "store"
    plan = _plan(folder, store, n_configs=1)
    job = plan.jobs[0]
    data = load_task(job.spec, job.image_size)
    ft = Finetuner(data, job.config, job.max_epochs, job.seed, plan.work_dir / job.run_key, batch_size=16,
                   pretrained=False, num_threads=1)
    first = ft.train_until(1)[0]
    run_collection(plan, threads=1)
    df = MetaDatasetStore(store).read()
    assert len(df) == 4 and len(_raw_rows(store)) == 4
    row = df[(df["run_key"] == job.run_key) & (df["epoch"] == 1)]
    assert float(row["val_acc"].iloc[0]) == first.val_acc and float(row["seconds"].iloc[0]) == first.seconds


def test_a_failing_run_is_reported_and_the_others_finish(folder: Path, tmp_path: Path) -> None:
    plan = _plan(folder, tmp_path / "store", n_configs=1)
    # sabotage one run: its checkpoint belongs to another run
    (plan.work_dir / plan.jobs[0].run_key).mkdir(parents=True)
    import torch

    torch.save({"run_key": "someone-else", "results": [], "status": "ok"},
               plan.work_dir / plan.jobs[0].run_key / "checkpoint.pt")
    summary = run_collection(plan, threads=1)
    assert len(summary.failed) == 1 and "belongs to run" in summary.failed[0][1]
    assert summary.finished == 1


# -- the command line ------------------------------------------------------------------------------
runner = CliRunner()


def _cli(*args: str):
    return runner.invoke(app, ["collect", *args])


def _assert_one_line_error(result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    text = result.output.strip()
    assert "Traceback" not in text and len(text.splitlines()) == 1, text
    for n in needles:
        assert n in text, text


@pytest.mark.parametrize("case", ["missing", "one_class", "empty_class", "corrupt"])
def test_cli_bad_data_exits_2_with_one_line(case: str, tmp_path: Path) -> None:
    if case == "missing":
        path = tmp_path / "nowhere"
        needle = str(path)
    else:
        path = make_image_folder(tmp_path / "d", classes=1 if case == "one_class" else 2, per_class=3)
        needle = str(path)
        if case == "empty_class":
            (path / "zzz").mkdir()
            needle = str(path / "zzz")
        if case == "corrupt":
            (path / "class_0" / "bad.png").write_bytes(b"nope")
            needle = str(path / "class_0" / "bad.png")
    r = _cli("--datasets", str(path), "--models", "test_resnet", "--configs", "1", "--random-init",
             "--out", str(tmp_path / "store"))
    _assert_one_line_error(r, needle)


def test_cli_bad_options_exit_2(folder: Path, tmp_path: Path) -> None:
    out = str(tmp_path / "store")
    _assert_one_line_error(_cli("--datasets", str(folder), "--models", "test_resnet", "--out", out), "--configs")
    _assert_one_line_error(_cli("--datasets", str(folder), "--models", "no_such_model_xyz", "--configs", "1",
                                "--out", out), "no_such_model_xyz")
    _assert_one_line_error(_cli("--datasets", f"{folder}:clases=2", "--models", "test_resnet", "--configs", "1",
                                "--out", out), "clases")
    _assert_one_line_error(_cli("--datasets", str(folder), "--models", "test_resnet", "--grid",
                                str(tmp_path / "none.json"), "--out", out), "none.json")


def test_cli_ray_missing_is_a_clear_error(folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    r = _cli("--datasets", str(folder), "--models", "test_resnet", "--configs", "1", "--random-init",
             "--executor", "ray", "--out", str(tmp_path / "store"))
    _assert_one_line_error(r, "pip install 'quicktune[ray]'")


def test_cli_collects(folder: Path, tmp_path: Path) -> None:
    r = _cli("--datasets", f"{folder}:size=16", "--models", ",".join(MODELS), "--configs", "1", "--epochs", "1",
             "--random-init", "--batch-size", "16", "--threads", "1", "--out", str(tmp_path / "store"))
    assert r.exit_code == 0, r.output
    assert "2 runs finished" in r.output
    assert len(MetaDatasetStore(tmp_path / "store").read()) == 2


# -- kill -9 in the middle, rerun ------------------------------------------------------------------
def _wait_for_parts_then_kill(proc_alive, kill, store: Path, n_parts: int = 2) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc_alive():
        runs = store / "runs"
        if runs.is_dir() and len(list(runs.glob("part-*.parquet"))) >= n_parts:
            break
        time.sleep(0.005)
    assert proc_alive(), "the collection ended before it could be killed"
    kill()


def _assert_same_as_reference(store: Path, reference: Path, n_rows: int) -> None:
    assert _key_rows(store) == _key_rows(reference)  # same runs, epochs and accuracies
    assert len(_key_rows(store)) == n_rows
    raw = _raw_rows(store)
    assert len(raw) == n_rows and not raw.duplicated(["run_key", "epoch"]).any()  # nothing appended twice


def _collect_in_child(folder: str, store: str) -> None:
    import torch

    torch.set_num_threads(1)
    run_collection(_plan(Path(folder), Path(store), epochs=3), threads=1)


def test_kill_9_mid_collection_then_rerun(kill_folder: Path, tmp_path: Path) -> None:
    """Fast variant: a forked child (torch already imported) runs the collection and is SIGKILLed."""
    import multiprocessing as mp

    store = tmp_path / "killed"
    _plan(kill_folder, store, epochs=3)  # cache the data first, so the child starts training at once
    child = mp.get_context("fork").Process(target=_collect_in_child, args=(str(kill_folder), str(store)))
    child.start()
    try:
        _wait_for_parts_then_kill(child.is_alive, lambda: os.kill(child.pid, signal.SIGKILL), store)
        child.join(30)
    finally:
        if child.is_alive():
            child.kill()
    assert child.exitcode == -signal.SIGKILL
    assert 2 <= len(MetaDatasetStore(store).read()) < 12
    rerun = _plan(kill_folder, store, epochs=3)
    assert 0 < len(rerun.jobs) and rerun.epochs_to_train < 12
    assert run_collection(rerun, threads=1).failed == []
    run_collection(_plan(kill_folder, tmp_path / "reference", epochs=3, work_dir=tmp_path / "w-ref"), threads=1)
    _assert_same_as_reference(store, tmp_path / "reference", 12)


def _collect_argv(folder: Path, store: Path, workers: int) -> list[str]:
    return [sys.executable, "-c", "from quicktune.cli import main; main()", "collect", "--datasets", f"{folder}:size=24",
            "--models", ",".join(MODELS), "--configs", "2", "--epochs", "3", "--random-init", "--batch-size", "16",
            "--threads", "1", "--workers", str(workers), "--out", str(store)]


def _kill_cli_and_rerun(folder: Path, tmp_path: Path, workers: int) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    store = tmp_path / "killed"
    proc = subprocess.Popen(_collect_argv(folder, store, workers), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_for_parts_then_kill(lambda: proc.poll() is None, lambda: proc.send_signal(signal.SIGKILL), store)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert 2 <= len(MetaDatasetStore(store).read()) < 12
    time.sleep(0.5)  # pool workers die with their parent (PR_SET_PDEATHSIG)
    rerun = subprocess.run(_collect_argv(folder, store, workers), env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    ref = subprocess.run(_collect_argv(folder, tmp_path / "reference", workers), env=env, capture_output=True,
                         text=True, timeout=600)
    assert ref.returncode == 0, ref.stdout + ref.stderr
    _assert_same_as_reference(store, tmp_path / "reference", 12)


@pytest.fixture
def kill_folder(tmp_path: Path) -> Path:
    # big enough that an epoch takes a moment, so the kill lands mid-collection
    return make_image_folder(tmp_path / "colours", classes=3, per_class=40, val_per_class=8, split=True, size=24)


@pytest.mark.slow
def test_kill_9_the_cli_and_rerun(kill_folder: Path, tmp_path: Path) -> None:
    _kill_cli_and_rerun(kill_folder, tmp_path, workers=1)


@pytest.mark.slow
def test_kill_9_the_cli_with_a_process_pool_and_rerun(kill_folder: Path, tmp_path: Path) -> None:
    _kill_cli_and_rerun(kill_folder, tmp_path, workers=2)


def test_max_image_size_caps_each_model_and_keeps_one_task_name(folder: Path, tmp_path: Path) -> None:
    from quicktune.collect import training_size
    from quicktune.hub import model_info

    natives = {m: model_info(m).input_size for m in MODELS}
    cap = min(natives.values()) // 2
    plan = plan_collection([TaskSpec(str(folder))], MODELS, sample_hyperparameters(1, seed=0), 1,
                           tmp_path / "store", pretrained=False, batch_size=16, max_image_size=cap)
    assert {j.image_size for j in plan.jobs} == {cap}
    assert len({j.dataset for j in plan.jobs}) == 1 and "px" not in plan.jobs[0].dataset
    assert len({j.run_key for j in plan.jobs}) == len(plan.jobs)
    assert training_size(224, None) == 224 and training_size(224, 64) == 64 and training_size(32, 64) == 32
    with pytest.raises(ValueError, match="max_image_size >= 4"):
        training_size(224, 2)
