"""Normalized regret on a time grid, and its summary over datasets."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from quicktune.durations import format_duration
from quicktune.benchmark.heldout import DEFINITION, summarize_heldout

REPORT_TIMES: dict[str, float] = {"1h": 3600.0, "4h": 4 * 3600.0, "16h": 16 * 3600.0}
LONG_COLUMNS = ["method", "dataset", "fold", "seed", "time_s", "regret"]
ALL = "ALL"  # the `dataset` value of rows averaged over datasets


def report_times(budget_s: float, at: Sequence[float] | None = None) -> dict[str, float]:
    """The report times (default: the standard 1h/4h/16h; `at`: seconds of one's own, e.g. minutes
    for a small meta-dataset) within the budget, plus the budget itself when it is not one."""
    chosen = REPORT_TIMES if at is None else {format_duration(t): float(t) for t in sorted(at)}
    times = {k: v for k, v in chosen.items() if v <= budget_s}
    if budget_s not in times.values():
        times[format_duration(budget_s)] = float(budget_s)
    return times


def time_grid(budget_s: float, points: int = 100, start_s: float = 10.0, report_at: Sequence[float] | None = None) -> np.ndarray:
    """`points` log-spaced times from `start_s` to `budget_s`, plus the report times: a (g,) array."""
    if not (budget_s > 0):
        raise ValueError(f"`budget_s > 0` must hold, but got {budget_s=}")
    start = min(start_s, budget_s / 100.0)
    grid = np.geomspace(start, budget_s, max(points, 2))
    grid = np.concatenate([grid, list(report_times(budget_s, report_at).values())])
    # Round so the grid survives a CSV round trip exactly (report times are whole seconds already).
    return np.unique(np.round(grid, 3))


@dataclass
class BenchmarkResult:
    budget_s: float
    grid: np.ndarray  # (g,) times the long table is evaluated at
    long: pd.DataFrame  # LONG_COLUMNS
    runs: pd.DataFrame  # one row per job
    overhead: dict[str, np.ndarray]  # method -> every step's ask + tell seconds
    methods: list[str]
    datasets: list[str]
    seeds: list[int]
    report_at: list[float] | None = None  # custom report times (seconds); None: 1h/4h/16h
    workers_simulated: int = 1  # asynchronous workers of each job's simulated clock

    @property
    def report(self) -> dict[str, float]:
        return report_times(self.budget_s, self.report_at)


# -- aggregation ------------------------------------------------------------------------------
def aggregate(
    long: pd.DataFrame, times: Sequence[float] | None = None, n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> pd.DataFrame:
    """Mean regret and a bootstrap CI per (method, dataset, time), plus dataset == ALL rows
    averaged over datasets (each dataset weighs the same).

    The CI is a stratified percentile bootstrap (as in rliable): seeds are resampled with
    replacement within each dataset, and the ALL mean of each resample averages the per-dataset
    resampled means. It measures seed-to-seed variation on this fixed set of datasets.
    Columns: method, dataset, time_s, mean, ci_low, ci_high, n.
    """
    df = long if times is None else long[long["time_s"].isin(np.asarray(times, dtype=float))]
    rng = np.random.default_rng(seed)
    lo_q, hi_q = 100 * (1 - level) / 2, 100 * (1 + level) / 2
    out = []
    for method, dm in df.groupby("method", sort=False):
        ts = np.sort(dm["time_s"].unique())
        boots, means = [], []
        for dataset, dd in dm.groupby("dataset", sort=True):
            # (seeds x times) matrix of regret
            mat = dd.pivot_table(index="seed", columns="time_s", values="regret").reindex(columns=ts).to_numpy()
            n = mat.shape[0]
            idx = rng.integers(0, n, size=(n_boot, n))
            boot = mat[idx].mean(axis=1)  # (n_boot x times)
            mean = mat.mean(axis=0)
            boots.append(boot)
            means.append(mean)
            lo, hi = np.percentile(boot, [lo_q, hi_q], axis=0)
            out.append(pd.DataFrame({"method": method, "dataset": dataset, "time_s": ts, "mean": mean,
                                     "ci_low": lo, "ci_high": hi, "n": n}))
        boot_all = np.mean(boots, axis=0)
        lo, hi = np.percentile(boot_all, [lo_q, hi_q], axis=0)
        n_all = int(dm.groupby("dataset")["seed"].nunique().sum())
        out.append(pd.DataFrame({"method": method, "dataset": ALL, "time_s": ts, "mean": np.mean(means, axis=0),
                                 "ci_low": lo, "ci_high": hi, "n": n_all}))
    cols = ["method", "dataset", "time_s", "mean", "ci_low", "ci_high", "n"]
    return pd.concat(out, ignore_index=True)[cols] if out else pd.DataFrame(columns=cols)


def summarize(result: BenchmarkResult, n_boot: int = 1000) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The summary table (report times only) and its JSON form."""
    rt = result.report
    label = {v: k for k, v in rt.items()}
    agg = aggregate(result.long, list(rt.values()), n_boot=n_boot)
    agg.insert(3, "time", agg["time_s"].map(label))
    med = {m: float(np.median(v)) if len(v) else math.nan for m, v in result.overhead.items()}
    agg["median_overhead_s"] = agg["method"].map(med)
    doc: dict[str, Any] = {
        "budget_s": result.budget_s,
        "report_times_s": rt,
        "datasets": result.datasets,
        "seeds": result.seeds,
        "workers_simulated": result.workers_simulated,
        "regret": "(best_in_dataset - incumbent) / (best_in_dataset - worst_in_dataset); 1 before any observation",
        "ci": "95% stratified bootstrap over seeds within each dataset (1000 resamples)",
        "methods": {},
    }
    for m in result.methods:
        dm = agg[agg["method"] == m]
        entry: dict[str, Any] = {
            "median_overhead_s_per_step": med[m],
            "steps": int(len(result.overhead[m])),
            "mean_regret": {},
            "per_dataset": {},
        }
        for r in dm.itertuples():
            cell = {"mean": r.mean, "ci95": [r.ci_low, r.ci_high], "n": int(r.n)}
            if r.dataset == ALL:
                entry["mean_regret"][r.time] = cell
            else:
                entry["per_dataset"].setdefault(r.dataset, {})[r.time] = cell
        doc["methods"][m] = entry
    held = summarize_heldout(result.runs)
    if held:
        doc["heldout_epoch"] = {"definition": DEFINITION, "at": "the budget",
                                "ci": "95% percentile bootstrap over datasets", "methods": held}
    return agg, doc
