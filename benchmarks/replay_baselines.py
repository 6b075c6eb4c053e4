"""Produce the committed replay-benchmark results of the baselines.

Random search, grid search and Hyperband replayed on the published Quick-Tune meta-dataset
("extended": 19 Meta-Album datasets, 24 models, up to 50 epochs), all datasets, a 16 h simulated
budget of recorded compute, 10 seeds, leave-datasets-out folds (irrelevant to these baselines,
which learn nothing across datasets, but the same protocol the meta-learned methods use).

    python benchmarks/replay_baselines.py [--metadataset ../shared/data/quicktune-extended]
                                          [--out benchmarks/results] [--seeds 10] [--workers 1]

Writes, into --out: replay_baselines.csv (method, dataset, fold, seed, time_s, regret on a
log-spaced time grid), replay_baselines_runs.csv (one row per job), replay_baselines_summary.csv
and .json (mean regret with a 95% bootstrap CI at 1 h / 4 h / 16 h, per dataset and averaged; the
median optimizer overhead per step), replay_baselines.png and replay_baselines_per_dataset.png.
Deterministic: the same inputs give the same CSVs (the overhead and wall-time fields excepted).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_METADATASET = REPO.parent / "shared" / "data" / "quicktune-extended"
METHODS = ["random", "grid", "hyperband"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--metadataset", type=Path, default=DEFAULT_METADATASET)
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    p.add_argument("--budget", default="16h")
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--grid-points", type=int, default=60)
    args = p.parse_args(argv)

    from quicktune import __version__
    from quicktune.benchmark.experiment import run_benchmark, summarize, write_outputs
    from quicktune.cli._common import parse_duration
    from quicktune.metadataset import open_metadataset

    if not args.metadataset.exists():
        print(f"error: --metadataset {args.metadataset}: no such directory", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    table = open_metadataset(args.metadataset)
    budget_s = parse_duration(args.budget)
    res = run_benchmark(table, METHODS, budget_s, seeds=range(args.seeds), n_folds=args.folds,
                        workers=args.workers, grid_points=args.grid_points)
    paths = write_outputs(res, args.out, prefix="replay_baselines")
    wall = time.perf_counter() - t0

    doc = json.loads(paths["summary_json"].read_text())
    doc["provenance"] = {
        "script": "benchmarks/replay_baselines.py",
        "metadataset": args.metadataset.name,
        "n_datasets": len(table.datasets),
        "n_runs": int(sum(t.n_runs for t in table.tasks())),
        "quicktune_version": __version__,
        "python": platform.python_version(),
        "wall_time_s": round(wall, 1),
    }
    paths["summary_json"].write_text(json.dumps(doc, indent=2) + "\n")

    summary, _ = summarize(res)
    avg = summary[summary["dataset"] == "ALL"]
    print(f"{len(table.datasets)} datasets x {args.seeds} seeds, budget {args.budget}, wall time {wall:.1f} s")
    for m in METHODS:
        row = avg[avg["method"] == m].set_index("time")
        cells = "  ".join(f"{t}: {row.loc[t, 'mean']:.3f} [{row.loc[t, 'ci_low']:.3f}, {row.loc[t, 'ci_high']:.3f}]"
                          for t in row.index)
        print(f"{m:>10}  {cells}")
    for k, v in paths.items():
        print(f"{k:>16}: {v.relative_to(REPO) if v.is_relative_to(REPO) else v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
