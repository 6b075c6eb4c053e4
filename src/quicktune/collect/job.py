"""One job: fine-tune one run and append its epochs to the store."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quicktune.atomic import atomic_write
from quicktune.collect.plan import Job
from quicktune.metadataset.storage import MetaDatasetStore


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


def _stored_marker(ckpt_dir: Path) -> Path:
    return ckpt_dir / "stored.json"


def run_job(job: Job, ctx: JobContext, emit: Callable[[dict[str, Any]], None] | None = None) -> JobResult:
    """Train `job` to its horizon, appending each epoch's row to the store as it finishes.

    `emit` receives progress events: {"kind": "epoch", "run_key", "epoch", "val_acc", "seconds"}.
    """
    import torch

    from quicktune.data import load_task
    from quicktune.finetune import Finetuner

    torch.set_num_threads(max(1, int(ctx.threads)))
    store = MetaDatasetStore(ctx.store)
    data = load_task(job.spec, job.image_size, skip_unreadable=ctx.skip_unreadable,
                     cache_dir=ctx.cache_dir if ctx.cache_dir is not None else True)
    ckpt_dir = Path(ctx.work_dir) / job.run_key
    ft = Finetuner(data, job.config, job.max_epochs, job.seed, ckpt_dir, batch_size=job.batch_size,
                   num_threads=ctx.threads, weights_dir=ctx.weights_dir, pretrained=job.pretrained,
                   device=ctx.device, keep_model=False, dataset=job.dataset)
    if ft.run_key != job.run_key:  # the plan and the worker must agree on what the run is
        raise RuntimeError(f"run key mismatch for {job.describe()}: planned {job.run_key}, worker {ft.run_key}")
    marker = _stored_marker(ckpt_dir)
    stored = set(job.stored)
    if marker.exists():
        stored |= set(json.loads(marker.read_text()))
    new_epochs: list[int] = []
    new_seconds: list[float] = []

    def mark(epochs: set[int]) -> None:
        with atomic_write(marker, "w") as f:
            f.write(json.dumps(sorted(epochs)))

    # Epochs a killed job checkpointed but never appended.
    backlog = [r for r in ft.results if r.epoch not in stored]
    if backlog:
        store.append(ft.rows(backlog))
        stored |= {r.epoch for r in backlog}
        mark(stored)
        for r in backlog:
            new_epochs.append(r.epoch)
            new_seconds.append(r.seconds)
            if emit:
                emit({"kind": "epoch", "run_key": job.run_key, "epoch": r.epoch, "val_acc": r.val_acc,
                      "seconds": r.seconds, "model": job.config.model})

    def on_epoch(r: Any) -> None:
        if r.epoch in stored:  # retrained after a lost checkpoint: the store has this epoch already
            return
        store.append(ft.rows([r]))
        stored.add(r.epoch)
        mark(stored)
        new_epochs.append(r.epoch)
        new_seconds.append(r.seconds)
        if emit:
            emit({"kind": "epoch", "run_key": job.run_key, "epoch": r.epoch, "val_acc": r.val_acc,
                  "seconds": r.seconds, "model": job.config.model})

    ft.train_until(job.max_epochs, on_epoch=on_epoch)
    if ft.finished:
        ft.delete_checkpoint()  # every row is stored; nothing left to continue
    final = ft.results[-1].val_acc if ft.results else math.nan
    return JobResult(job.run_key, job.config.model, job.dataset, ft.status, new_epochs, new_seconds, final)
