"""A run's identity, its epoch results and their store rows."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from quicktune.data import TaskData
from quicktune.metadataset.schema import (
    FINETUNE_VERSION,
    SCHEMA_VERSION,
    RunSetting,
    run_key,
)
from quicktune.space import Config

DEFAULT_BATCH_SIZE = 64
CHECKPOINT_NAME = "checkpoint.pt"
_CKPT_FORMAT = 1


@dataclass(frozen=True)
class EpochResult:
    """One finished epoch. val_acc is a fraction in [0, 1] (NaN when diverged)."""

    epoch: int
    val_acc: float
    val_loss: float
    train_loss: float
    seconds: float
    lr: float  # learning rate at the end of the epoch (after the cosine decay)
    status: str = "ok"  # "ok" | "diverged"


def _epoch_seed(seed: int, epoch: int, stream: int) -> int:
    """A 63-bit seed for (run seed, epoch, stream), independent of everything else."""
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, epoch, stream]).generate_state(2, np.uint64)[0] >> 1)


def versions(setting: RunSetting | None = None) -> str:
    """The `versions` column: schema/procedure/library versions plus how the run was trained."""
    import timm

    import quicktune

    v: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "finetune": FINETUNE_VERSION,
        "quicktune": quicktune.__version__,
        "torch": torch.__version__.split("+")[0],
        "timm": timm.__version__,
    }
    v.update(setting.to_dict() if setting is not None else {})
    return json.dumps(v, sort_keys=True)


def epoch_rows(
    results: Iterable[EpochResult],
    *,
    dataset: str,
    config: Config,
    seed: int,
    max_epochs: int,
    key: str | None = None,
    source: str = "collect",
    setting: RunSetting | None = None,
) -> list[dict[str, Any]]:
    """RUN_SCHEMA rows (one per epoch) for the meta-dataset store."""
    key = key or run_key(dataset, config, seed, max_epochs)
    ver = versions(setting)
    return [
        dict(
            run_key=key, dataset=dataset, model=config.model, elr=config.elr, lr=config.lr,
            momentum=config.momentum, weight_decay=config.weight_decay, optimizer=config.optimizer,
            extras=config.extras_json(), seed=int(seed), max_epochs=int(max_epochs), epoch=int(r.epoch),
            val_acc=float(r.val_acc), val_loss=float(r.val_loss), train_loss=float(r.train_loss),
            seconds=float(r.seconds), status=r.status, source=source, versions=ver, written_at=time.time(),
        )
        for r in results
    ]


def run_identity(
    data: TaskData,
    config: Config,
    max_epochs: int,
    seed: int = 0,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    pretrained: bool = True,
    weights_dir: str | os.PathLike[str] | None = None,
    dataset: str | None = None,
) -> tuple[str, str]:
    """(dataset name, run_key) of the run a `Finetuner` with these arguments trains.

    The dataset name is the task's name. When the task's spec names no resolution, each model
    trains at a resolution chosen for it (its input size, or a cap such as 64 px on a CPU); the
    task stays the same task (as in the Quick-Tune meta-dataset, where every model has its own
    resolution) and a resolution other than the model's input size joins the run key, so runs at
    different resolutions never share a key. A non-default batch size (not given as a config
    extra), pretrained=False and a held-out test split (which changes the training images) are
    part of the key too.
    """
    from quicktune.hub import model_info

    identity: dict[str, Any] = {}
    if dataset is None:
        dataset = data.name
    if data.spec.size is None and data.size != model_info(config.model, weights_dir).input_size:
        identity["image_size"] = int(data.size)
    bs = int(config.extra("batch_size", batch_size))
    if bs != DEFAULT_BATCH_SIZE and config.extra("batch_size") is None:
        identity["batch_size"] = bs
    if not pretrained:
        identity["pretrained"] = False
    if data.spec.holds_out_test:  # trained on the images left after holding out a test split
        identity["test_fraction"] = float(data.spec.test_fraction)  # type: ignore[arg-type]
    return dataset, run_key(dataset, config, int(seed), int(max_epochs), **identity)
