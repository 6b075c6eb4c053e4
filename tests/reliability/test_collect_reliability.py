"""`quicktune collect` under kill -9, sibling stores, two writers, planted and damaged files."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from tests.reliability.conftest import CONFIGS, EPOCHS, Cli, collect_args, curves, store_rows

N_EPOCHS = CONFIGS * EPOCHS


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_folder) -> dict[str, list[float]]:
    """The curves of an uninterrupted collection (the runs are deterministic)."""
    root = tmp_path_factory.mktemp("reference")
    r = Cli(root).run(*collect_args(tiny_folder, root / "store"))
    assert r.code == 0, r.err
    df, raw = store_rows(root / "store")
    assert len(df) == len(raw) == N_EPOCHS
    return curves(df)


def _complete(store: Path, reference) -> None:
    df, raw = store_rows(store)
    assert len(df) == N_EPOCHS and curves(df) == reference  # nothing lost, identical curves
    assert len(raw) == N_EPOCHS  # and no epoch written twice


def test_a_killed_collect_loses_nothing_and_a_sibling_store_gets_its_own_checkpoints(cli, tiny_folder, tmp_path,
                                                                                      reference):
    a, b = tmp_path / "p" / "a", tmp_path / "p" / "b"
    cli.run(*collect_args(tiny_folder, a), kill_at={"collect_after_append": 2})  # kill -9 after 2 stored epochs
    assert len(store_rows(a)[0]) == 2
    # The same collection into a sibling store must not take a's checkpoints or markers for its own.
    r = cli.run(*collect_args(tiny_folder, b))
    assert r.code == 0, r.err
    _complete(b, reference)
    r = cli.run(*collect_args(tiny_folder, a))  # the killed one continues
    assert r.code == 0, r.err
    _complete(a, reference)


def test_a_kill_between_checkpoint_and_append_is_recovered_once(cli, tiny_folder, tmp_path, reference):
    store = tmp_path / "store"
    cli.run(*collect_args(tiny_folder, store), kill_at={"after_checkpoint": 3})
    assert len(store_rows(store)[0]) == 2  # epoch 3 is in a checkpoint only
    r = cli.run(*collect_args(tiny_folder, store))
    assert r.code == 0, r.err
    _complete(store, reference)


class _Planted:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ['PLANT_MARKER']}",))


def test_planted_checkpoints_and_data_caches_never_run_code(cli, tiny_folder, tmp_path, reference, monkeypatch):
    store = tmp_path / "store"
    cli.run(*collect_args(tiny_folder, store), kill_at={"after_checkpoint": 2})
    planted = list((tmp_path / ".checkpoints").rglob("checkpoint.pt")) + list((tmp_path / "cache").rglob("*.pt"))
    assert len(planted) >= 3  # a run's checkpoint, and the train/ and val/ caches
    marker = tmp_path / "code-ran"
    monkeypatch.setenv("PLANT_MARKER", str(marker))
    for p in planted:
        torch.save({"run_key": "x", "results": [], "images": _Planted()}, p)
    cli.env["PLANT_MARKER"] = str(marker)
    r = cli.run(*collect_args(tiny_folder, store))
    assert r.code == 0, r.err
    assert not marker.exists()
    _complete(store, reference)  # the planted checkpoint was ignored and its run retrained


def test_two_collects_at_once_both_succeed_and_store_every_epoch_once(cli, tiny_folder, tmp_path, reference):
    store = tmp_path / "store"
    procs = [cli.start(*collect_args(tiny_folder, store)) for _ in range(2)]
    results = [p.communicate(timeout=600) for p in procs]
    for p, (_out, err) in zip(procs, results):
        assert p.returncode == 0, err
    _complete(store, reference)


def test_a_foreign_part_is_refused_by_every_command_and_never_compacted(cli, tiny_folder, tmp_path):
    store = tmp_path / "store"
    (store / "runs").mkdir(parents=True)
    foreign = store / "runs" / "part-1-1-foreign.parquet"
    pq.write_table(pa.table({"run": ["a", "b"], "acc": [97.0, 12.0]}), foreign)
    for args in (["metadataset", "info", str(store)], ["metadataset", "compact", str(store)],
                 collect_args(tiny_folder, store, "--configs", "1", "--epochs", "1")):
        r = cli.run(*args)
        lines = [line for line in r.err.splitlines() if line.strip()]
        assert r.code == 2 and lines[-1].startswith("error:") and str(foreign) in lines[-1], (args, r.err)
        assert "Traceback" not in r.err
    assert foreign.exists() and not list((store / "runs").glob("snapshot-*"))


def test_skipped_images_are_a_note_line(cli, tiny_folder, tmp_path):
    folder = tmp_path / "colours"
    shutil.copytree(tiny_folder, folder)
    (folder / "train" / "class_0" / "broken.png").write_bytes(b"not an image")
    r = cli.run(*collect_args(folder, tmp_path / "store", "--configs", "1", "--epochs", "1", "--skip-unreadable"))
    assert r.code == 0, r.err
    notes = [line for line in r.err.splitlines() if "unreadable" in line]
    assert notes and all(n.startswith("note: skipped 1 unreadable image(s):") for n in notes), r.err
    assert "UserWarning" not in r.err and "Warning:" not in r.err
