"""Columns of the meta-dataset and the run key.

Long format: one row per (run, epoch). A run is fully defined by its dataset, model,
hyperparameters, seed, epoch horizon and the version of the fine-tuning procedure; its
`run_key` is a hash of exactly those, so the same run collected twice gets the same key and is
de-duplicated on read.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

import pyarrow as pa

if TYPE_CHECKING:  # space.py imports torch; the store (and its writers) should not need it
    from quicktune.space import Config

SCHEMA_VERSION = 1

# Bump when the fine-tuning procedure changes in a way that changes curves: old runs then no
# longer count as done for the new procedure (their run_keys differ).
FINETUNE_VERSION = "ft1"

STATUSES = ("ok", "diverged", "failed")

RUN_SCHEMA = pa.schema(
    [
        ("run_key", pa.string()),
        ("dataset", pa.string()),
        ("model", pa.string()),
        ("elr", pa.float64()),
        ("lr", pa.float64()),
        ("momentum", pa.float64()),
        ("weight_decay", pa.float64()),
        ("optimizer", pa.string()),
        ("extras", pa.string()),  # canonical JSON of Config.extras (sorted keys)
        ("seed", pa.int64()),
        ("max_epochs", pa.int64()),  # the epoch horizon of the schedule (part of the run's identity)
        ("epoch", pa.int64()),  # 1-based
        ("val_acc", pa.float64()),  # fraction in [0, 1]; NaN for a diverged epoch
        ("val_loss", pa.float64()),  # NaN when unknown
        ("train_loss", pa.float64()),  # NaN when unknown
        ("seconds", pa.float64()),  # wall-clock seconds of this epoch (train + eval)
        ("status", pa.string()),  # one of STATUSES
        ("source", pa.string()),  # e.g. "collect", "quicktune-import"
        ("versions", pa.string()),  # JSON: schema, finetune, quicktune, torch, timm versions
        ("written_at", pa.float64()),  # unix time the row was written (latest wins on de-dup)
    ]
)
RUN_COLUMNS = RUN_SCHEMA.names

# Features: dataset-level (model == "") and per (model, dataset) domain features.
FEATURE_SCHEMA = pa.schema(
    [
        ("dataset", pa.string()),
        ("model", pa.string()),
        ("name", pa.string()),
        ("value", pa.float64()),
        ("written_at", pa.float64()),
    ]
)
FEATURE_COLUMNS = FEATURE_SCHEMA.names

DATASET_DESCRIPTORS = ("n_samples", "n_classes", "image_size", "channels")


def run_key(dataset: str, config: Config, seed: int, max_epochs: int, finetune_version: str = FINETUNE_VERSION,
            **identity: Any) -> str:
    """A stable 20-hex-digit hash of everything that defines a run.

    `identity` takes anything else that distinguishes runs (e.g. the source's own run id when
    importing a published meta-dataset, so distinct recorded runs never collapse).
    """
    payload = {
        "dataset": dataset,
        "config": config.to_dict(),
        "seed": int(seed),
        "max_epochs": int(max_epochs),
        "finetune_version": finetune_version,
        **{k: identity[k] for k in sorted(identity)},
    }
    blob = json.dumps(payload, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def config_from_row(row: Any) -> Config:
    """Rebuild the Config of a meta-dataset row (a pandas row / mapping with the run columns)."""
    from quicktune.space import Config

    extras = json.loads(row["extras"]) if row["extras"] else {}
    return Config(row["model"], float(row["elr"]), float(row["weight_decay"]), float(row["momentum"]), extras)
