"""Replay experiments: run methods on recorded datasets under a simulated wall-clock budget and
measure normalized regret over time.

One job is (method, dataset, seed). The clock is the recorded compute the method spends: the
loop asks, the replay objective answers and charges the recorded seconds of the newly trained
epochs, the optimizer is told; it stops when the clock passes the budget or `ask()` returns None.
The trajectory holds the incumbent (best finite validation accuracy seen so far, at any epoch)
after *every* epoch, stamped with the clock at the end of that epoch, so a trial of several epochs
advances the clock epoch by epoch, as a user watching the search would see it. The optimizer's
own wall time (ask + tell, per step) is measured separately and never charged to the clock.

Normalized regret = (best_in_dataset - incumbent) / (best_in_dataset - worst_in_dataset)
(`TaskCurves.regret`), 1 before the first observation; it is read off the trajectory on a
log-spaced time grid that includes the report times (1 h, 4 h, 16 h) within the budget.

Leave-datasets-out: the table's datasets (all of them, sorted, so a `datasets=` subset keeps the
same folds) are dealt round-robin into k folds; a job on a dataset of fold f gets a `FoldContext`
whose `train` table holds only the other folds' datasets (meta-learned methods train on it;
baselines ignore it).

Outputs (`write_outputs`): the long CSV (method, dataset, fold, seed, time_s, regret), a per-job
CSV, a summary CSV + JSON (mean regret and a 95% bootstrap CI per method at the report times, per
dataset and averaged over datasets, plus the median optimizer overhead per step) and the plots.
"""

from __future__ import annotations

import copy
import json
import math
import multiprocessing as mp
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from quicktune.benchmark.methods import FoldContext, Method, MethodContext, get_method
from quicktune.benchmark.replay import ReplayObjective
from quicktune.metadataset.tabular import CurveTable, TaskCurves

REPORT_TIMES: dict[str, float] = {"1h": 3600.0, "4h": 4 * 3600.0, "16h": 16 * 3600.0}
LONG_COLUMNS = ["method", "dataset", "fold", "seed", "time_s", "regret"]
ALL = "ALL"  # the `dataset` value of rows averaged over datasets


def format_duration(seconds: float) -> str:
    """3600 -> '1h', 5400 -> '1h30m', 90 -> '1m30s', 45 -> '45s'."""
    s = int(round(seconds))
    if s == 0:
        return "0s"
    out = ""
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if s >= n:
            out += f"{s // n}{unit}"
            s %= n
    return out


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


# -- folds ------------------------------------------------------------------------------------
def make_folds(datasets: Iterable[str], k: int) -> list[list[str]]:
    """Sorted datasets dealt round-robin into min(k, n) folds (deterministic, no dataset twice)."""
    ds = sorted(set(datasets))
    if k < 1:
        raise ValueError(f"`folds >= 1` must hold, but got folds={k}")
    k = min(k, len(ds))
    return [ds[f::k] for f in range(k)]


def restrict_table(table: CurveTable, datasets: Iterable[str]) -> CurveTable:
    """A view of `table` holding only `datasets`: other datasets are absent from `datasets`,
    `task()`, `tasks()` and from the rows it was built from, so nothing held out can leak."""
    keep = set(datasets)
    missing = keep - set(table.datasets)
    if missing:
        raise KeyError(f"datasets {sorted(missing)} are not in the meta-dataset; known: {table.datasets}")
    view = copy.copy(table)  # shallow: shares the already built TaskCurves
    view.datasets = [d for d in table.datasets if d in keep]
    # The private state CurveTable builds tasks and feature names from; filtered so that code
    # reading it directly can not see held-out datasets either.
    if isinstance(getattr(table, "_tasks", None), dict):
        view._tasks = {d: t for d, t in table._tasks.items() if d in keep}
    for name in ("_runs", "_features"):
        frame = getattr(table, name, None)
        if isinstance(frame, pd.DataFrame) and "dataset" in frame.columns:
            setattr(view, name, frame[frame["dataset"].isin(keep)])
    if isinstance(getattr(view, "_runs", None), pd.DataFrame) and hasattr(table, "_rows_of"):
        # Row positions index the filtered frame now: recompute them, or building a task that
        # was not built before the restriction reads the wrong rows (or none).
        view._rows_of = view._runs.groupby("dataset", sort=False).indices
    return view


def fold_contexts(table: CurveTable, n_folds: int, cache_dir: Path) -> dict[str, FoldContext]:
    """dataset -> the FoldContext of the fold that holds it out."""
    folds = make_folds(table.datasets, n_folds)
    out: dict[str, FoldContext] = {}
    for f, test in enumerate(folds):
        train = [d for d in table.datasets if d not in set(test)]
        # With a single fold there is nothing to train on: the view is empty of datasets.
        view = restrict_table(table, train)
        ctx = FoldContext(f, len(folds), view, tuple(train), tuple(test), Path(cache_dir))
        out.update({d: ctx for d in test})
    return out


# -- one job ----------------------------------------------------------------------------------
@dataclass
class RunResult:
    """One (method, dataset, seed) replay.

    times:      (k,) simulated seconds at the end of each trained epoch within the budget
                (non-decreasing)
    incumbents: (k,) best finite accuracy seen up to that epoch (NaN before the first finite one)
    overhead:   (steps,) wall seconds the optimizer spent in ask + tell, per step
    """

    method: str
    dataset: str
    fold: int
    seed: int
    times: np.ndarray
    incumbents: np.ndarray
    overhead: np.ndarray
    setup_s: float  # wall seconds to build the optimizer (loading a cached model, say)
    n_trials: int
    simulated_s: float  # clock after the last trial (may pass the budget: trials are not cut short)
    stop: str  # "budget" | "exhausted" | "stalled"

    def incumbent_at(self, t: np.ndarray) -> np.ndarray:
        """Incumbent at times `t` (a (g,) array): the last one stamped at or before each time."""
        t = np.atleast_1d(np.asarray(t, dtype=float))
        idx = np.searchsorted(self.times, t, side="right") - 1
        out = np.full(t.shape, np.nan)
        seen = idx >= 0
        out[seen] = self.incumbents[idx[seen]]
        return out

    def regret_at(self, task: TaskCurves, t: np.ndarray) -> np.ndarray:
        """Normalized regret at times `t`: a (g,) array in [0, 1], 1 before any observation."""
        return np.atleast_1d(task.regret(self.incumbent_at(t)))


def run_experiment(
    method: Method | str,
    task: TaskCurves,
    seed: int,
    budget_s: float,
    fold: FoldContext,
    stall_steps: int = 10_000,
) -> RunResult:
    """Replay one (method, dataset, seed) job until the clock passes `budget_s` or the optimizer
    has nothing left. `stall_steps` consecutive trials that train no new epoch end the job (an
    optimizer stuck re-asking finished epochs would otherwise never advance the clock)."""
    method = get_method(method) if isinstance(method, str) else method
    objective = ReplayObjective(task)
    t0 = time.perf_counter()
    opt = method.make(objective.space, objective.max_epochs, seed, MethodContext(task, fold, seed))
    setup_s = time.perf_counter() - t0

    clock, best = 0.0, math.nan
    times: list[float] = []
    incumbents: list[float] = []
    overhead: list[float] = []
    n_trials, idle, stop = 0, 0, "budget"
    while clock < budget_s:
        t0 = time.perf_counter()
        trial = opt.ask()
        ask_s = time.perf_counter() - t0
        if trial is None:
            stop = "exhausted"
            break
        obs = objective.evaluate(trial)
        first_new = len(obs.curve) - len(obs.epoch_seconds)
        for j, sec in enumerate(obs.epoch_seconds):
            clock += sec
            v = obs.curve[first_new + j]
            if not math.isnan(v) and (math.isnan(best) or v > best):
                best = v
            times.append(clock)
            incumbents.append(best)
        t0 = time.perf_counter()
        opt.tell(obs)
        overhead.append(ask_s + time.perf_counter() - t0)
        n_trials += 1
        idle = 0 if obs.epoch_seconds else idle + 1
        if idle >= stall_steps:
            stop = "stalled"
            break
    # The last trial may run past the budget (a full run is one trial); its later epochs are not
    # part of the experiment.
    within = int(np.searchsorted(times, budget_s, side="right"))
    return RunResult(
        method=method.name, dataset=task.dataset, fold=fold.fold, seed=seed,
        times=np.asarray(times[:within], dtype=float), incumbents=np.asarray(incumbents[:within], dtype=float),
        overhead=np.asarray(overhead, dtype=float), setup_s=setup_s, n_trials=n_trials,
        simulated_s=clock, stop=stop,
    )


# -- many jobs --------------------------------------------------------------------------------
_WORKER: dict = {}


def _init_worker(table: CurveTable, contexts: dict[str, FoldContext], methods: dict[str, Method], threads: int) -> None:
    _WORKER.update(table=table, contexts=contexts, methods=methods)
    try:  # the 2-core machine is shared by every worker: no intra-op thread pools per worker
        import torch

        torch.set_num_threads(threads)
    except ImportError:  # pragma: no cover - torch is a dependency, but baselines do not need it
        pass


def _prepare_job(method: str, fold_dataset: str) -> str:
    _WORKER["methods"][method].prepare_fold(_WORKER["contexts"][fold_dataset])
    return method


def _run_job(method: str, dataset: str, seed: int, budget_s: float) -> RunResult:
    task = _WORKER["table"].task(dataset)
    return run_experiment(_WORKER["methods"][method], task, seed, budget_s, _WORKER["contexts"][dataset])


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

    @property
    def report(self) -> dict[str, float]:
        return report_times(self.budget_s, self.report_at)


def run_benchmark(
    table: CurveTable,
    methods: Sequence[str],
    budget_s: float,
    datasets: Sequence[str] | None = None,
    seeds: Sequence[int] = range(5),
    n_folds: int = 5,
    workers: int = 1,
    cache_dir: Path | str = ".quicktune-cache",
    grid_points: int = 100,
    progress: Callable[[str, int, int], None] | None = None,
    threads_per_worker: int = 1,
    report_at: Sequence[float] | None = None,
) -> BenchmarkResult:
    """Run every (method, dataset, seed) job and evaluate regret on the time grid.

    `progress(stage, done, total)` is called as jobs finish (stage "prepare" for per-fold method
    preparation, then "run"). Results do not depend on `workers` or on completion order.
    """
    resolved = {m: get_method(m) for m in methods}
    datasets = list(table.datasets if datasets is None else datasets)
    unknown = [d for d in datasets if d not in table.datasets]
    if unknown:
        raise KeyError(f"datasets {unknown} are not in the meta-dataset; known datasets: {table.datasets}")
    seeds = [int(s) for s in seeds]
    cache_dir = Path(cache_dir)
    contexts = fold_contexts(table, n_folds, cache_dir)
    grid = time_grid(budget_s, grid_points, report_at=report_at)

    # One representative dataset per fold that has a selected dataset, for per-fold preparation.
    fold_reps: dict[int, str] = {}
    for d in datasets:
        fold_reps.setdefault(contexts[d].fold, d)
    prep = [(m, d) for m, meth in resolved.items() if meth.prepare is not None for d in fold_reps.values()]
    jobs = [(m, d, s) for m in resolved for d in datasets for s in seeds]
    if prep:
        cache_dir.mkdir(parents=True, exist_ok=True)

    results: list[RunResult] = []
    initargs = (table, contexts, resolved, threads_per_worker)
    if workers <= 1:
        saved = dict(_WORKER)
        _WORKER.update(table=table, contexts=contexts, methods=resolved)
        try:
            for i, (m, d) in enumerate(prep):
                _prepare_job(m, d)
                progress and progress("prepare", i + 1, len(prep))
            for i, (m, d, s) in enumerate(jobs):
                results.append(_run_job(m, d, s, budget_s))
                progress and progress("run", i + 1, len(jobs))
        finally:
            _WORKER.clear()
            _WORKER.update(saved)
    else:
        # fork: workers inherit the table and the registry (including methods registered at run
        # time) without pickling them.
        ctx = mp.get_context("fork")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker, initargs=initargs) as pool:
            futures = [pool.submit(_prepare_job, m, d) for m, d in prep]
            for i, fut in enumerate(as_completed(futures)):
                fut.result()
                progress and progress("prepare", i + 1, len(prep))
            futures = [pool.submit(_run_job, m, d, s, budget_s) for m, d, s in jobs]
            for i, fut in enumerate(as_completed(futures)):
                results.append(fut.result())
                progress and progress("run", i + 1, len(jobs))
    order = {j: i for i, j in enumerate(jobs)}
    results.sort(key=lambda r: order[(r.method, r.dataset, r.seed)])

    frames, rows = [], []
    overhead: dict[str, list[np.ndarray]] = {m: [] for m in resolved}
    for r in results:
        task = table.task(r.dataset)
        frames.append(pd.DataFrame({
            "method": r.method, "dataset": r.dataset, "fold": r.fold, "seed": r.seed,
            "time_s": grid, "regret": r.regret_at(task, grid),
        }))
        overhead[r.method].append(r.overhead)
        rows.append({
            "method": r.method, "dataset": r.dataset, "fold": r.fold, "seed": r.seed, "n_trials": r.n_trials,
            "n_epochs": len(r.times), "simulated_s": round(r.simulated_s, 3), "stop": r.stop,
            "final_regret": float(r.regret_at(task, [budget_s])[0]),
            "overhead_median_s": float(np.median(r.overhead)) if len(r.overhead) else math.nan,
            "overhead_total_s": float(np.sum(r.overhead)), "setup_s": r.setup_s,
        })
    long = pd.concat(frames, ignore_index=True)[LONG_COLUMNS] if frames else pd.DataFrame(columns=LONG_COLUMNS)
    return BenchmarkResult(
        budget_s=float(budget_s), grid=grid, long=long, runs=pd.DataFrame(rows),
        overhead={m: np.concatenate(v) if v else np.zeros(0) for m, v in overhead.items()},
        methods=list(resolved), datasets=datasets, seeds=seeds,
        report_at=[float(t) for t in report_at] if report_at is not None else None,
    )


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


def summarize(result: BenchmarkResult, n_boot: int = 1000) -> tuple[pd.DataFrame, dict]:
    """The summary table (report times only) and its JSON form."""
    rt = result.report
    label = {v: k for k, v in rt.items()}
    agg = aggregate(result.long, list(rt.values()), n_boot=n_boot)
    agg.insert(3, "time", agg["time_s"].map(label))
    med = {m: float(np.median(v)) if len(v) else math.nan for m, v in result.overhead.items()}
    agg["median_overhead_s"] = agg["method"].map(med)
    doc: dict = {
        "budget_s": result.budget_s,
        "report_times_s": rt,
        "datasets": result.datasets,
        "seeds": result.seeds,
        "regret": "(best_in_dataset - incumbent) / (best_in_dataset - worst_in_dataset); 1 before any observation",
        "ci": "95% stratified bootstrap over seeds within each dataset (1000 resamples)",
        "methods": {},
    }
    for m in result.methods:
        dm = agg[agg["method"] == m]
        entry: dict = {
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
    return agg, doc


def write_outputs(result: BenchmarkResult, out_dir: Path | str, prefix: str = "benchmark", plots: bool = True) -> dict[str, Path]:
    """Write `<prefix>.csv` (long), `<prefix>_runs.csv`, `<prefix>_summary.csv/.json` and the PNGs."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "long": out / f"{prefix}.csv",
        "runs": out / f"{prefix}_runs.csv",
        "summary_csv": out / f"{prefix}_summary.csv",
        "summary_json": out / f"{prefix}_summary.json",
    }
    long = result.long.copy()
    long["regret"] = long["regret"].round(6)
    long.to_csv(paths["long"], index=False)
    result.runs.to_csv(paths["runs"], index=False, float_format="%.6g")
    summary, doc = summarize(result)
    summary.to_csv(paths["summary_csv"], index=False, float_format="%.6g")
    paths["summary_json"].write_text(json.dumps(doc, indent=2, default=float) + "\n")
    if plots:
        from quicktune.benchmark.plots import plot_per_dataset, plot_regret

        agg = aggregate(result.long)
        paths["png"] = plot_regret(agg, out / f"{prefix}.png", report=result.report)
        paths["png_per_dataset"] = plot_per_dataset(agg, out / f"{prefix}_per_dataset.png", report=result.report)
    return paths
