"""The experiment loop: one (method, dataset, seed) job under a simulated clock, and many in parallel."""

from __future__ import annotations

import math
import multiprocessing as mp
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from quicktune.benchmark.folds import fold_contexts
from quicktune.benchmark.heldout import heldout_row
from quicktune.benchmark.methods import FoldContext, Method, MethodContext, get_method
from quicktune.benchmark.replay import ReplayObjective
from quicktune.benchmark.simulated import simulate
from quicktune.benchmark.stats import LONG_COLUMNS, BenchmarkResult, time_grid
from quicktune.metadataset.tabular import CurveTable, TaskCurves


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
    selected: tuple[int, int] | None = None  # (config_id, epoch) of the incumbent at the budget

    def incumbent_at(self, t: np.ndarray | Sequence[float]) -> np.ndarray:
        """Incumbent at times `t` (a (g,) array): the last one stamped at or before each time."""
        t = np.atleast_1d(np.asarray(t, dtype=float))
        idx = np.searchsorted(self.times, t, side="right") - 1
        out = np.full(t.shape, np.nan)
        seen = idx >= 0
        out[seen] = self.incumbents[idx[seen]]
        return out

    def regret_at(self, task: TaskCurves, t: np.ndarray | Sequence[float]) -> np.ndarray:
        """Normalized regret at times `t`: a (g,) array in [0, 1], 1 before any observation."""
        return np.atleast_1d(task.regret(self.incumbent_at(t)))


def run_experiment(
    method: Method | str,
    task: TaskCurves,
    seed: int,
    budget_s: float,
    fold: FoldContext,
    stall_steps: int = 10_000,
    workers: int = 1,
) -> RunResult:
    """Replay one (method, dataset, seed) job with `workers` simulated asynchronous workers
    (`quicktune.benchmark.simulated`; 1: ask, train, tell in turn) until the clock passes
    `budget_s` or the optimizer has nothing left. `stall_steps` consecutive trials that train no
    new epoch end the job (an optimizer stuck re-asking finished epochs would otherwise never
    advance the clock)."""
    method = get_method(method) if isinstance(method, str) else method
    objective = ReplayObjective(task)
    t0 = time.perf_counter()
    opt = method.make(objective.space, objective.max_epochs, seed, MethodContext(task, fold, seed))
    setup_s = time.perf_counter() - t0
    sim = simulate(opt, objective, budget_s, workers=workers, stall_steps=stall_steps)
    return RunResult(
        method=method.name, dataset=task.dataset, fold=fold.fold, seed=seed, times=sim.times,
        incumbents=sim.incumbents, overhead=sim.overhead, setup_s=setup_s, n_trials=sim.n_trials,
        simulated_s=sim.simulated_s, stop=sim.stop, selected=sim.selected,
    )


# -- many jobs --------------------------------------------------------------------------------
_WORKER: dict[str, Any] = {}  # this process's table, fold contexts and methods


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


def _run_job(method: str, dataset: str, seed: int, budget_s: float, simulated_workers: int = 1) -> RunResult:
    task = _WORKER["table"].task(dataset)
    return run_experiment(_WORKER["methods"][method], task, seed, budget_s, _WORKER["contexts"][dataset],
                          workers=simulated_workers)


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
    workers_simulated: int = 1,
) -> BenchmarkResult:
    """Run every (method, dataset, seed) job and evaluate regret on the time grid.

    `workers` is how many jobs run at once on this machine; `workers_simulated` how many
    asynchronous workers each job's simulated clock runs (the search's own parallelism).

    `progress(stage, done, total)` is called as jobs finish (stage "prepare" for per-fold method
    preparation, then "run"). Results do not depend on `workers` or on completion order.
    """
    if workers_simulated < 1:
        raise ValueError(f"`workers_simulated >= 1` must hold, but got {workers_simulated=}")
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
            if prep and progress:
                progress("prepare", 0, len(prep))
            for i, (m, d) in enumerate(prep):
                _prepare_job(m, d)
                progress and progress("prepare", i + 1, len(prep))
            if progress:
                progress("run", 0, len(jobs))
            for i, (m, d, s) in enumerate(jobs):
                results.append(_run_job(m, d, s, budget_s, workers_simulated))
                progress and progress("run", i + 1, len(jobs))
        finally:
            _WORKER.clear()
            _WORKER.update(saved)
    else:
        # fork: workers inherit the table and the registry (including methods registered at run
        # time) without pickling them.
        ctx = mp.get_context("fork")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker, initargs=initargs) as pool:
            if prep and progress:
                progress("prepare", 0, len(prep))
            futures = [pool.submit(_prepare_job, m, d) for m, d in prep]
            for i, fut in enumerate(as_completed(futures)):
                fut.result()
                progress and progress("prepare", i + 1, len(prep))
            if progress:
                progress("run", 0, len(jobs))
            run_futures = [pool.submit(_run_job, m, d, s, budget_s, workers_simulated) for m, d, s in jobs]
            for i, run_fut in enumerate(as_completed(run_futures)):
                results.append(run_fut.result())
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
            **heldout_row(task, r.selected),
        })
    long = pd.concat(frames, ignore_index=True)[LONG_COLUMNS] if frames else pd.DataFrame(columns=LONG_COLUMNS)
    return BenchmarkResult(
        budget_s=float(budget_s), grid=grid, long=long, runs=pd.DataFrame(rows),
        overhead={m: np.concatenate(v) if v else np.zeros(0) for m, v in overhead.items()},
        methods=list(resolved), datasets=datasets, seeds=seeds,
        report_at=[float(t) for t in report_at] if report_at is not None else None,
        workers_simulated=int(workers_simulated),
    )
