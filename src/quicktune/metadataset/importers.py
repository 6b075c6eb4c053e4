"""Import the published Quick-Tune meta-dataset format into long-format run rows.

One version directory of the published meta-dataset ("micro", "mini", "extended") holds:

    table.csv              one row per run id (first, unnamed column); hyperparameters as one-hot
                           groups `cat:<group>:<value>` and numeric columns (lr, momentum, ...)
    curves/perf.json       {dataset: {run_id: [top-1 accuracy in % per epoch]}}, plus an `info` entry
    curves/cost.json       the same keys; seconds per epoch
    meta/descriptors.json  {dataset: [n_samples, n_classes, image_size, channels]}

table.csv may describe more runs than the curves hold; only run ids with a curve become runs.

Quick-Tune trained with timm, whose optimizer names differ from the plain meaning of the words:
timm's `sgd` is torch SGD with *Nesterov* momentum and timm's `momentum` is heavy-ball momentum
SGD (timm/optim/_optim_factory.py). Both are SGD-family, so ELR = lr / (1 - momentum) (= lr when
momentum is 0); we record them as "nesterov" and "momentum". Adam-family optimizers keep ELR = lr.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import quicktune
from quicktune.metadataset.schema import (
    DATASET_DESCRIPTORS,
    FEATURE_COLUMNS,
    RUN_COLUMNS,
    SCHEMA_VERSION,
    run_key,
)
from quicktune.metadataset.storage import MetaDatasetStore, StoreError
from quicktune.space import ADAPTIVE_OPTIMIZERS, Config

# timm optimizer name (the `cat:opt:<name>` column) -> the optimizer we record.
TIMM_OPTIMIZERS = {
    "sgd": "nesterov",  # timm: optim.SGD(..., momentum=args.momentum, nesterov=True)
    "nesterov": "nesterov",
    "momentum": "momentum",  # timm: optim.SGD(..., momentum=args.momentum, nesterov=False)
    **{name: name for name in sorted(ADAPTIVE_OPTIMIZERS)},
}

# Columns consumed by the Config itself; every other hyperparameter column becomes an extra.
_CORE_NUMERIC = ("lr", "momentum", "weight_decay")
_CORE_GROUPS = ("model", "opt")
_VERSIONS = ("micro", "mini", "extended")


class QuickTuneFormatError(StoreError):
    """A directory is not (or not a well-formed) Quick-Tune meta-dataset."""


@dataclass(frozen=True)
class _Files:
    root: Path
    table: Path
    perf: Path
    cost: Path
    descriptors: Path


def is_quicktune_dir(path: str | Path) -> bool:
    """True when `path` looks like a Quick-Tune version directory (table.csv + curves/perf.json)."""
    p = Path(path)
    return (p / "table.csv").is_file() and (p / "curves" / "perf.json").is_file()


def _locate(root: Path) -> _Files:
    if not root.exists():
        raise QuickTuneFormatError(f"{root}: no such directory")
    if not root.is_dir():
        raise QuickTuneFormatError(f"{root}: not a directory (expected a Quick-Tune meta-dataset folder)")
    nested = [v for v in _VERSIONS if is_quicktune_dir(root / v)]
    if nested and not is_quicktune_dir(root):
        raise QuickTuneFormatError(
            f"{root} holds the Quick-Tune versions {nested}; pass one of them, e.g. {root / nested[0]}"
        )
    files = _Files(root, root / "table.csv", root / "curves" / "perf.json", root / "curves" / "cost.json",
                   root / "meta" / "descriptors.json")
    for p in (files.table, files.perf, files.cost, files.descriptors):
        if not p.is_file():
            raise QuickTuneFormatError(f"{p}: missing (a Quick-Tune meta-dataset needs table.csv, "
                                       f"curves/perf.json, curves/cost.json and meta/descriptors.json)")
    return files


def _load_json(path: Path) -> dict[str, Any]:
    try:
        with open(path) as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise QuickTuneFormatError(f"{path}: not valid JSON ({e})") from None
    except OSError as e:
        raise QuickTuneFormatError(f"{path}: cannot be read ({e.strerror})") from None
    if not isinstance(data, dict):
        raise QuickTuneFormatError(f"{path}: expected a JSON object keyed by dataset, but got {type(data).__name__}")
    return data


def _load_table(path: Path) -> pd.DataFrame:
    try:
        table = pd.read_csv(path, index_col=0)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as e:
        raise QuickTuneFormatError(f"{path}: not a readable CSV table ({str(e).splitlines()[0]})") from None
    if table.index.hasnans:
        raise QuickTuneFormatError(f"{path}: the first column must hold a run id on every row, but some are empty")
    # Ids are read as numbers but are keys of the curve files: compare them as strings.
    table.index = table.index.map(lambda v: str(int(v)) if isinstance(v, float) and v.is_integer() else str(v))
    dup = table.index[table.index.duplicated()]
    if len(dup):
        raise QuickTuneFormatError(f"{path}: run ids must be unique, but {sorted(set(dup))[:5]} appear more than once")
    missing = [c for c in _CORE_NUMERIC if c not in table.columns]
    missing += [f"cat:{g}:*" for g in _CORE_GROUPS if not any(c.startswith(f"cat:{g}:") for c in table.columns)]
    if missing:
        raise QuickTuneFormatError(f"{path}: missing required column(s) {missing}")
    return table


def _version(root: Path, info: Any) -> str:
    if isinstance(info, dict) and info.get("version"):
        return str(info["version"])
    name = root.resolve().name
    return name.removeprefix("quicktune-").removeprefix("quicktune_") or "unknown"


def _flatten_curves(
    files: _Files, perf: dict[str, Any], cost: dict[str, Any]
) -> tuple[list[str], list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Curves as flat arrays in (dataset, run id) order, checked for consistency.

    Returns (datasets, run_ids, lengths, acc_percent, seconds): per-run lists and flat value arrays.
    """
    extra = sorted(set(cost) - set(perf))
    if extra:
        raise QuickTuneFormatError(f"{files.cost}: datasets {extra[:5]} have costs but no curves in {files.perf.name}")
    datasets, run_ids, lengths, accs, secs = [], [], [], [], []
    empty = 0
    for d in sorted(perf):
        runs_p = perf[d]
        if not isinstance(runs_p, dict):
            raise QuickTuneFormatError(f"{files.perf}: entry {d!r} must map run ids to curves, but is a {type(runs_p).__name__}")
        if d not in cost:
            raise QuickTuneFormatError(f"{files.cost}: dataset {d!r} has curves in {files.perf.name} but no costs")
        runs_c = cost[d]
        if not isinstance(runs_c, dict):
            raise QuickTuneFormatError(f"{files.cost}: entry {d!r} must map run ids to costs, but is a {type(runs_c).__name__}")
        only_c = set(runs_c) - set(runs_p)
        if only_c:
            raise QuickTuneFormatError(f"{files.cost}: dataset {d!r} has costs for runs without curves, e.g. {sorted(only_c)[:3]}")
        for rid, p in runs_p.items():
            c = runs_c.get(rid)
            if c is None:
                raise QuickTuneFormatError(f"{files.cost}: dataset {d!r} run {rid!r} has a curve but no costs")
            if not isinstance(p, list) or not isinstance(c, list):
                raise QuickTuneFormatError(f"{files.perf if not isinstance(p, list) else files.cost}: dataset {d!r} "
                                           f"run {rid!r} must be a list of per-epoch values")
            if len(p) != len(c):
                raise QuickTuneFormatError(f"{files.perf}: dataset {d!r} run {rid!r} has {len(p)} epochs of accuracy "
                                           f"but {files.cost.name} has {len(c)} epochs of cost")
            if not p:
                empty += 1
                continue
            datasets.append(d)
            run_ids.append(str(rid))
            lengths.append(len(p))
            accs.extend(p)
            secs.extend(c)
    if empty:
        warnings.warn(f"{files.perf}: skipped {empty} run(s) with an empty curve", stacklevel=3)
    if not datasets:
        raise QuickTuneFormatError(f"{files.perf}: holds no learning curves")
    try:
        acc = np.asarray(accs, dtype=float)  # JSON null -> NaN (a diverged epoch)
    except (TypeError, ValueError):
        raise QuickTuneFormatError(f"{files.perf}: accuracies must be numbers (or null), but some are not") from None
    try:
        sec = np.asarray(secs, dtype=float)
    except (TypeError, ValueError):
        raise QuickTuneFormatError(f"{files.cost}: costs must be numbers of seconds, but some are not") from None
    ok = ~np.isnan(acc)
    if ((acc[ok] < 0) | (acc[ok] > 100 + 1e-6)).any():
        bad = acc[ok][(acc[ok] < 0) | (acc[ok] > 100 + 1e-6)][0]
        raise QuickTuneFormatError(f"{files.perf}: accuracies must be top-1 % in [0, 100], but got {float(bad)!r}")
    if not (np.isfinite(sec) & (sec >= 0)).all():
        bad = sec[~(np.isfinite(sec) & (sec >= 0))][0]
        raise QuickTuneFormatError(f"{files.cost}: costs must be finite seconds >= 0, but got {float(bad)!r}")
    return datasets, run_ids, np.asarray(lengths, dtype=np.int64), acc, sec


def _one_hot_groups(columns: list[str]) -> dict[str, list[tuple[str, str]]]:
    """`cat:<group>:<value>` columns -> {group: [(column, value), ...]}."""
    groups: dict[str, list[tuple[str, str]]] = {}
    for c in columns:
        if c.startswith("cat:"):
            parts = c.split(":", 2)
            if len(parts) == 3 and parts[1]:
                groups.setdefault(parts[1], []).append((c, parts[2]))
    return groups


def _collapse(path: Path, sub: pd.DataFrame, group: str, cols: list[tuple[str, str]], required: bool) -> list[str | None]:
    """The active value of a one-hot group per row (None when no column of the group is set)."""
    x = sub[[c for c, _ in cols]].to_numpy(dtype=float)
    if np.isnan(x).any() or not np.isin(x, (0.0, 1.0)).all():
        raise QuickTuneFormatError(f"{path}: one-hot columns cat:{group}:* must hold 0 or 1")
    active = x.sum(axis=1)
    if (active > 1).any():
        rid = sub.index[np.argmax(active > 1)]
        raise QuickTuneFormatError(f"{path}: run {rid!r} sets more than one cat:{group}:* column")
    if required and (active == 0).any():
        rid = sub.index[np.argmax(active == 0)]
        raise QuickTuneFormatError(f"{path}: run {rid!r} sets no cat:{group}:* column")
    values = np.array([v for _, v in cols], dtype=object)[x.argmax(axis=1)]
    return [v if a else None for v, a in zip(values.tolist(), active.tolist())]


def _native(v: Any) -> Any:
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    return v


def _configs(files: _Files, table: pd.DataFrame, run_ids: list[str]) -> dict[str, Config]:
    """One Config per distinct run id with a curve."""
    used = list(dict.fromkeys(run_ids))
    unknown = [r for r in used if r not in table.index]
    if unknown:
        raise QuickTuneFormatError(f"{files.perf}: {len(unknown)} run id(s) have curves but no row in "
                                   f"{files.table.name}, e.g. {unknown[:3]}")
    sub = table.loc[used]
    groups = _one_hot_groups(list(table.columns))
    collapsed = {g: _collapse(files.table, sub, g, cols, required=g in _CORE_GROUPS) for g, cols in groups.items()}
    opt_names = sorted({o for o in collapsed["opt"] if o is not None})
    unknown_opt = [o for o in opt_names if o.lower() not in TIMM_OPTIMIZERS]
    if unknown_opt:
        raise QuickTuneFormatError(f"{files.table}: optimizer(s) {unknown_opt} have no ELR rule; "
                                   f"known: {sorted(TIMM_OPTIMIZERS)}")
    core = sub[list(_CORE_NUMERIC)]
    try:
        core = core.astype(float)
    except (TypeError, ValueError):
        raise QuickTuneFormatError(f"{files.table}: columns {list(_CORE_NUMERIC)} must be numbers") from None
    if core.isna().any().any():
        col = core.columns[core.isna().any()].tolist()
        raise QuickTuneFormatError(f"{files.table}: columns {col} must be set for every run with a curve")
    for rule, bad in (
        ("`lr > 0`", ~(core["lr"] > 0)),
        ("`0 <= momentum < 1`", ~((core["momentum"] >= 0) & (core["momentum"] < 1))),
        ("`weight_decay >= 0`", ~(core["weight_decay"] >= 0)),
    ):
        if bad.any():
            rid = core.index[bad.to_numpy()][0]
            raise QuickTuneFormatError(f"{files.table}: run {rid!r}: {rule} must hold, but got "
                                       f"lr={core.at[rid, 'lr']!r}, momentum={core.at[rid, 'momentum']!r}, "
                                       f"weight_decay={core.at[rid, 'weight_decay']!r}")

    other = [c for c in table.columns if not c.startswith("cat:") and c not in _CORE_NUMERIC]
    # to_dict gives Python scalars; a missing value (NaN) leaves the extra out for that run.
    records = sub[other].to_dict("records")
    lrs, moms, wds = (core[c].tolist() for c in _CORE_NUMERIC)
    extra_groups = [g for g in groups if g not in _CORE_GROUPS]
    configs: dict[str, Config] = {}
    for i, rid in enumerate(used):
        extras: dict[str, Any] = {}
        for k, v in records[i].items():
            v = _native(v)
            if v is None or (isinstance(v, float) and math.isnan(v)):
                continue
            extras[k] = v if isinstance(v, (int, float, bool)) else str(v)
        for g in extra_groups:
            if collapsed[g][i] is not None:
                extras[g] = collapsed[g][i]
        model, opt = collapsed["model"][i], collapsed["opt"][i]
        assert model is not None and opt is not None  # (required groups: _collapse refused a run without one)
        try:
            configs[rid] = Config.from_lr(
                model, lrs[i], momentum=moms[i], weight_decay=wds[i],
                optimizer=TIMM_OPTIMIZERS[opt.lower()], **extras,
            )
        except (ValueError, TypeError) as e:
            raise QuickTuneFormatError(f"{files.table}: run {rid!r}: {e}") from None
    return configs


def _descriptor_rows(files: _Files, descriptors: dict[str, Any], datasets: list[str], written_at: float) -> pd.DataFrame:
    rows = []
    for d in datasets:
        v = descriptors.get(d)
        if v is None:
            raise QuickTuneFormatError(f"{files.descriptors}: no descriptors for dataset {d!r}")
        if not (isinstance(v, list) and len(v) == len(DATASET_DESCRIPTORS)
                and all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v)):
            raise QuickTuneFormatError(f"{files.descriptors}: dataset {d!r} must have {len(DATASET_DESCRIPTORS)} "
                                       f"numbers {list(DATASET_DESCRIPTORS)}, but got {v!r}")
        rows += [(d, "", n, float(x), written_at) for n, x in zip(DATASET_DESCRIPTORS, v)]
    return pd.DataFrame(rows, columns=FEATURE_COLUMNS)


def read_quicktune(path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read a Quick-Tune-format directory into (run rows, feature rows), in memory.

    Run rows have the RUN_SCHEMA columns (one per run and epoch; accuracy as a fraction in [0, 1];
    a NaN accuracy has status "diverged"); feature rows have the FEATURE_SCHEMA columns (the four
    dataset descriptors, model ""). Raises QuickTuneFormatError (a StoreError) with a one-line
    message naming the file and the problem when the directory is malformed.
    """
    files = _locate(Path(path))
    table = _load_table(files.table)
    perf = _load_json(files.perf)
    cost = _load_json(files.cost)
    descriptors = _load_json(files.descriptors)
    info = perf.pop("info", None)
    cost.pop("info", None)
    descriptors.pop("info", None)
    version = _version(files.root, info)

    datasets, run_ids, lengths, acc, sec = _flatten_curves(files, perf, cost)
    configs = _configs(files, table, run_ids)
    horizon = int(lengths.max())  # the schedule's epoch horizon: the longest recorded curve

    n = len(run_ids)
    keys = [run_key(d, configs[r], seed=0, max_epochs=horizon, source_run_id=r) for d, r in zip(datasets, run_ids)]
    cfg = [configs[r] for r in run_ids]
    per_run = pd.DataFrame({
        "run_key": keys,
        "dataset": datasets,
        "model": [c.model for c in cfg],
        "elr": [c.elr for c in cfg],
        "lr": table.loc[run_ids, "lr"].to_numpy(dtype=float),  # what the optimizer was given
        "momentum": [c.momentum for c in cfg],
        "weight_decay": [c.weight_decay for c in cfg],
        "optimizer": [c.optimizer for c in cfg],
        "extras": [c.extras_json() for c in cfg],
    })
    dup = per_run["run_key"].duplicated()
    if dup.any():  # cannot happen unless a dataset lists a run id twice; guard the invariant anyway
        raise QuickTuneFormatError(f"{files.perf}: run {run_ids[int(np.argmax(dup))]!r} appears twice")

    # Expand to one row per epoch without a Python loop over epochs.
    rows = per_run.iloc[np.repeat(np.arange(n), lengths)].reset_index(drop=True)
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    rows["seed"] = 0
    rows["max_epochs"] = horizon
    rows["epoch"] = np.arange(len(rows), dtype=np.int64) - starts + 1
    rows["val_acc"] = np.clip(acc / 100.0, 0.0, 1.0)
    rows["val_loss"] = np.nan
    rows["train_loss"] = np.nan
    rows["seconds"] = sec
    rows["status"] = np.where(np.isnan(acc), "diverged", "ok")
    rows["source"] = f"quicktune-{version}"
    rows["versions"] = json.dumps(
        {"schema": SCHEMA_VERSION, "quicktune": quicktune.__version__, "source_format": "quicktune",
         "metadataset_version": version},
        sort_keys=True,
    )
    written_at = time.time()
    rows["written_at"] = written_at
    features = _descriptor_rows(files, descriptors, sorted(set(datasets)), written_at)
    return rows[RUN_COLUMNS], features


def import_quicktune(path: str | Path, store: MetaDatasetStore) -> dict[str, Any]:
    """Append a Quick-Tune-format directory into `store`; returns a summary.

    Idempotent after de-duplication: the run keys are stable, so importing the same directory
    again adds a part whose rows replace identical ones on read (the content hash is unchanged).
    """
    t0 = time.perf_counter()
    runs, features = read_quicktune(path)
    store.append(runs)
    store.append_features(features)
    return {
        "source": str(runs["source"].iat[0]),
        "store": str(store.root),
        "datasets": int(runs["dataset"].nunique()),
        "models": int(runs["model"].nunique()),
        "runs": int(runs["run_key"].nunique()),
        "epochs": int(len(runs)),
        "max_epochs": int(runs["max_epochs"].iat[0]),
        "total_hours": float(runs["seconds"].sum() / 3600.0),
        "seconds": time.perf_counter() - t0,
    }
