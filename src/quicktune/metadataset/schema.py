"""Columns of the meta-dataset and the run key.

Long format: one row per (run, epoch). A run is fully defined by its dataset, model,
hyperparameters, seed, epoch horizon and the version of the fine-tuning procedure; its
`run_key` is a hash of exactly those, so the same run collected twice gets the same key and is
de-duplicated on read.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass
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


# ------------------------------------------------------------------------------------------------
# Typed settings: how runs were trained and how domain features were computed. They travel as
# JSON (a row's `versions` column, a surrogate's `info`), but are built and read only here.
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunSetting:
    """How one run was trained, beyond its config: recorded in each row's `versions` JSON."""

    image_size: int | None = None
    batch_size: int | None = None
    pretrained: bool = True
    device: str | None = None  # recorded for accelerators only (CPU rows keep v1's JSON)
    amp: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_versions(cls, text: Any) -> RunSetting | None:
        """The setting recorded in a `versions` JSON string; None when it records none (an
        imported row, or not JSON). Unknown keys (library versions, ...) are ignored."""
        try:
            v = json.loads(text)
        except (TypeError, ValueError):
            return None
        if not isinstance(v, dict) or not ({"image_size", "batch_size"} & set(v)):
            return None
        return cls(
            image_size=int(v["image_size"]) if v.get("image_size") else None,
            batch_size=int(v["batch_size"]) if v.get("batch_size") else None,
            pretrained=bool(v.get("pretrained", True)),
            device=str(v["device"]) if v.get("device") else None,
            amp=bool(v["amp"]) if "amp" in v else None,
        )


@dataclass(frozen=True)
class FinetuneSetting:
    """How a meta-dataset's runs were trained, which `suggest` must repeat for the surrogate's
    predictions to be about the same procedure: the most common batch size and the largest
    image size (None when the rows do not record it)."""

    batch_size: int | None = None
    max_image_size: int | None = None

    def to_dict(self) -> dict[str, int]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> FinetuneSetting:
        d = d or {}
        return cls(int(d["batch_size"]) if d.get("batch_size") else None,
                   int(d["max_image_size"]) if d.get("max_image_size") else None)

    @classmethod
    def from_runs(cls, runs: Any) -> FinetuneSetting:
        """From the `versions` column of run rows (a DataFrame); empty when none records it."""
        if "versions" not in getattr(runs, "columns", ()) or len(runs) == 0:
            return cls()
        batch: Counter[int] = Counter()
        sizes: list[int] = []
        for text in runs["versions"].dropna().unique():
            s = RunSetting.from_versions(text)
            if s is None:
                continue
            if s.batch_size is not None:
                batch[s.batch_size] += 1
            if s.image_size is not None:
                sizes.append(s.image_size)
        return cls(batch.most_common(1)[0][0] if batch else None, max(sizes) if sizes else None)


@dataclass(frozen=True)
class FeatureSettings:
    """How per-(model, dataset) domain features are computed: a class-stratified sample of
    `n_samples` training images drawn with `seed` (the v1 campaign's 500 and 0). `collect` and
    `suggest` both take them from here (suggest: from the surrogate, which records the settings of
    the store it learned from), so a target's features are computed like the training ones."""

    n_samples: int = 500
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_samples < 1:
            raise ValueError(f"`n_samples >= 1` must hold, but got n_samples={self.n_samples}")

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> FeatureSettings:
        d = d or {}
        return cls(int(d.get("n_samples", cls.n_samples)), int(d.get("seed", cls.seed)))


DEFAULT_FEATURE_SETTINGS = FeatureSettings()
