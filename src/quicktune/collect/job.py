"""One job: fine-tune one run and append its epochs to the store."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from quicktune.collect.plan import Job
from quicktune.metadataset.storage import MetaDatasetStore

if TYPE_CHECKING:
    from quicktune.finetune.records import EpochResult


# ------------------------------------------------------------------------------------------------
# One job (runs in a worker)
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class JobContext:
    store: str
    work_dir: str
    threads: int
    weights_dir: str | None = None
    device: str = "cpu"
    skip_unreadable: bool = False
    cache_dir: str | None = None  # the data cache (the driver's, so workers in other environments share it)


@dataclass
class JobResult:
    run_key: str
    model: str
    dataset: str
    status: str  # ok | diverged
    epochs: list[int]  # newly appended
    seconds: list[float]  # their seconds
    final_acc: float


def _in_store(store: MetaDatasetStore, run_key: str) -> tuple[set[int], bool]:
    """(epochs of `run_key` in the store, ended early), read from the store itself now: the only
    authority on what is stored (a marker beside a checkpoint can belong to another store)."""
    from quicktune.collect.plan import TERMINAL_STATUSES

    df = store.read()
    rows = df[df["run_key"] == run_key] if len(df) else df
    return {int(e) for e in rows["epoch"]}, bool(rows["status"].isin(TERMINAL_STATUSES).any())


def run_lock_path(work_dir: str | os.PathLike[str], run_key: str) -> Path:
    """The lock file of one run (beside its checkpoint folder, which is deleted when it ends)."""
    return Path(work_dir) / f"{run_key}.lock"


def run_job(job: Job, ctx: JobContext, emit: Callable[[dict[str, Any]], None] | None = None) -> JobResult:
    """Train `job` to its horizon, appending each epoch's row to the store as it finishes.

    The run is trained under an exclusive lock (`quicktune.runlock`, released by the kernel if
    this process dies): a second writer of the same run (two collects at once) waits, then finds
    the epochs in the store and trains only what is still missing. What is stored is read from the
    store after taking the lock, never from a marker file.

    `emit` receives progress events: {"kind": "epoch", "run_key", "epoch", "val_acc", "seconds"}.
    """
    import warnings

    import torch

    from quicktune.data import load_task
    from quicktune.finetune import Finetuner
    from quicktune.notice import Notice
    from quicktune.runlock import FileLock
    from quicktune.testhook import kill_point

    torch.set_num_threads(max(1, int(ctx.threads)))
    store = MetaDatasetStore(ctx.store)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Notice)  # the plan already told the user (skipped images)
        data = load_task(job.spec, job.image_size, skip_unreadable=ctx.skip_unreadable,
                         cache_dir=ctx.cache_dir if ctx.cache_dir is not None else True)
    ckpt_dir = Path(ctx.work_dir) / job.run_key
    new_epochs: list[int] = []
    new_seconds: list[float] = []

    def record(r: EpochResult) -> None:
        new_epochs.append(r.epoch)
        new_seconds.append(r.seconds)
        if emit:
            emit({"kind": "epoch", "run_key": job.run_key, "epoch": r.epoch, "val_acc": r.val_acc,
                  "seconds": r.seconds, "model": job.config.model})

    with FileLock(run_lock_path(ctx.work_dir, job.run_key)):
        stored, ended = _in_store(store, job.run_key)
        if ended or len(stored) >= job.max_epochs:  # another writer completed it meanwhile
            if ckpt_dir.exists():  # (its checkpoint, if a kill came between the last append and the delete)
                import shutil

                shutil.rmtree(ckpt_dir, ignore_errors=True)
            return JobResult(job.run_key, job.config.model, job.dataset, "diverged" if ended else "ok", [], [],
                             math.nan)
        ft = Finetuner(data, job.config, job.max_epochs, job.seed, ckpt_dir, batch_size=job.batch_size,
                       num_threads=ctx.threads, weights_dir=ctx.weights_dir, pretrained=job.pretrained,
                       device=ctx.device, keep_model=False, dataset=job.dataset)
        if ft.run_key != job.run_key:  # the plan and the worker must agree on what the run is
            raise RuntimeError(f"run key mismatch for {job.describe()}: planned {job.run_key}, worker {ft.run_key}")

        # Epochs a killed job checkpointed but never appended.
        backlog = [r for r in ft.results if r.epoch not in stored]
        if backlog:
            store.append(ft.rows(backlog))
            stored |= {r.epoch for r in backlog}
            for r in backlog:
                record(r)

        def on_epoch(r: EpochResult) -> None:
            if r.epoch in stored:  # retrained after a lost checkpoint: the store has this epoch already
                return
            store.append(ft.rows([r]))
            stored.add(r.epoch)
            kill_point("collect_after_append")
            record(r)

        ft.train_until(job.max_epochs, on_epoch=on_epoch)
        if ft.finished:
            ft.delete_checkpoint()  # every row is stored; nothing left to continue
    final = ft.results[-1].val_acc if ft.results else math.nan
    return JobResult(job.run_key, job.config.model, job.dataset, ft.status, new_epochs, new_seconds, final)
