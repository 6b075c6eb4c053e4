"""Simulated parallel replay: Quick-Tune vs asynchronous Hyperband with 1, 2, 4 and 8 workers.

On the published Quick-Tune meta-dataset (../shared/data/quicktune-extended: 19 Meta-Album
datasets, 24 models), leave-datasets-out (5 folds; each fold's Quick-Tune surrogate is
meta-trained only on the other folds' datasets, as in benchmarks/quicktune_replay.py), the replay
clock runs N asynchronous workers (`quicktune.benchmark.simulated`: an event queue on recorded
epoch times; the optimizer is asked whenever a worker is free, with the other workers' trials
pending). Regret vs simulated wall-clock, mean over seeds per dataset, then mean over datasets
with a 95% bootstrap CI over DATASETS.

The issue's targets, computed here: (a) with 4 workers, reach the 1-worker regret at 4 h by 1.25 h
of wall-clock; (b) Quick-Tune below Hyperband-async with the same workers at every budget.

Bounded for a shared 2-core machine (the setup is in the JSON and the README): Quick-Tune is
nearly deterministic with a meta-trained surrogate, so it runs `--quicktune-seeds` seeds (default
1), Hyperband-async `--baseline-seeds` (default 5); the budget shrinks with the workers
(`--budgets`, default 4 h for 1 and 2 workers, 1 h 30 min for 4, 45 min for 8: the same order of
optimizer steps per job). Resumable: every (method, workers, fold, seed) job is written to
`--cache-dir/jobs/` when it ends and skipped on a rerun.

    nice python benchmarks/parallel_replay.py [--part prepare|run|aggregate|all] [--workers 1,2,4,8]

Writes benchmarks/results/parallel_replay.{csv,json,png}.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_METADATASET = REPO.parent / "shared" / "data" / "quicktune-extended"
METHODS = ("quicktune", "hyperband-async")
REPORT = {"30m": 1800.0, "45m": 2700.0, "1h": 3600.0, "1h15m": 4500.0, "1h30m": 5400.0, "2h": 7200.0, "4h": 14400.0}


def parse_budgets(text: str) -> dict[int, float]:
    from quicktune.cli._common import parse_duration

    out = {}
    for part in text.split(","):
        n, _, b = part.partition("=")
        out[int(n)] = float(parse_duration(b))
    return out


def grid(budget_s: float) -> np.ndarray:
    g = np.geomspace(60.0, 4 * 3600.0, 60)
    g = np.unique(np.round(np.concatenate([g, list(REPORT.values())]), 3))
    return g[g <= budget_s + 1e-9]


def job_path(args: argparse.Namespace, method: str, workers: int, fold: int, seed: int) -> Path:
    return args.cache_dir / "jobs" / f"{method}-w{workers}-fold{fold}of{args.folds}-s{seed}.json"


def run_jobs(args: argparse.Namespace, table, contexts) -> None:
    from quicktune.benchmark.experiment import run_experiment
    from quicktune.benchmark.methods import get_method

    budgets = parse_budgets(args.budgets)
    folds = sorted({c.fold for c in contexts.values()})
    seeds = {"quicktune": range(args.quicktune_seeds), "hyperband-async": range(args.baseline_seeds)}
    # Cheap jobs first (the baseline is numpy only), then Quick-Tune from 1 to 8 workers.
    order = [(m, n, f, s) for m in ("hyperband-async", "quicktune") for n in args.workers for s in seeds[m] for f in folds]
    for i, (m, n, f, s) in enumerate(order):
        path = job_path(args, m, n, f, s)
        if path.exists():
            continue
        t0 = time.perf_counter()
        g = grid(budgets[n])
        doc = {"method": m, "workers": n, "fold": f, "seed": s, "budget_s": budgets[n], "time_s": g.tolist(),
               "regret": {}, "n_trials": {}, "overhead_median_s": {}}
        for d, ctx in sorted(contexts.items()):
            if ctx.fold != f:
                continue
            task = table.task(d)
            r = run_experiment(get_method(m), task, s, budgets[n], ctx, workers=n)
            doc["regret"][d] = [round(float(v), 6) for v in r.regret_at(task, g)]
            doc["n_trials"][d] = r.n_trials
            doc["overhead_median_s"][d] = float(np.median(r.overhead)) if len(r.overhead) else None
        doc["wall_s"] = round(time.perf_counter() - t0, 1)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc))
        tmp.replace(path)
        print(f"[{i + 1}/{len(order)}] {path.name}: {doc['wall_s']} s", flush=True)


def load_jobs(args: argparse.Namespace):
    """{(method, workers): {dataset: (seeds x grid) array}} and the grid per workers."""
    curves: dict[tuple[str, int], dict[str, list[list[float]]]] = {}
    grids: dict[int, np.ndarray] = {}
    for p in sorted((args.cache_dir / "jobs").glob(f"*of{args.folds}-s*.json")):
        doc = json.loads(p.read_text())
        if doc["workers"] not in args.workers:
            continue
        grids[doc["workers"]] = np.asarray(doc["time_s"])
        for d, v in doc["regret"].items():
            curves.setdefault((doc["method"], doc["workers"]), {}).setdefault(d, []).append(v)
    return {k: {d: np.asarray(v) for d, v in c.items()} for k, c in curves.items()}, grids


def first_time_at_or_below(curve: np.ndarray, g: np.ndarray, level: float) -> float:
    hit = np.flatnonzero(curve <= level + 1e-12)
    return float(g[hit[0]]) if len(hit) else float("inf")


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def aggregate(args: argparse.Namespace) -> dict:
    import pandas as pd

    curves, grids = load_jobs(args)
    rng = np.random.default_rng(0)
    n_boot = 2000
    rows, doc = [], {"setup": {}, "report": {}, "targets": {}, "per_dataset": {}}
    means: dict[tuple[str, int], np.ndarray] = {}  # (datasets x grid) per (method, workers)
    datasets: list[str] | None = None
    for (m, n), by in sorted(curves.items()):
        ds = sorted(by)
        datasets = ds if datasets is None else sorted(set(datasets) & set(ds))
        mat = np.stack([by[d].mean(axis=0) for d in ds])  # mean over seeds per dataset
        means[(m, n)] = mat
        boot = mat[rng.integers(0, len(ds), size=(n_boot, len(ds)))].mean(axis=1)
        lo, hi = np.percentile(boot, [2.5, 97.5], axis=0)
        for t, mu, a, b in zip(grids[n], mat.mean(axis=0), lo, hi):
            rows.append({"method": m, "workers": n, "time_s": t, "mean": mu, "ci_low": a, "ci_high": b,
                         "n_datasets": len(ds), "n_seeds": int(min(len(v) for v in by.values()))})
        label = {v: k for k, v in REPORT.items()}
        doc["report"].setdefault(m, {})[str(n)] = {
            label[t]: {"mean": round(float(mu), 4), "ci95_datasets": [round(float(a), 4), round(float(b), 4)]}
            for t, mu, a, b in zip(grids[n], mat.mean(axis=0), lo, hi) if t in label}
        doc["per_dataset"].setdefault(m, {})[str(n)] = {
            d: {label[t]: round(float(v), 4) for t, v in zip(grids[n], row) if t in label} for d, row in zip(ds, mat)}
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(out / "parallel_replay.csv", index=False, float_format="%.6g")

    # (a) time for 4 workers to reach the 1-worker regret at 4 h (bootstrap over datasets, paired).
    qt1, qt4 = means.get(("quicktune", 1)), means.get(("quicktune", 4))
    if qt1 is not None and qt4 is not None and 14400.0 in grids[1]:
        j = int(np.flatnonzero(grids[1] == 14400.0)[0])
        level = float(qt1[:, j].mean())
        t_mean = first_time_at_or_below(qt4.mean(axis=0), grids[4], level)
        idx = rng.integers(0, len(qt1), size=(n_boot, len(qt1)))
        ts = np.array([first_time_at_or_below(qt4[i].mean(axis=0), grids[4], float(qt1[i, j].mean())) for i in idx])
        doc["targets"]["4_workers_reach_1_worker_4h_regret"] = {
            "target_s": 4500.0, "level": round(level, 4), "time_s": _finite(t_mean),
            # Actual bootstrap values (inverted CDF), None where a resample never reached the level.
            "ci95_datasets_s": [_finite(np.quantile(ts, q, method="inverted_cdf")) for q in (0.025, 0.975)],
            "met": bool(t_mean <= 4500.0),
        }
    # (b) Quick-Tune vs Hyperband-async with the same workers, at every grid time (paired over datasets).
    for n in sorted({n for _, n in means}):
        a, b = means.get(("quicktune", n)), means.get(("hyperband-async", n))
        if a is None or b is None:
            continue
        diff = a - b  # (datasets x grid), negative: Quick-Tune better
        boot = diff[rng.integers(0, len(diff), size=(n_boot, len(diff)))].mean(axis=1)
        hi = np.percentile(boot, 97.5, axis=0)
        doc["targets"][f"beats_hyperband_async_{n}_workers"] = {
            "grid_times": int(len(grids[n])),
            "times_quicktune_lower": int((diff.mean(axis=0) < 0).sum()),
            "times_ci_excludes_zero": int((hi < 0).sum()),
            "max_mean_difference": round(float(diff.mean(axis=0).max()), 4),
            "met": bool((diff.mean(axis=0) < 0).all()),
        }
    doc["setup"] = {
        "metadataset": args.metadataset.name, "datasets": datasets, "folds": args.folds,
        "workers": list(args.workers), "budgets_s": parse_budgets(args.budgets),
        "seeds": {"quicktune": args.quicktune_seeds, "hyperband-async": args.baseline_seeds},
        "regret": "(best_in_dataset - incumbent) / (best_in_dataset - worst_in_dataset); 1 before any observation",
        "ci": "95% percentile bootstrap over datasets (each dataset's regret is the mean over its seeds)",
        "clock": "simulated wall-clock: N asynchronous workers on recorded epoch seconds; optimizer time not charged",
        "python": platform.python_version(),
    }
    (out / "parallel_replay.json").write_text(json.dumps(doc, indent=2, default=float) + "\n")
    plot(pd.DataFrame(rows), out / "parallel_replay.png")
    return doc


def plot(df, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = sorted(df["workers"].unique())
    fig, axes = plt.subplots(1, len(ns) + 1, figsize=(4 * (len(ns) + 1), 3.4), sharey=True, sharex=True)
    colours = {"quicktune": "C0", "hyperband-async": "C1"}
    for ax, n in zip(axes, ns):
        for m, dm in df[df["workers"] == n].groupby("method"):
            ax.plot(dm["time_s"] / 3600, dm["mean"], color=colours.get(m), label=m)
            ax.fill_between(dm["time_s"] / 3600, dm["ci_low"], dm["ci_high"], color=colours.get(m), alpha=0.2)
        ax.set_xscale("log")
        ax.set_title(f"{n} worker{'s' if n > 1 else ''}")
        ax.set_xlabel("simulated wall-clock (h)")
    axes[0].set_ylabel("normalized regret (mean over datasets)")
    axes[0].legend()
    ax = axes[-1]
    for i, n in enumerate(ns):
        dm = df[(df["workers"] == n) & (df["method"] == "quicktune")]
        ax.plot(dm["time_s"] / 3600, dm["mean"], color=plt.cm.viridis(i / max(1, len(ns) - 1)), label=f"{n} workers")
    ax.axvline(1.25, color="grey", ls=":", lw=1)  # the target time (1 h 15 min) ...
    one = df[(df["workers"] == 1) & (df["method"] == "quicktune") & (df["time_s"] == 14400.0)]
    if len(one):  # ... for the 1-worker regret at 4 h
        ax.axhline(float(one["mean"].iloc[0]), color="grey", ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_title("quicktune, by workers")
    ax.set_xlabel("simulated wall-clock (h)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--metadataset", type=Path, default=DEFAULT_METADATASET)
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    p.add_argument("--cache-dir", type=Path, default=REPO / ".quicktune-cache" / "parallel_replay")
    p.add_argument("--part", choices=["prepare", "run", "aggregate", "all"], default="all")
    p.add_argument("--workers", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2, 4, 8])
    p.add_argument("--budgets", default="1=4h,2=4h,4=1h30m,8=45m", help="workers=budget, comma-separated")
    p.add_argument("--quicktune-seeds", type=int, default=1)
    p.add_argument("--baseline-seeds", type=int, default=5)
    p.add_argument("--folds", type=int, default=5)
    args = p.parse_args(argv)

    import torch

    from quicktune.benchmark.experiment import fold_contexts
    from quicktune.benchmark.qt_method import prepare
    from quicktune.metadataset.loading import open_metadataset

    torch.set_num_threads(1)
    if args.part in ("prepare", "run", "all"):
        table = open_metadataset(args.metadataset)
        table.tasks()  # build every dataset's curves once, before folds restrict the table
        contexts = fold_contexts(table, args.folds, args.cache_dir)
        for ctx in {c.key: c for c in contexts.values()}.values():
            t0 = time.perf_counter()
            prepare(ctx)
            print(f"fold {ctx.fold}: surrogate ready ({time.perf_counter() - t0:.0f} s)", flush=True)
        if args.part in ("run", "all"):
            run_jobs(args, table, contexts)
    if args.part in ("aggregate", "all"):
        doc = aggregate(args)
        for m, by in doc["report"].items():
            for n, cells in by.items():
                print(f"{m:>16} x{n}: " + "  ".join(f"{t} {c['mean']:.3f} [{c['ci95_datasets'][0]:.3f}, "
                                                     f"{c['ci95_datasets'][1]:.3f}]" for t, c in cells.items()))
        print(json.dumps(doc["targets"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
