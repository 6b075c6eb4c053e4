"""How good is `suggest`'s zero-shot ranking? Leave-datasets-out on the Quick-Tune meta-dataset and
on the embedded v1 meta-dataset (issue 10 item 5).

Per meta-dataset: 5 folds of datasets (seeded); each fold's surrogate is meta-trained on the other
folds' datasets only. For every held-out dataset, its recorded runs are the candidates:

- zero-shot: candidates ranked by the surrogate's prior mean at the full horizon (no curve, the
  dataset's descriptors and, for v1, its recorded domain features). Normalized regret (best - x) /
  (best - worst) of the top-1 and of the best of the top-5, x = a run's best recorded accuracy;
  Spearman(predicted, recorded); calibration: share of runs whose accuracy at their last recorded
  epoch lies inside the predicted 68% / 95% interval for that epoch (std incl. observation noise).
- (a) best on average: the training-datasets config with the lowest mean regret over the training
  datasets; (b) a greedy 5-config portfolio (each step adds the config that lowers the mean over
  training datasets of the portfolio's best regret most; zero-shot portfolios as in ZAP / Syne
  Tune's ZeroShotTransfer); (c) the largest model (parameter count) with default hyperparameters
  (every hyperparameter at its most common recorded value; numeric ties: the median).
  Quick-Tune's configs are unique per dataset, so a config chosen on some datasets is evaluated on
  another through its nearest recorded run of the same model there (Euclidean distance in the
  surrogate's [0, 1] hyperparameter encoding); on v1 the grid is shared and the lookup is exact.

CIs: 95% bootstrap over held-out datasets (scipy.stats.bootstrap). Writes
benchmarks/results/zero_shot_quality{.csv,_summary.json,.png}.

    nice -n 10 python benchmarks/zero_shot_quality.py [--steps 2000]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "results"
SHARED = REPO.parent.parent / "shared"  # /work/shared next to /work/wt/<name> or /work/main
METASETS = {
    "quicktune": lambda: _shared() / "data" / "quicktune-extended",
    "v1": lambda: REPO / "metadataset" / "v1",
}


def _shared() -> Path:
    for p in (REPO.parent / "shared", REPO.parent.parent / "shared", Path("/work/shared")):
        if p.is_dir():
            return p
    raise SystemExit("the shared data folder (../shared) is not here")


def folds(datasets: list[str], k: int, seed: int) -> list[list[str]]:
    perm = np.random.default_rng(seed).permutation(len(datasets))
    return [sorted(datasets[i] for i in perm[j::k]) for j in range(k)]


def best_acc(task) -> np.ndarray:
    return np.nanmax(np.where(np.isfinite(task.perf), task.perf, -np.inf), axis=1)


def last_acc(task) -> tuple[np.ndarray, np.ndarray]:
    idx = np.asarray(task.lengths, dtype=int) - 1
    acc = task.perf[np.arange(task.n_runs), idx]
    return np.nan_to_num(acc, nan=0.0), idx + 1


class Lookup:
    """Nearest recorded run of the same model on a dataset, in the hyperparameter encoding."""

    def __init__(self, space_state, tasks) -> None:
        from quicktune.space import SearchSpace

        self.enc, self.models, self.regret = {}, {}, {}
        for t in tasks:
            sp = SearchSpace.from_state_dict(space_state, t.configs)
            self.enc[t.dataset] = sp.encode().numpy()
            self.models[t.dataset] = np.array([c.model for c in t.configs])
            self.regret[t.dataset] = np.asarray(t.regret(best_acc(t)), dtype=float)

    def regrets(self, enc: np.ndarray, models: np.ndarray, dataset: str) -> np.ndarray:
        """(n,) regret on `dataset` of the nearest same-model run of each of n configs (1: model absent)."""
        e, m, r = self.enc[dataset], self.models[dataset], self.regret[dataset]
        out = np.ones(len(enc))
        for model in np.unique(models):
            q, pool = np.flatnonzero(models == model), np.flatnonzero(m == model)
            if len(pool):
                d = ((enc[q, None, :] - e[None, pool, :]) ** 2).sum(axis=2)
                out[q] = r[pool[d.argmin(axis=1)]]
        return out


def default_config_index(train_tasks, model: str, held) -> int | None:
    """The held-out run of `model` nearest to the default config (modes of the training runs)."""
    from quicktune.space import SearchSpace

    cfgs = [c for t in train_tasks for c in t.configs if c.model == model]
    mine = [i for i, c in enumerate(held.configs) if c.model == model]
    if not cfgs or not mine:
        return None
    sp = SearchSpace(cfgs)
    enc = sp.encode().numpy()
    default = np.empty(enc.shape[1])
    for j in range(enc.shape[1]):
        vals, counts = np.unique(enc[:, j], return_counts=True)
        top = vals[counts == counts.max()]
        default[j] = float(np.median(top))
    e = SearchSpace.from_state_dict(sp.state_dict(), [held.configs[i] for i in mine]).encode().numpy()
    return mine[int(((e - default) ** 2).sum(axis=1).argmin())]


def evaluate_fold(name, table, train, held_out, steps, seed, sizes, zero_shot_weight=None) -> list[dict]:
    from scipy.stats import norm, spearmanr

    from quicktune.surrogate.fit import meta_train

    extra = {} if zero_shot_weight is None else {"zero_shot_weight": zero_shot_weight}
    res = meta_train(table, steps=steps, seed=seed, datasets=train, val_fraction=0.0, **extra)
    s = res.surrogate
    s.condition(None, None)
    train_tasks = [table.task(d) for d in train]
    look = Lookup(s.space_state, train_tasks + [table.task(d) for d in held_out])
    # (a) and (b) over the pool of every training run
    pool_enc = np.concatenate([look.enc[d] for d in train])
    pool_models = np.concatenate([look.models[d] for d in train])
    R = np.stack([look.regrets(pool_enc, pool_models, d) for d in train], axis=1)  # (pool x train datasets)
    avg_best = int(R.mean(axis=1).argmin())
    portfolio: list[int] = []
    cur = np.ones(R.shape[1])
    for _ in range(5):
        gain = np.minimum(R, cur[None, :]).mean(axis=1)
        j = int(gain.argmin())
        portfolio.append(j)
        cur = np.minimum(cur, R[j])
    largest = max(sizes, key=lambda m: (sizes[m], m))
    rows = []
    z68, z95 = norm.ppf(0.84), norm.ppf(0.975)
    for d in held_out:
        t = table.task(d)
        static = s.static_inputs(t.configs, t.dataset_features, t.pair_features)
        n = t.n_runs
        full = s.rows(static, np.full(n, s.max_epochs), [()] * n)
        mu, _ = s.posterior(full)
        mu = mu.numpy()
        acc_last, ep = last_acc(t)
        mu_l, var_l = s.posterior(s.rows(static, ep, [()] * n))
        sd_l = np.sqrt(var_l.numpy() + s.gp.noise)
        mu_l = mu_l.numpy()
        reg = look.regret[d]
        order = np.argsort(-mu, kind="stable")
        ci = default_config_index(train_tasks, largest, t)
        rows.append({
            "metadataset": name, "dataset": d, "runs": n, "train_datasets": len(train),
            "zero_shot_top1": float(reg[order[0]]), "zero_shot_top5": float(reg[order[:5]].min()),
            "best_on_average": float(look.regrets(pool_enc[[avg_best]], pool_models[[avg_best]], d)[0]),
            "portfolio_5": float(look.regrets(pool_enc[portfolio], pool_models[portfolio], d).min()),
            "largest_default": float(reg[ci]) if ci is not None else math.nan,
            "spearman": float(spearmanr(mu, best_acc(t)).statistic),
            "coverage_68": float(np.mean(np.abs(acc_last - mu_l) <= z68 * sd_l)),
            "coverage_95": float(np.mean(np.abs(acc_last - mu_l) <= z95 * sd_l)),
            "mean_pred_std": float(sd_l.mean()),
            "largest_model": largest,
        })
    return rows


def model_sizes(name: str, table) -> dict[str, float]:
    if name == "quicktune":
        from quicktune.suggest import load_surrogate
        from quicktune.zoo import Zoo

        zoo = Zoo.from_surrogate(load_surrogate("quicktune"))  # facts recorded from timm's registry
        return {m: zoo.facts[zoo.aliases.get(m, m)]["n_params"] for m in table.models}
    from quicktune.hub import model_descriptors as hub_descriptors

    desc = hub_descriptors(table.models, _shared() / "weights")
    return {m: 10 ** desc[m]["log10_params"] for m in table.models if m in desc}


def ci(values: np.ndarray) -> tuple[float, float, float]:
    from scipy.stats import bootstrap

    v = values[np.isfinite(values)]
    if len(v) < 2 or np.ptp(v) == 0:
        return float(np.mean(v)) if len(v) else math.nan, math.nan, math.nan
    b = bootstrap((v,), np.mean, confidence_level=0.95, n_resamples=2000, random_state=0, method="percentile")
    return float(v.mean()), float(b.confidence_interval.low), float(b.confidence_interval.high)


METRICS = ["zero_shot_top1", "zero_shot_top5", "best_on_average", "portfolio_5", "largest_default", "spearman",
           "coverage_68", "coverage_95", "mean_pred_std"]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=2000, help="meta-training steps per fold")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--metadatasets", default="quicktune,v1")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--zero-shot-weight", type=float, default=None,
                    help="meta_train's zero_shot_weight (default: its own; 0 = the ablation without the zero-shot loss)")
    a = ap.parse_args()
    out = a.out
    torch.set_num_threads(1)
    from quicktune.metadataset import load_rows
    from quicktune.metadataset.tabular import CurveTable

    out.mkdir(parents=True, exist_ok=True)
    csv = out / "zero_shot_quality.csv"
    done = pd.read_csv(csv) if csv.is_file() else pd.DataFrame()
    rows = done.to_dict("records")
    t0 = time.perf_counter()
    for name in a.metadatasets.split(","):
        runs, feats = load_rows(METASETS[name]())
        table = CurveTable(runs, feats)
        sizes = model_sizes(name, table)
        for k, held in enumerate(folds(table.datasets, a.folds, a.seed)):
            if not done.empty and set(held) <= set(done[done.metadataset == name].dataset):
                continue  # resumable: this fold is in the CSV already
            train = [d for d in table.datasets if d not in held]
            new = evaluate_fold(name, table, train, held, a.steps, a.seed, sizes, a.zero_shot_weight)
            for r in new:
                r["fold"] = k
            rows += new
            pd.DataFrame(rows).to_csv(csv, index=False)
            print(f"{name} fold {k}: {len(held)} held out, {time.perf_counter() - t0:.0f}s", flush=True)
    df = pd.DataFrame(rows)
    summary = {"setup": {"folds": a.folds, "seed": a.seed, "meta_training_steps_per_fold": a.steps,
                         "zero_shot_weight": a.zero_shot_weight,
                         "note": "surrogate meta-trained per fold on the other folds' datasets only"}}
    for name, g in df.groupby("metadataset"):
        summary[name] = {"datasets": len(g)}
        for m in METRICS:
            mean, lo, hi = ci(g[m].to_numpy(dtype=float))
            summary[name][m] = {"mean": mean, "ci95": [lo, hi]}
    (out / "zero_shot_quality_summary.json").write_text(json.dumps(summary, indent=1))
    plot(df, out / "zero_shot_quality.png")
    print(json.dumps(summary, indent=1))
    return 0


def plot(df: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = ["zero_shot_top1", "zero_shot_top5", "best_on_average", "portfolio_5", "largest_default"]
    labels = ["zero-shot\ntop-1", "zero-shot\nbest of top-5", "(a) best on\naverage", "(b) greedy\n5-portfolio",
              "(c) largest,\ndefaults"]
    names = sorted(df.metadataset.unique())
    fig, axes = plt.subplots(1, len(names), figsize=(5.5 * len(names), 3.6), squeeze=False)
    for ax, name in zip(axes[0], names):
        g = df[df.metadataset == name]
        means, errs = [], [[], []]
        for c in cols:
            m, lo, hi = ci(g[c].to_numpy(dtype=float))
            means.append(m)
            errs[0].append(m - lo if np.isfinite(lo) else 0)
            errs[1].append(hi - m if np.isfinite(hi) else 0)
        ax.bar(range(len(cols)), means, yerr=errs, capsize=3, color=["C0", "C0", "C1", "C2", "C3"])
        ax.set_xticks(range(len(cols)), labels, fontsize=7)
        ax.set_ylabel("normalized regret (lower is better)")
        ax.set_title(f"{name}: {len(g)} held-out datasets, 95% CI")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
