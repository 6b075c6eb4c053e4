"""Quick-Tune on the replay benchmark, its ablations, and the optimizer's per-step overhead.

Part 1 (replay): quicktune, quicktune-no-zs, quicktune-no-meta, quicktune-no-cost and random search replayed on the
published Quick-Tune meta-dataset ("extended": 19 Meta-Album datasets, 24 models, up to 50
epochs), all datasets, a 16 h simulated budget of recorded compute, 5 seeds, 5 leave-datasets-out
folds: each fold's surrogate is meta-trained only on the other folds' datasets (once per fold,
cached), then every held-out dataset is searched from scratch.

Part 2 (overhead): the wall time of one optimizer step (surrogate refit + acquisition over every
candidate) with 5,000 candidates: the candidates are the held-out target's recorded configs
(PNU by default) with jittered ELR and weight decay, each answered from the run it was copied
from; the optimizer runs `--overhead-steps` asks, as in a real search.

    python benchmarks/quicktune_replay.py [--metadataset ../shared/data/quicktune-extended]
        [--out benchmarks/results] [--seeds 5] [--workers 2] [--part replay|overhead|all]

Writes, into --out: quicktune_replay.csv (method, dataset, fold, seed, time_s, regret),
quicktune_replay_runs.csv (one row per job), quicktune_replay_summary.csv/.json (mean regret with a
95% bootstrap CI at 1 h / 4 h / 16 h, per dataset and averaged, the median overhead per step, the
settings and the meta-training time per fold), quicktune_replay.png and
quicktune_replay_per_dataset.png; optimizer_overhead.json.
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
METHODS = ["quicktune", "quicktune-no-zs", "quicktune-no-meta", "quicktune-no-cost", "random"]


def run_replay(args: argparse.Namespace, table) -> dict:
    from quicktune.benchmark import qt_method
    from quicktune.benchmark.experiment import fold_contexts, run_benchmark, summarize, write_outputs
    from quicktune.cli._common import parse_duration
    from quicktune.surrogate.gp import Surrogate

    t0 = time.perf_counter()
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    res = run_benchmark(table, methods, parse_duration(args.budget), seeds=range(args.seeds), n_folds=args.folds,
                        workers=args.workers, cache_dir=args.cache_dir, grid_points=args.grid_points,
                        progress=_progress)
    paths = write_outputs(res, args.out, prefix=args.prefix)
    wall = time.perf_counter() - t0

    # Meta-training time and validation metrics per fold, read back from the cached checkpoints.
    folds = {}
    for ctx in {c.key: c for c in fold_contexts(table, args.folds, args.cache_dir).values()}.values():
        info = Surrogate.load(qt_method.surrogate_path(ctx)).info
        folds[ctx.key] = {
            "test_datasets": list(ctx.test_datasets),
            "meta_train_seconds": round(float(info["seconds"]), 1),
            "val_datasets": info["val_datasets"],
            "best_step": info["best_step"],
            "val_metrics": {k: round(float(v), 4) for k, v in info["val_metrics"].items()},
        }
    doc = json.loads(paths["summary_json"].read_text())
    doc["quicktune"] = {"meta_train": qt_method.META_TRAIN, "optimizer": qt_method.OPTIMIZER, "folds": folds}
    doc["provenance"] = _provenance(args, table, wall)
    paths["summary_json"].write_text(json.dumps(doc, indent=2) + "\n")

    summary, _ = summarize(res)
    avg = summary[summary["dataset"] == "ALL"]
    print(f"{len(table.datasets)} datasets x {args.seeds} seeds, budget {args.budget}, wall time {wall:.0f} s")
    for m in methods:
        row = avg[avg["method"] == m].set_index("time")
        cells = "  ".join(f"{t}: {row.loc[t, 'mean']:.3f} [{row.loc[t, 'ci_low']:.3f}, {row.loc[t, 'ci_high']:.3f}]"
                          for t in row.index)
        print(f"{m:>18}  {cells}  overhead/step {row['median_overhead_s'].iloc[0] * 1e3:.1f} ms")
    for f, v in folds.items():
        print(f"{f}: meta-training {v['meta_train_seconds']} s, val {v['val_metrics']}")
    for k, v in paths.items():
        print(f"{k:>16}: {v.relative_to(REPO) if v.is_relative_to(REPO) else v}")
    doc["dataset_level"] = dataset_stats(args.out, args.prefix)
    return doc


class _CopiedReplay:
    """Answers trials of jittered copies from the recorded run each copy was made from."""

    def __init__(self, task, source: np.ndarray, space) -> None:
        from quicktune.benchmark.replay import ReplayObjective

        self.inner = ReplayObjective(task)
        self.source = source
        self.space = space
        self.max_epochs = task.max_epochs
        self.trained = np.zeros(len(source), dtype=int)

    def evaluate(self, trial):
        from quicktune.protocol import Observation

        i = int(self.source[trial.config_id])
        length = self.inner.recorded_length(i)
        before = int(self.trained[trial.config_id])
        after = max(before, min(trial.epoch, length))
        self.trained[trial.config_id] = after
        secs = tuple(float(s) for s in np.nan_to_num(self.inner.task.cost[i, before:after]))
        curve = tuple(float(v) for v in self.inner.task.perf[i, :after])
        return Observation(trial, curve, float(sum(secs)), secs, finished=after >= length)


def run_overhead(args: argparse.Namespace, table) -> dict:
    import torch

    from quicktune.benchmark import qt_method
    from quicktune.benchmark.experiment import fold_contexts
    from quicktune.optimizer.quicktune import QuickTune
    from quicktune.space import Config, SearchSpace
    from quicktune.surrogate.gp import Surrogate

    ctx = fold_contexts(table, args.folds, args.cache_dir)[args.overhead_dataset]
    qt_method.prepare(ctx)  # normally cached by the replay part
    task = table.task(args.overhead_dataset)
    rng = np.random.default_rng(0)
    source = np.arange(args.candidates) % task.n_runs
    configs = []
    for j, i in enumerate(source):
        c = task.configs[int(i)]
        jitter = 10 ** rng.uniform(-0.3, 0.3, size=2) if j >= task.n_runs else (1.0, 1.0)
        configs.append(Config(c.model, c.elr * jitter[0], c.weight_decay * jitter[1], c.momentum, c.extras))
    space = SearchSpace(configs)
    out: dict = {
        "candidates": len(space), "dataset": args.overhead_dataset, "fold": ctx.key, "steps": args.overhead_steps,
        "what": "wall seconds of QuickTune.ask() (surrogate refit + acquisition over all candidates) per step",
        "settings": {"defaults": "QuickTune's defaults (10 refit steps, up to 256 GP points)",
                     "replay-settings": qt_method.OPTIMIZER},
        "runs": {},
    }
    variants = [("defaults", {}, 1), ("defaults", {}, 2), ("replay-settings", dict(qt_method.OPTIMIZER), 1)]
    for label, settings, threads in variants:
        torch.set_num_threads(threads)
        for name, meta in (("quicktune", True), ("quicktune-no-meta", False)):
            surrogate = Surrogate.load(qt_method.surrogate_path(ctx)) if meta else None
            t0 = time.perf_counter()
            opt = QuickTune(space, task.max_epochs, 0, surrogate=surrogate, dataset_features=task.dataset_features,
                            **settings)
            setup = time.perf_counter() - t0
            obj = _CopiedReplay(task, source, space)
            tell_s = []
            for _ in range(args.overhead_steps):
                trial = opt.ask()
                if trial is None:
                    break
                obs = obj.evaluate(trial)
                t1 = time.perf_counter()
                opt.tell(obs)
                tell_s.append(time.perf_counter() - t1)
            ask = np.asarray(opt.step_seconds)
            step = ask[: len(tell_s)] + np.asarray(tell_s)
            n_obs = sum(len(c) for c in opt.curves.values())
            key = f"{name}/{label}/threads={threads}"
            out["runs"][key] = {
                "median_s": float(np.median(step)), "p90_s": float(np.percentile(step, 90)), "max_s": float(step.max()),
                "mean_s": float(step.mean()), "steps": int(len(step)), "setup_s": round(setup, 3),
                "median_last_100_s": float(np.median(step[-100:])),
                "gp_points_at_end": int(min(n_obs, opt.max_train_points)),
                "observed_epochs_at_end": int(n_obs), "configs_started": len(opt.curves),
            }
            print(f"{key:>46}: median {np.median(step) * 1e3:.0f} ms, p90 {np.percentile(step, 90) * 1e3:.0f} ms, "
                  f"max {step.max() * 1e3:.0f} ms over {len(step)} steps ({n_obs} observed epochs; setup {setup:.1f} s)")
    out["provenance"] = {"python": platform.python_version(), "torch": torch.__version__}
    path = args.out / "optimizer_overhead.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"{'overhead':>16}: {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")
    return out


def dataset_stats(out: Path, prefix: str, reference: str = "random", n_boot: int = 5000) -> dict:
    """Per-dataset comparisons read back from <prefix>_summary.csv: on how many datasets each
    method beats `reference` (and quicktune-no-meta), and the ratio of mean regrets with a 95%
    bootstrap CI over DATASETS (Quick-Tune with a meta-trained surrogate is nearly deterministic,
    so seeds barely vary and a CI over seeds would understate the uncertainty)."""
    import pandas as pd

    s = pd.read_csv(out / f"{prefix}_summary.csv")
    s = s[s["dataset"] != "ALL"]
    rng = np.random.default_rng(0)
    stats: dict = {}
    for t in s["time"].unique():
        p = s[s["time"] == t].pivot(index="dataset", columns="method", values="mean").dropna()
        if reference not in p.columns or p.empty:
            continue
        idx = rng.integers(0, len(p), size=(n_boot, len(p)))
        ref = p[reference].to_numpy()
        row = {}
        for m in p.columns:
            if m == reference:
                continue
            v = p[m].to_numpy()
            ratio = v[idx].mean(1) / np.maximum(ref[idx].mean(1), 1e-12)
            row[m] = {
                "mean_regret": float(v.mean()), f"ratio_to_{reference}": float(v.mean() / max(ref.mean(), 1e-12)),
                "ratio_ci_datasets": [float(x) for x in np.percentile(ratio, [2.5, 97.5])],
                f"datasets_better_than_{reference}": int((v < ref).sum()),
                "datasets_better_than_quicktune-no-meta": (int((v < p["quicktune-no-meta"].to_numpy()).sum())
                                                           if "quicktune-no-meta" in p.columns and m != "quicktune-no-meta" else None),
                "n_datasets": int(len(p)),
            }
        stats[str(t)] = row
    path = out / f"{prefix}_summary.json"
    doc = json.loads(path.read_text())
    doc["dataset_level"] = stats
    path.write_text(json.dumps(doc, indent=2) + "\n")
    for t, row in stats.items():
        for m, v in row.items():
            print(f"{t:>4} {m:>18}: regret {v['mean_regret']:.3f} = {v[f'ratio_to_{reference}']:.3f} x {reference} "
                  f"[{v['ratio_ci_datasets'][0]:.3f}, {v['ratio_ci_datasets'][1]:.3f}] (datasets bootstrap); better on "
                  f"{v[f'datasets_better_than_{reference}']}/{v['n_datasets']} datasets")
    return stats


def _progress(stage: str, done: int, total: int) -> None:
    if done == total or done % max(1, total // 20) == 0:
        print(f"  {stage}: {done}/{total}", flush=True)


def _provenance(args: argparse.Namespace, table, wall: float) -> dict:
    from quicktune import __version__

    return {
        "script": "benchmarks/quicktune_replay.py",
        "metadataset": args.metadataset.name,
        "n_datasets": len(table.datasets),
        "n_runs": int(sum(t.n_runs for t in table.tasks())),
        "workers": args.workers,
        "quicktune_version": __version__,
        "python": platform.python_version(),
        "wall_time_s": round(wall, 1),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--metadataset", type=Path, default=DEFAULT_METADATASET)
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    p.add_argument("--cache-dir", type=Path, default=REPO / ".quicktune-cache" / "quicktune_replay")
    p.add_argument("--part", choices=["replay", "overhead", "stats", "all"], default="all")
    p.add_argument("--budget", default="16h")
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated benchmark methods")
    p.add_argument("--prefix", default="quicktune_replay", help="file name prefix of the replay outputs")
    p.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--grid-points", type=int, default=60)
    p.add_argument("--overhead-dataset", default="PNU")
    p.add_argument("--candidates", type=int, default=5000)
    p.add_argument("--overhead-steps", type=int, default=300)
    args = p.parse_args(argv)
    if not args.metadataset.exists():
        print(f"error: --metadataset {args.metadataset}: no such directory", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    import torch

    torch.set_num_threads(args.threads)

    from quicktune.metadataset import open_metadataset

    table = open_metadataset(args.metadataset)
    table.tasks()  # build every dataset's curves once, before folds restrict the table
    if args.overhead_dataset not in table.datasets:
        print(f"error: --overhead-dataset {args.overhead_dataset!r} is not in the meta-dataset", file=sys.stderr)
        return 2
    if args.part in ("replay", "all"):
        run_replay(args, table)
    if args.part == "stats":
        dataset_stats(args.out, args.prefix)
    if args.part in ("overhead", "all"):
        run_overhead(args, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
