"""Which `--stop-when` default saves time at no regret cost? Measured on the replay benchmark.

Setup: the replay of a meta-dataset (default: the embedded metadataset/v1, the setting `suggest`'s
shipped surrogate comes from: 5-epoch CPU curves), leave-datasets-out folds (each fold's Quick-Tune
surrogate meta-trained on the other folds' datasets, `quicktune benchmark`'s method "quicktune"),
every dataset x `--seeds` seeds, run to the full budget. Each job records, per optimizer step, the
simulated clock at the end of each new epoch, those epochs' accuracies and the step's maximum
expected improvement (`QuickTune.last_max_ei`). Every candidate rule is then replayed on the record
with `quicktune.stopping.StopMonitor` (the code `suggest` runs), which gives its stopping time:

    saved  = 1 - t_stop / t_end        (t_end: when the unstopped job ended: budget or exhausted grid)
    cost   = regret(t_stop) - regret(t_end)   (normalized regret, >= 0)

Per dataset, both are averaged over seeds; the table gives the mean over datasets with a 95%
bootstrap CI over datasets (scipy.stats.bootstrap, BCa). The default is the rule that saves the most
time among those whose cost is zero on every dataset ("at no regret cost").

    python benchmarks/stop_rule.py [--metadataset metadataset/v1] [--budget 16m] [--seeds 3] [--folds 5]

Writes benchmarks/results/stop_rule.csv (rule x dataset) and stop_rule_summary.json; job records
are cached outside the repo (--cache-dir), so a rerun only runs missing jobs.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RULES = ["acc>=1", "patience=10", "patience=20", "patience=40", "patience=60", "patience=80",
         "ei<0.01:3", "ei<0.001:3", "ei<0.001:10", "ei<0.0001:10", "ei<0.001:10,patience=40"]
JOB_VERSION = 1


def run_job(table, contexts, dataset: str, seed: int, budget_s: float) -> dict:
    """One unstopped Quick-Tune replay: per step (clock after each new epoch, accuracies, max EI)."""
    from quicktune.benchmark.methods import MethodContext, get_method
    from quicktune.benchmark.replay import ReplayObjective

    task = table.task(dataset)
    objective = ReplayObjective(task)
    opt = get_method("quicktune").make(objective.space, objective.max_epochs, seed,
                                       MethodContext(task, contexts[dataset], seed))
    clock, steps = 0.0, []
    while clock < budget_s:
        trial = opt.ask()
        if trial is None:
            break
        obs = objective.evaluate(trial)
        first_new = len(obs.curve) - len(obs.epoch_seconds)
        times, accs = [], []
        for j, sec in enumerate(obs.epoch_seconds):
            clock += sec
            times.append(clock)
            accs.append(obs.curve[first_new + j])
        opt.tell(obs)
        steps.append({"t": times, "acc": accs, "ei": getattr(opt, "last_max_ei", None)})
    return {"dataset": dataset, "seed": seed, "budget_s": budget_s, "steps": steps}


def evaluate_rule(job: dict, task, rule_text: str) -> dict:
    """Stop time, regret at stop and at the end, of `rule_text` replayed on one job's record."""
    from quicktune.stopping import StopMonitor, StopRule

    budget = job["budget_s"]
    # Only epochs within the budget count (the last step may run past it).
    steps = [s for s in job["steps"] if s["t"] and s["t"][0] <= budget]
    mon = StopMonitor(StopRule.parse(rule_text))
    best, best_at_stop, t_stop = -math.inf, None, None
    for s in steps:
        accs = [a for a, t in zip(s["acc"], s["t"]) if t <= budget]
        for a in accs:
            if not math.isnan(a):
                best = max(best, a)
        if t_stop is None and mon.observe(accs, s["ei"]) is not None:
            t_stop, best_at_stop = min(s["t"][-1], budget), best
    t_end = min(steps[-1]["t"][-1], budget) if steps else budget
    if t_stop is None:
        t_stop, best_at_stop = t_end, best
    reg_stop = float(task.regret(np.array([best_at_stop if best_at_stop > -math.inf else np.nan]))[0])
    reg_end = float(task.regret(np.array([best if best > -math.inf else np.nan]))[0])
    return {"saved": 1.0 - t_stop / t_end if t_end > 0 else 0.0, "cost": max(0.0, reg_stop - reg_end),
            "stopped": t_stop < t_end, "t_stop": t_stop, "t_end": t_end}


def ci95(values: np.ndarray) -> list[float]:
    from scipy.stats import bootstrap

    if len(values) < 3 or np.ptp(values) == 0:
        return [float(np.mean(values))] * 2
    res = bootstrap((values,), np.mean, confidence_level=0.95, n_resamples=2000, method="BCa",
                    random_state=np.random.default_rng(0))
    return [float(res.confidence_interval.low), float(res.confidence_interval.high)]


def plot(summary: dict, chosen: str, path: Path, title: str) -> None:
    """Time saved against regret cost per rule, with 95% CIs over datasets."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for rule, v in summary.items():
        x, y = v["saved_mean"], v["regret_cost_mean"]
        (xl, xh), (yl, yh) = v["saved_ci95"], v["regret_cost_ci95"]
        ax.errorbar(x, y, xerr=[[x - xl], [xh - x]], yerr=[[y - yl], [yh - y]], fmt="o",
                    color="tab:red" if rule == chosen else "0.35", ms=6 if rule == chosen else 4, capsize=2)
        ax.annotate(rule, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xlabel("share of the search saved (mean over datasets, 95% CI)")
    ax.set_ylabel("regret cost (normalized regret at stop - at end)")
    ax.set_title(f"stop rules on the replay ({title}); red: the default", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--metadataset", type=Path, default=REPO / "metadataset" / "v1")
    ap.add_argument("--budget", default="16m")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--meta-steps", type=int, default=None, help="meta-training steps per fold (default: the benchmark's)")
    ap.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "quicktune" / "bench-stop-rule")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    ap.add_argument("--prefix", default="stop_rule")
    args = ap.parse_args(argv)

    import torch

    from quicktune.benchmark import qt_method
    from quicktune.benchmark.experiment import fold_contexts
    from quicktune.cli._common import parse_duration
    from quicktune.metadataset import open_metadataset

    torch.set_num_threads(1)
    if args.meta_steps:
        qt_method.configure(meta_train={"steps": args.meta_steps})
    budget = parse_duration(args.budget)
    table = open_metadataset(args.metadataset)
    cache = args.cache_dir / args.metadataset.resolve().name
    cache.mkdir(parents=True, exist_ok=True)
    contexts = fold_contexts(table, args.folds, cache)
    t0 = time.perf_counter()
    for ctx in {c.fold: c for c in contexts.values()}.values():
        qt_method.prepare(ctx)
    print(f"surrogates ready ({time.perf_counter() - t0:.0f} s)", flush=True)

    jobs = {}
    for d in table.datasets:
        for s in range(args.seeds):
            tag = qt_method.surrogate_path(contexts[d]).stem
            f = cache / f"job-v{JOB_VERSION}-{d.replace('/', '_')}-s{s}-{int(budget)}s-{tag}.json"
            if f.is_file():
                jobs[(d, s)] = json.loads(f.read_text())
                continue
            t1 = time.perf_counter()
            job = run_job(table, contexts, d, s, budget)
            f.write_text(json.dumps(job))
            jobs[(d, s)] = job
            print(f"{d} seed {s}: {len(job['steps'])} steps in {time.perf_counter() - t1:.1f} s", flush=True)

    import pandas as pd

    rows = []
    for rule in ["none", *RULES]:
        for d in table.datasets:
            evals = [evaluate_rule(jobs[(d, s)], table.task(d), rule) for s in range(args.seeds)]
            rows.append({"rule": rule, "dataset": d, "saved": np.mean([e["saved"] for e in evals]),
                         "regret_cost": np.mean([e["cost"] for e in evals]),
                         "stopped_share": np.mean([e["stopped"] for e in evals]),
                         "t_stop_s": np.mean([e["t_stop"] for e in evals]), "t_end_s": np.mean([e["t_end"] for e in evals])})
    df = pd.DataFrame(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    df.to_csv(args.out / f"{args.prefix}.csv", index=False, float_format="%.6g")
    summary = {}
    for rule, g in df.groupby("rule", sort=False):
        saved, cost = g["saved"].to_numpy(), g["regret_cost"].to_numpy()
        summary[rule] = {"saved_mean": float(saved.mean()), "saved_ci95": ci95(saved),
                         "regret_cost_mean": float(cost.mean()), "regret_cost_ci95": ci95(cost),
                         "datasets_with_cost": int((cost > 0).sum()), "stopped_share": float(g["stopped_share"].mean())}
    free = [r for r in RULES if summary[r]["datasets_with_cost"] == 0]
    chosen = max(free, key=lambda r: summary[r]["saved_mean"]) if free else "none"
    doc = {
        "metadataset": str(args.metadataset.relative_to(REPO) if args.metadataset.is_relative_to(REPO) else args.metadataset),
        "budget_s": budget, "seeds": args.seeds, "folds": args.folds, "datasets": table.datasets,
        "meta_train": qt_method.META_TRAIN, "optimizer": qt_method.OPTIMIZER,
        "saved": "1 - t_stop / t_end per job (t_end: budget or exhausted grid), mean over seeds per dataset",
        "regret_cost": "normalized regret at t_stop minus at t_end, mean over seeds per dataset",
        "ci": "95% BCa bootstrap over datasets (scipy.stats.bootstrap)",
        "selection": "the rule with the largest mean saving among those with zero regret cost on every dataset",
        "chosen_default": chosen, "rules": summary,
        "command": "python benchmarks/stop_rule.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    (args.out / f"{args.prefix}_summary.json").write_text(json.dumps(doc, indent=1) + "\n")
    plot(summary, chosen, args.out / f"{args.prefix}.png", f"{doc['metadataset']}: {len(table.datasets)} datasets x "
         f"{args.seeds} seeds, budget {args.budget}")
    for rule, v in summary.items():
        print(f"{rule:>26}: saved {v['saved_mean']:.3f} {np.round(v['saved_ci95'], 3)}  cost {v['regret_cost_mean']:.4f} "
              f"{np.round(v['regret_cost_ci95'], 4)}  datasets with cost {v['datasets_with_cost']}", flush=True)
    print(f"chosen default: {chosen}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
