"""Real processes appending to one store at once, being killed, and racing a compaction."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from quicktune.metadataset.storage import MetaDatasetStore

# A writer process: waits for GO (so writers really overlap), then appends `n` parts (n < 0:
# forever) of `rows` epochs each, one run per part, and logs each run key only after its append
# returned (fsync'd), so the log is a lower bound of what the store must hold.
WRITER = r"""
import itertools, json, os, sys, time
from pathlib import Path
from quicktune.metadataset.storage import MetaDatasetStore

root, tag, n, rows, log, go = sys.argv[1:7]
n, rows = int(n), int(rows)
store = MetaDatasetStore(root)
Path(log).touch()
while not os.path.exists(go):
    time.sleep(0.01)
for i in itertools.count():
    if 0 <= n <= i:
        break
    key = f"{tag}-{i:05d}"
    store.append([
        dict(run_key=key, dataset="d", model=tag, elr=0.1, lr=0.01, momentum=0.9, weight_decay=0.0,
             optimizer="sgd", extras="{}", seed=0, max_epochs=rows, epoch=e, val_acc=e / rows,
             val_loss=float("nan"), train_loss=float("nan"), seconds=1.0, status="ok", source="test",
             versions="{}")
        for e in range(1, rows + 1)
    ])
    with open(log, "a") as f:
        f.write(key + "\n")
        f.flush()
        os.fsync(f.fileno())
"""


def _start(tmp_path: Path, store: Path, tag: str, n: int, rows: int) -> tuple[subprocess.Popen, Path]:
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    log = tmp_path / f"{tag}.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(script), str(store), tag, str(n), str(rows), str(log),
                             str(tmp_path / "GO")], env=env)
    return proc, log


def _go_when_ready(tmp_path: Path, logs: list[Path], procs: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + 120
    while not all(log.exists() for log in logs):  # each writer touches its log once imported
        assert all(p.poll() is None for p in procs), "a writer exited before starting"
        assert time.monotonic() < deadline, "writers did not start"
        time.sleep(0.02)
    (tmp_path / "GO").touch()


def _logged(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if line]


def test_two_processes_appending_at_once_lose_nothing(tmp_path):
    store_dir, n, rows = tmp_path / "store", 40, 5
    started = [_start(tmp_path, store_dir, tag, n, rows) for tag in ("a", "b")]
    procs, logs = [p for p, _ in started], [log for _, log in started]
    _go_when_ready(tmp_path, logs, procs)
    for p in procs:
        assert p.wait(timeout=180) == 0
    df = MetaDatasetStore(store_dir).read()
    assert len(list((store_dir / "runs").glob("part-*.parquet"))) == 2 * n
    assert len(df) == 2 * n * rows
    assert sorted(df["run_key"].unique()) == sorted(_logged(logs[0]) + _logged(logs[1]))
    assert (df.groupby("run_key")["epoch"].count() == rows).all()


def test_a_killed_appender_loses_no_finished_part(tmp_path):
    store_dir, rows = tmp_path / "store", 3000  # big parts: the kill likely lands mid-write
    proc, log = _start(tmp_path, store_dir, "k", -1, rows)
    _go_when_ready(tmp_path, [log], [proc])
    deadline = time.monotonic() + 120
    while len(_logged(log)) < 5:
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    # A crash inside a write leaves at most a temp file; plant one to be sure one is there.
    (store_dir / "runs" / ".tmp-0123456789abcdef-part-1-2-x.parquet").write_bytes(b"PAR1 truncated")
    logged = _logged(log)
    df = MetaDatasetStore(store_dir).read()  # reads without error
    counts = df.groupby("run_key")["epoch"].count()
    assert set(logged) <= set(counts.index)  # every finished, logged append is there
    assert (counts == rows).all()  # and no part is half there
    assert len(counts) <= len(logged) + 1  # at most the one append that finished but was not yet logged


def test_compaction_racing_with_appends_keeps_every_row(tmp_path):
    store_dir, n, rows = tmp_path / "store", 60, 4
    store = MetaDatasetStore(store_dir)
    proc, log = _start(tmp_path, store_dir, "c", n, rows)
    _go_when_ready(tmp_path, [log], [proc])
    compactions = 0
    while proc.poll() is None:
        store.compact()
        compactions += 1
    assert proc.returncode == 0 and compactions >= 1
    logged = _logged(log)
    assert len(logged) == n
    df = store.read()
    assert sorted(df["run_key"].unique()) == logged and len(df) == n * rows
    final = store.compact()
    assert final["runs"]["rows"] == n * rows
    assert [p.name.split("-")[0] for p in (store_dir / "runs").iterdir()] == ["snapshot"]


def test_reads_during_compaction_see_every_row(tmp_path, runs_df):
    # A reader that lists files just before a compaction replaces them must still see all rows.
    store = MetaDatasetStore(tmp_path / "s")
    for _, part in runs_df.groupby("run_key"):
        store.append(part)
    files = store._files("runs")
    store.compact()  # the listed parts are gone now
    assert len(store._read("runs", files)) == 0  # a stale listing alone would miss them...
    assert len(store.read()) == len(runs_df)  # ...read() notices and lists again
