"""Learning curves as dense arrays with named axes (like syne-tune's BlackboxTabular).

`CurveTable` turns the long-format rows of a store into one `TaskCurves` per dataset:

    perf[run, epoch]   validation accuracy in [0, 1]; NaN after the run's last recorded epoch
                       (and for a diverged epoch inside the recorded range)
    cost[run, epoch]   seconds for that epoch; NaN after the last recorded epoch
    lengths[run]       number of recorded epochs

Axis 1 has `max_epochs` entries (the largest horizon in the table); epoch t is column t - 1.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from quicktune.metadataset.schema import DATASET_DESCRIPTORS, config_from_row
from quicktune.space import Config


@dataclass
class TaskCurves:
    """Every recorded run on one dataset."""

    dataset: str
    configs: list[Config]  # n runs (distinct recorded runs; two runs may share a Config)
    run_keys: list[str]  # n
    perf: np.ndarray  # (n x T)
    cost: np.ndarray  # (n x T)
    lengths: np.ndarray  # (n,) int
    dataset_features: dict[str, float] = field(default_factory=dict)
    pair_features: dict[str, dict[str, float]] = field(default_factory=dict)  # model -> {name: value}

    def __post_init__(self) -> None:
        n = len(self.configs)
        if self.perf.shape != self.cost.shape or self.perf.shape[0] != n or len(self.lengths) != n:
            raise ValueError(
                f"perf, cost, lengths and configs must agree on the number of runs, but got "
                f"perf {self.perf.shape}, cost {self.cost.shape}, lengths {len(self.lengths)}, configs {n}"
            )

    @property
    def n_runs(self) -> int:
        return len(self.configs)

    @property
    def max_epochs(self) -> int:
        return int(self.perf.shape[1])

    @cached_property
    def best(self) -> float:
        """Best accuracy recorded on this dataset (any run, any epoch)."""
        return float(np.nanmax(self.perf))

    @cached_property
    def worst(self) -> float:
        """Worst accuracy recorded on this dataset (any run, any epoch)."""
        return float(np.nanmin(self.perf))

    def regret(self, incumbent: float | np.ndarray) -> float | np.ndarray:
        """Normalized regret (best - incumbent) / (best - worst), clipped to [0, 1]; NaN -> 1."""
        span = self.best - self.worst
        inc = np.asarray(incumbent, dtype=float)
        r = np.where(np.isnan(inc), 1.0, (self.best - inc) / span if span > 0 else 0.0)
        r = np.clip(r, 0.0, 1.0)
        return float(r) if r.ndim == 0 else r

    def total_seconds(self) -> float:
        return float(np.nansum(self.cost))


class CurveTable:
    """All datasets of a meta-dataset as `TaskCurves` (built once from the long-format rows)."""

    def __init__(self, runs: pd.DataFrame, features: pd.DataFrame | None = None) -> None:
        if runs.empty:
            raise ValueError("the meta-dataset holds no runs; import or collect some first")
        self.max_epochs = int(max(runs["max_epochs"].max(), runs["epoch"].max()))
        self._runs = runs
        self._rows_of = runs.groupby("dataset", sort=False).indices  # dataset -> row positions (one pass)
        self._features = features if features is not None else pd.DataFrame(columns=["dataset", "model", "name", "value"])
        self.datasets: list[str] = sorted(runs["dataset"].unique().tolist())
        self._tasks: dict[str, TaskCurves] = {}

    @property
    def models(self) -> list[str]:
        return sorted(self._runs["model"].unique().tolist())

    def task(self, dataset: str) -> TaskCurves:
        if dataset not in self.datasets:
            raise KeyError(f"dataset {dataset!r} is not in the meta-dataset; known datasets: {self.datasets}")
        if dataset not in self._tasks:
            self._tasks[dataset] = self._build(dataset)
        return self._tasks[dataset]

    def tasks(self) -> list[TaskCurves]:
        return [self.task(d) for d in self.datasets]

    def restrict(self, datasets: Iterable[str]) -> CurveTable:
        """A view holding only `datasets`: the others are absent from `datasets`, `task()`,
        `tasks()`, the models and feature names, so nothing held out can leak. Tasks already
        built are shared, not copied."""
        keep = set(datasets)
        missing = keep - set(self.datasets)
        if missing:
            raise KeyError(f"datasets {sorted(missing)} are not in the meta-dataset; known: {self.datasets}")
        view = copy.copy(self)
        view.datasets = [d for d in self.datasets if d in keep]
        view._tasks = {d: t for d, t in self._tasks.items() if d in keep}
        view._runs = self._runs[self._runs["dataset"].isin(keep)]
        view._features = self._features[self._features["dataset"].isin(keep)]
        # Row positions index the filtered frame: recomputed, or building a task that was not
        # built before the restriction would read the wrong rows (or none).
        view._rows_of = view._runs.groupby("dataset", sort=False).indices
        return view

    def _build(self, dataset: str) -> TaskCurves:
        df = self._runs.iloc[self._rows_of[dataset]].sort_values(["run_key", "epoch"])
        first = df.drop_duplicates("run_key").reset_index(drop=True)
        keys = first["run_key"].tolist()
        pos = {k: i for i, k in enumerate(keys)}
        n, T = len(keys), self.max_epochs
        perf = np.full((n, T), np.nan)
        cost = np.full((n, T), np.nan)
        rows = df["run_key"].map(pos).to_numpy()
        cols = df["epoch"].to_numpy() - 1
        keep = cols < T
        perf[rows[keep], cols[keep]] = df["val_acc"].to_numpy(dtype=float)[keep]
        cost[rows[keep], cols[keep]] = df["seconds"].to_numpy(dtype=float)[keep]
        # A run's length is its last recorded epoch (recordings are contiguous from epoch 1).
        lengths = df.groupby("run_key")["epoch"].max().reindex(keys).to_numpy(dtype=int)
        configs = [
            config_from_row({"model": m, "elr": e, "weight_decay": w, "momentum": mo, "extras": x})
            for m, e, w, mo, x in zip(first["model"], first["elr"], first["weight_decay"], first["momentum"],
                                      first["extras"])
        ]

        feats = self._features[self._features["dataset"] == dataset]
        dataset_features = {str(r.name): float(r.value) for r in feats[feats["model"] == ""].itertuples()}
        pair: dict[str, dict[str, float]] = {}
        for r in feats[feats["model"] != ""].itertuples():
            pair.setdefault(str(r.model), {})[str(r.name)] = float(r.value)
        return TaskCurves(dataset, configs, keys, perf, cost, lengths, dataset_features, pair)

    def dataset_feature_names(self) -> list[str]:
        """Dataset-level feature names present for every dataset, descriptors first."""
        f = self._features[self._features["model"] == ""]
        common = set.intersection(*(set(f[f["dataset"] == d]["name"]) for d in self.datasets)) if len(f) else set()
        return [n for n in DATASET_DESCRIPTORS if n in common] + sorted(common - set(DATASET_DESCRIPTORS))

    def pair_feature_names(self) -> list[str]:
        """(model, dataset) feature names (present for at least one pair)."""
        f = self._features[self._features["model"] != ""]
        return sorted(f["name"].unique().tolist())


def nan_to_last(curve: np.ndarray) -> np.ndarray:
    """Forward-fill NaNs along the last axis (a diverged epoch keeps the previous value; leading
    NaNs become 0). Used for plotting and for surrogate inputs, never for regret.

    curve: an array of any shape (..., T); returns a float array of the same shape.
    """
    arr = np.asarray(curve, dtype=float)
    flat = arr.reshape(-1, arr.shape[-1]) if arr.ndim else arr.reshape(1, 1)
    filled = pd.DataFrame(flat).ffill(axis=1).fillna(0.0).to_numpy()
    out: np.ndarray = filled.reshape(arr.shape)
    return out
