"""Quick-Tune against real peers on the replay benchmark: quicktune, qtt (Quick-Tune-Tool), optuna,
smac, dehb, synetune-asha, synetune-bohb and best-default, side by side on the same datasets,
leave-datasets-out folds, seeds and simulated budget (recorded compute of the published
Quick-Tune meta-dataset, "extended": 19 Meta-Album datasets, 24 models, up to 50 epochs).

Every (method, dataset, seed) job is written to --work-dir as soon as it ends, and a rerun skips
the jobs already there: a kill loses at most the running job. --max-minutes stops starting new
jobs after that many minutes (the files so far are still aggregated). Jobs run seed-major
(every method and dataset at seed 0 first), so a bounded run still covers every dataset.

    python benchmarks/peers_replay.py [--metadataset ../shared/data/quicktune-extended]
        [--methods quicktune,qtt,...] [--seeds 0,1] [--folds 5] [--budget 16h]
        [--work-dir .quicktune-cache/peers_replay] [--out benchmarks/results] [--max-minutes 60]
        [--only-folds 0,1] [--aggregate-only]

Writes, into --out: peers_replay.csv (method, dataset, fold, seed, time_s, regret on a log time
grid), peers_replay.json (per method: mean normalized regret over datasets at 1h / 4h / 16h with a
95% bootstrap CI over datasets, the share of datasets on which quicktune's regret is below the
method's, the optimizer overhead per step, meta-training time, settings and provenance) and
peers_replay.png.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
DEFAULT_METADATASET = REPO.parent / "shared" / "data" / "quicktune-extended"
METHODS = ["quicktune", "qtt", "optuna", "smac", "dehb", "synetune-asha", "synetune-bohb", "best-default"]
REPORT = {"1h": 3600.0, "4h": 4 * 3600.0, "16h": 16 * 3600.0}
PREFIX = "peers_replay"


def job_path(work: Path, method: str, dataset: str, seed: int) -> Path:
    return work / "jobs" / f"{method}__{dataset}__{seed}.json"


def run_jobs(args: argparse.Namespace, table) -> None:
    from quicktune.atomic import atomic_write
    from quicktune.benchmark.experiment import fold_contexts, run_experiment
    from quicktune.benchmark.methods import get_method

    work = Path(args.work_dir)
    (work / "jobs").mkdir(parents=True, exist_ok=True)
    contexts = fold_contexts(table, args.folds, work / "models")
    prepared: set[tuple[str, int]] = set()
    t_start = time.perf_counter()
    # Fold-major within each (seed, method): a bounded run leaves whole folds done.
    datasets = sorted(table.datasets, key=lambda d: (contexts[d].fold, d))
    if args.only_folds is not None:
        datasets = [d for d in datasets if contexts[d].fold in args.only_folds]
    todo = [(m, d, s) for s in args.seeds for m in args.methods for d in datasets
            if not job_path(work, m, d, s).exists()]
    print(f"{len(todo)} jobs to run", flush=True)
    for i, (m, d, s) in enumerate(todo):
        if args.max_minutes and time.perf_counter() - t_start > 60 * args.max_minutes:
            print(f"stopping: --max-minutes {args.max_minutes} reached, {len(todo) - i} jobs left", flush=True)
            break
        if job_path(work, m, d, s).exists():  # another process of this benchmark did it meanwhile
            continue
        method, ctx = get_method(m), contexts[d]
        prep_s = 0.0
        if (m, ctx.fold) not in prepared:
            c0 = time.process_time()
            method.prepare_fold(ctx)  # cached on disk by the method itself
            prep_s = time.process_time() - c0
            prepared.add((m, ctx.fold))
        c0 = time.process_time()
        r = run_experiment(method, table.task(d), s, args.budget_s, ctx)
        doc = {
            "method": m, "dataset": d, "fold": r.fold, "seed": s, "budget_s": args.budget_s,
            "times": np.round(r.times, 3).tolist(), "incumbents": np.round(r.incumbents, 6).tolist(),
            "overhead_s": np.round(r.overhead, 6).tolist(), "setup_s": round(r.setup_s, 4), "n_trials": r.n_trials,
            "stop": r.stop, "cpu_s": round(time.process_time() - c0, 2), "prepare_cpu_s": round(prep_s, 2),
        }
        with atomic_write(job_path(work, m, d, s), "w") as f:
            f.write(json.dumps(doc))
        print(f"[{i + 1}/{len(todo)}] {m} {d} seed {s}: {r.n_trials} trials, cpu {doc['cpu_s']} s "
              f"(+{prep_s:.0f} s prepare), final regret {float(table.task(d).regret(r.incumbents[-1])) if len(r.incumbents) else 1.0:.3f}",
              flush=True)


def load_jobs(work: Path, methods: list[str], seeds: list[int], datasets: list[str]) -> list[dict]:
    out = []
    for m in methods:
        for d in datasets:
            for s in seeds:
                p = job_path(work, m, d, s)
                if p.exists():
                    out.append(json.loads(p.read_text()))
    return out


def regret_on_grid(job: dict, task, grid: np.ndarray) -> np.ndarray:
    times, inc = np.asarray(job["times"], dtype=float), np.asarray(job["incumbents"], dtype=float)
    idx = np.searchsorted(times, grid, side="right") - 1
    vals = np.where(idx >= 0, inc[np.clip(idx, 0, None)] if len(inc) else np.nan, np.nan)
    return np.atleast_1d(task.regret(vals))


def dataset_ci(values: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap CI of the mean over datasets (values: one per dataset)."""
    from scipy.stats import bootstrap

    if len(values) < 2 or np.ptp(values) == 0:
        return float(np.mean(values)), float(np.mean(values))
    res = bootstrap((values,), np.mean, n_resamples=2000, confidence_level=0.95, method="percentile",
                    random_state=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def aggregate(args: argparse.Namespace, table) -> dict:
    work = Path(args.work_dir)
    jobs = load_jobs(work, args.methods, args.seeds, table.datasets)
    methods = [m for m in args.methods if any(j["method"] == m for j in jobs)]
    # Compare on the datasets every method covered (same datasets, folds, budgets for all).
    cover = {m: {j["dataset"] for j in jobs if j["method"] == m} for m in methods}
    datasets = sorted(set.intersection(*cover.values())) if cover else []
    budget = args.budget_s
    report = {k: v for k, v in REPORT.items() if v <= budget}
    grid = np.unique(np.round(np.concatenate([np.geomspace(60.0, budget, 60), list(report.values())]), 3))

    rows = []
    for j in jobs:
        reg = regret_on_grid(j, table.task(j["dataset"]), grid)
        rows.append(pd.DataFrame({"method": j["method"], "dataset": j["dataset"], "fold": j["fold"], "seed": j["seed"],
                                  "time_s": grid, "regret": np.round(reg, 5)}))
    long = pd.concat(rows, ignore_index=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    long.to_csv(out / f"{PREFIX}.csv", index=False)

    # per (method, dataset, time): mean over seeds
    per_ds = long.groupby(["method", "dataset", "time_s"])["regret"].mean().unstack("time_s")
    long = long[long["dataset"].isin(datasets)]  # the plot: the common datasets only
    doc: dict = {
        "budget_s": budget, "report_times_s": report, "datasets": datasets, "n_datasets": len(datasets),
        "folds": args.folds, "seeds": args.seeds,
        "regret": "(best_in_dataset - incumbent) / (best_in_dataset - worst_in_dataset), 1 before any observation; "
                  "incumbent = best validation accuracy seen at any epoch",
        "ci": "95% percentile bootstrap over datasets (2000 resamples) of the mean over datasets of each "
              "dataset's mean over seeds",
        "quicktune_beats": "share of datasets on which quicktune's mean regret (over seeds) is strictly below the "
                           "method's; ties (mostly both 0) are counted separately",
        "methods": {},
    }
    for m in methods:
        mj = [j for j in jobs if j["method"] == m and j["dataset"] in datasets]
        over = np.concatenate([np.asarray(j["overhead_s"], dtype=float) for j in mj]) if mj else np.zeros(0)
        entry: dict = {
            "jobs": len(mj), "seeds_per_dataset": sorted({len([j for j in mj if j["dataset"] == d]) for d in datasets}),
            "overhead_per_step_ms": {"median": 1e3 * float(np.median(over)), "mean": 1e3 * float(np.mean(over)),
                                     "p90": 1e3 * float(np.percentile(over, 90)), "steps": int(len(over))},
            # CPU seconds of the whole job (optimizer + replay, the replay being array lookups) per
            # step: unlike the wall-clock overhead above it does not depend on how loaded the machine is.
            "cpu_per_step_ms": {"median": 1e3 * float(np.median([j["cpu_s"] / max(j["n_trials"], 1) for j in mj])),
                                "mean": 1e3 * float(sum(j["cpu_s"] for j in mj) / max(sum(j["n_trials"] for j in mj), 1))},
            "job_cpu_s_median": float(np.median([j["cpu_s"] for j in mj])),
            "prepare_cpu_s_total": float(sum(j.get("prepare_cpu_s", 0.0) for j in mj)),
            "mean_regret": {}, "quicktune_beats": {},
        }
        for label, t in report.items():
            v = per_ds.loc[m][t].reindex(datasets).to_numpy()
            lo, hi = dataset_ci(v)
            entry["mean_regret"][label] = {"mean": float(v.mean()), "ci95": [lo, hi]}
            if m != "quicktune" and "quicktune" in methods:
                q = per_ds.loc["quicktune"][t].reindex(datasets).to_numpy()
                entry["quicktune_beats"][label] = {
                    "share": float(np.mean(q < v)), "ties": float(np.mean(np.isclose(q, v))),
                    "share_worse": float(np.mean(q > v)),
                    "mean_difference": float(np.mean(v - q)), "difference_ci95": list(dataset_ci(v - q)),
                }
        # Every dataset this method covered (the table above uses only the datasets all methods covered).
        own = sorted(cover[m])
        entry["all_covered"] = {"n_datasets": len(own), "mean_regret": {
            label: {"mean": float(per_ds.loc[m][t].reindex(own).mean()),
                    "ci95": list(dataset_ci(per_ds.loc[m][t].reindex(own).to_numpy()))} for label, t in report.items()}}
        entry["per_dataset"] = {d: {label: float(per_ds.loc[m][t][d]) for label, t in report.items()} for d in own}
        doc["methods"][m] = entry
    doc["settings"] = settings()
    doc["provenance"] = {"script": "benchmarks/peers_replay.py", "metadataset": Path(args.metadataset).name,
                         "python": platform.python_version(), "versions": versions()}
    (out / f"{PREFIX}.json").write_text(json.dumps(doc, indent=1) + "\n")
    plot(long, report, out / f"{PREFIX}.png", len(datasets))
    return doc


def settings() -> dict:
    from quicktune.benchmark import qt_method
    from quicktune.benchmark.peers import best_default, qtt_peer

    return {
        "quicktune": {"meta_train": qt_method.META_TRAIN, "optimizer": qt_method.OPTIMIZER},
        "qtt": {"fit": qtt_peer.FIT, "optimizer": qtt_peer.OPTIMIZER, "changed": qtt_peer.CHANGED},
        "optuna": "TPESampler(seed) + HyperbandPruner(min_resource=1, max_resource=max_epochs, reduction_factor=3)",
        "smac": "MultiFidelityFacade, Hyperband intensifier eta=3, budgets 1..max_epochs (rounded)",
        "dehb": "DEHB defaults (mutation 0.5, crossover 0.5, rand1_bin), eta=3, fidelities 1..max_epochs (rounded)",
        "synetune-asha": "ASHA defaults (grace_period 1, reduction_factor 3, 1 bracket), time_attr=epoch",
        "synetune-bohb": "BOHB defaults (KDE searcher, grace_period 1, reduction_factor 3), time_attr=epoch",
        "best-default": {"default": best_default.DEFAULT, "size": "timm parameter count"},
    }


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for p in ("quicktune", "quicktunetool", "optuna", "smac", "dehb", "syne-tune", "ConfigSpace", "numpy", "torch"):
        try:
            out[p] = version(p)
        except PackageNotFoundError:
            out[p] = None
    return out


def plot(long: pd.DataFrame, report: dict, path: Path, n_datasets: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    per_ds = long.groupby(["method", "dataset", "time_s"])["regret"].mean().reset_index()
    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=100)
    for m, dm in per_ds.groupby("method", sort=False):
        curve = dm.groupby("time_s")["regret"].agg(["mean", "sem"])
        t = curve.index.to_numpy() / 3600.0
        ax.plot(t, curve["mean"], label=m, lw=2.2 if m == "quicktune" else 1.3)
        ax.fill_between(t, curve["mean"] - 1.96 * curve["sem"], curve["mean"] + 1.96 * curve["sem"], alpha=0.12)
    for label, v in report.items():
        ax.axvline(v / 3600.0, color="grey", lw=0.6, ls=":")
    ax.set_xscale("log")
    ax.set_xlabel("simulated time (hours of recorded compute)")
    ax.set_ylabel(f"mean normalized regret ({n_datasets} datasets)")
    ax.set_title("Replay benchmark: quicktune vs real peers (band: +-1.96 SE over datasets)")
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--metadataset", default=str(DEFAULT_METADATASET))
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--seeds", default="0")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--budget", default="16h")
    p.add_argument("--work-dir", default=str(REPO / ".quicktune-cache" / "peers_replay"))
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    p.add_argument("--max-minutes", type=float, default=0.0)
    p.add_argument("--aggregate-only", action="store_true")
    p.add_argument("--only-folds", default=None, help="run only the datasets of these folds (e.g. 0,1): to split "
                                                      "the jobs over processes")
    args = p.parse_args(argv)

    from quicktune.cli._common import parse_duration
    from quicktune.metadataset import load_rows
    from quicktune.metadataset.tabular import CurveTable

    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    args.seeds = [int(s) for s in args.seeds.split(",")]
    args.only_folds = None if args.only_folds is None else {int(f) for f in args.only_folds.split(",")}
    args.budget_s = parse_duration(args.budget)
    runs, features = load_rows(Path(args.metadataset))
    table = CurveTable(runs, features)
    if not args.aggregate_only:
        run_jobs(args, table)
    doc = aggregate(args, table)
    print(f"{doc['n_datasets']} datasets, seeds {args.seeds}, budget {args.budget}")
    for m, e in doc["methods"].items():
        cells = "  ".join(f"{k}: {v['mean']:.3f} [{v['ci95'][0]:.3f}, {v['ci95'][1]:.3f}]" for k, v in e["mean_regret"].items())
        beats = " ".join(f"{k}:{v['share']:.2f}" for k, v in e["quicktune_beats"].items())
        print(f"{m:>14} {cells}  overhead {e['overhead_per_step_ms']['median']:.1f} ms/step  qt beats {beats}")
    print()
    print(markdown(doc))
    return 0


def markdown(doc: dict) -> str:
    """The README table: mean regret [95% CI over datasets] at the report times, quicktune's wins."""
    labels = list(doc["report_times_s"])
    head = "| method | " + " | ".join(f"regret {k}" for k in labels) + \
        " | quicktune lower / higher (16h) | CPU ms/step |"
    lines = [head, "|" + "---|" * (len(labels) + 3)]
    n = doc["n_datasets"]
    for m, e in doc["methods"].items():
        cells = [f"{e['mean_regret'][k]['mean']:.3f} [{e['mean_regret'][k]['ci95'][0]:.2f}, "
                 f"{e['mean_regret'][k]['ci95'][1]:.2f}]" for k in labels]
        b = e["quicktune_beats"].get(labels[-1])
        beats = f"{round(b['share'] * n)} / {round(b['share_worse'] * n)} of {n}" if b else "-"
        name = f"**{m}**" if m == "quicktune" else m
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {beats} | {e['cpu_per_step_ms']['mean']:.1f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
