"""Analyses of recorded fine-tuning runs (pure functions on meta-dataset rows).

Used by benchmarks/li2020_elr.py, the reproduction of Li et al. (ICLR 2020, "Rethinking the
Hyperparameters for Fine-tuning") on the embedded meta-dataset:

* `run_summary`: one row per run (its config, best and final validation accuracy, completeness);
* `best_elr`: per (dataset, model) the best effective learning rate ELR = lr / (1 - momentum) of a
  sweep over a fixed grid, with its ties, near-ties (within one binomial standard error of the
  best) and whether it sits on an edge of the grid (then the true optimum may lie beyond it);
* `correlation`: Spearman / Pearson with a bootstrap CI that resamples groups (tasks), so several
  models measured on the same task move together;
* `paired_difference`: mean paired difference with a bootstrap CI, a sign test and a Wilcoxon
  signed-rank test;
* `momentum_pairs`: momentum 0 vs 0.9 at equal ELR and at equal lr.

Nothing here reads files or imports torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

_CONFIG_COLUMNS = ["dataset", "model", "elr", "lr", "momentum", "weight_decay", "optimizer", "extras", "seed",
                   "max_epochs"]


def run_summary(runs: pd.DataFrame, chance: dict[str, float] | None = None) -> pd.DataFrame:
    """One row per run_key of long-format run rows (metadataset RUN_SCHEMA).

    Columns: run_key, the config columns (_CONFIG_COLUMNS), epochs (last recorded epoch), status
    (of the last recorded epoch), complete (the horizon is reached or the run diverged),
    best_acc (max validation accuracy over the recorded epochs; NaN when none is finite),
    final_acc (accuracy at the last recorded epoch; for a diverged run the chance level
    `chance[dataset]` when given, else 0: a diverged run ends as badly as guessing).
    """
    if runs.empty:
        return pd.DataFrame(columns=["run_key", *_CONFIG_COLUMNS, "epochs", "status", "complete", "best_acc",
                                     "final_acc"])
    df = runs.sort_values(["run_key", "epoch"])
    g = df.groupby("run_key", sort=True)
    out = g[_CONFIG_COLUMNS].first()
    out["epochs"] = g["epoch"].max().astype(int)
    out["status"] = g["status"].last()
    out["best_acc"] = g["val_acc"].max()  # pandas max skips NaN; all-NaN gives NaN
    last = df.drop_duplicates("run_key", keep="last").set_index("run_key")
    out["final_acc"] = last["val_acc"].reindex(out.index)
    diverged = out["status"] == "diverged"
    fill = out["dataset"].map(chance or {}).fillna(0.0).astype(float)
    out.loc[diverged, "final_acc"] = fill[diverged]
    out["complete"] = (out["epochs"] >= out["max_epochs"]) | diverged
    return out.reset_index()


def _on_grid(values: pd.Series, grid: Sequence[float], rtol: float = 1e-3) -> pd.Series:
    """The grid value each entry matches (relative tolerance `rtol`), NaN where none does."""
    arr = np.asarray(values, dtype=float)
    g = np.asarray(grid, dtype=float)
    hit = np.isclose(arr[:, None], g[None, :], rtol=rtol, atol=0.0)
    idx = np.where(hit.any(axis=1), hit.argmax(axis=1), -1)
    return pd.Series(np.where(idx >= 0, g[np.maximum(idx, 0)], np.nan), index=values.index)


def sweep_runs(summary: pd.DataFrame, grid: Sequence[float], momentum: float, weight_decay: float | None = None,
               default_extras_only: bool = True) -> pd.DataFrame:
    """The finished runs of `summary` that belong to an ELR sweep: momentum == `momentum`, ELR on
    `grid`, weight decay == `weight_decay` (any when None), plain SGD with no extra
    hyperparameters. Adds the column `grid_elr` (the matched grid value)."""
    s = summary[summary["complete"]].copy()
    s["grid_elr"] = _on_grid(s["elr"], grid)
    keep = s["grid_elr"].notna() & np.isclose(s["momentum"].astype(float), momentum)
    if weight_decay is not None:
        keep &= np.isclose(s["weight_decay"].astype(float), weight_decay, rtol=1e-6, atol=0.0)
    if default_extras_only:
        keep &= s["extras"].fillna("{}").isin(["{}", ""]) & s["optimizer"].fillna("sgd").eq("sgd")
    return s[keep]


def binomial_se(acc: float, n: float) -> float:
    """Standard error of an accuracy measured on n images (NaN when n is unknown)."""
    if not (n and n > 0 and math.isfinite(n)):
        return float("nan")
    a = min(max(acc, 0.0), 1.0)
    return math.sqrt(max(a * (1.0 - a), 1e-12) / n)


def best_elr(
    sweep: pd.DataFrame,
    grid: Sequence[float],
    metric: str = "best_acc",
    n_val: dict[str, float] | None = None,
    tie_tol: float = 1e-9,
) -> pd.DataFrame:
    """The best ELR per (dataset, model) of a complete sweep over `grid`.

    sweep: rows of `sweep_runs` (columns dataset, model, grid_elr and `metric`); a (dataset, model)
    is used only when every grid value has a run (a missing or NaN accuracy counts as -inf, i.e.
    a diverged run loses).
    n_val: validation images per dataset, for the near-tie count (grid values within one binomial
    standard error of the best accuracy).

    Ties (accuracies within `tie_tol` of the best, common on a few hundred validation images) are
    resolved by the geometric mean of the tied ELRs: `log10_best_elr` is the mean of their
    log10. Columns: dataset, model, best_elr (10 ** log10_best_elr), log10_best_elr,
    log10_best_elr_interp (`parabolic_argmax` in log10 ELR around the smallest tied best: a
    sub-grid estimate with fewer ties, never beyond the grid),
    argmax_elr (the smallest tied ELR), best_acc_at_best (the metric's best value), n_ties (grid
    values tied for the best; 1 = unique), n_near (grid values within one SE, including the best),
    at_low_edge / at_high_edge (a tied best is the smallest / largest grid value), acc_<elr>
    (the metric at every grid value).
    """
    grid = sorted(float(v) for v in grid)
    rows: list[dict[str, Any]] = []
    for (dataset, model), g in sweep.groupby(["dataset", "model"], sort=True):
        by_elr = g.groupby("grid_elr")[metric].max()  # two runs of one config (other seeds): take the best
        if not all(any(math.isclose(e, v, rel_tol=1e-9) for v in by_elr.index) for e in grid):
            continue
        acc = np.array([by_elr.loc[e] for e in grid], dtype=float)
        acc_rank = np.where(np.isfinite(acc), acc, -np.inf)
        top = float(acc_rank.max())
        if not math.isfinite(top):
            continue  # every run diverged: no best ELR
        tied = np.flatnonzero(acc_rank >= top - tie_tol)
        se = binomial_se(top, (n_val or {}).get(dataset, float("nan")))
        near = int((acc_rank >= top - se).sum()) if math.isfinite(se) else -1
        log_grid = np.log10(np.asarray(grid))
        log_best = float(np.mean(log_grid[tied]))
        row = {
            "dataset": dataset, "model": model, "best_elr": 10.0 ** log_best, "log10_best_elr": log_best,
            "log10_best_elr_interp": parabolic_argmax(log_grid, acc_rank, int(tied[0])),
            "argmax_elr": grid[int(tied[0])], "best_acc_at_best": top, "n_ties": int(len(tied)), "n_near": near,
            "at_low_edge": bool(tied[0] == 0), "at_high_edge": bool(tied[-1] == len(grid) - 1),
        }
        row.update({f"acc_{e:.3g}": float(a) for e, a in zip(grid, acc)})
        rows.append(row)
    return pd.DataFrame(rows)


def parabolic_argmax(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray, i: int) -> float:
    """The vertex of the parabola through the points i - 1, i, i + 1 (x: the grid, e.g. log10 ELR;
    y: accuracies; i: an argmax of y), clipped to [x[i - 1], x[i + 1]]: a sub-grid estimate of
    the optimum. x[i] itself at an edge of the grid (no extrapolation beyond the sweep), when a
    neighbour is not finite, or when the three points are not concave."""
    xs = np.asarray(x, dtype=float)
    ys = np.asarray(y, dtype=float)
    if i <= 0 or i >= len(xs) - 1 or not np.all(np.isfinite(ys[i - 1:i + 2])):
        return float(xs[i])
    (x0, x1, x2), (y0, y1, y2) = xs[i - 1:i + 2], ys[i - 1:i + 2]
    denom = (x0 - x1) * (x0 - x2) * (x1 - x2)
    a = (x2 * (y1 - y0) + x1 * (y0 - y2) + x0 * (y2 - y1)) / denom
    b = (x2 ** 2 * (y0 - y1) + x1 ** 2 * (y2 - y0) + x0 ** 2 * (y1 - y2)) / denom
    if not a < 0:
        return float(x1)
    return float(np.clip(-b / (2 * a), x0, x2))


def _weighted_pearson(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Pearson correlation of x and y with each point repeated w times, for B weightings at once.

    x, y: (n,) or (B x n) arrays; w: a (B x n) array of non-negative weights. Returns (B,), NaN
    where x or y has no spread under the weights."""
    tot = w.sum(axis=1, keepdims=True)
    mx = (w * x).sum(axis=1, keepdims=True) / tot
    my = (w * y).sum(axis=1, keepdims=True) / tot
    dx, dy = x - mx, y - my
    cov = (w * dx * dy).sum(axis=1)
    var = (w * dx * dx).sum(axis=1) * (w * dy * dy).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = cov / np.sqrt(var)
    out: np.ndarray = np.where(var > 1e-24, r, np.nan)
    return out


def _weighted_ranks(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The average ranks (1-based) x's points would get in the sample where point j appears
    w[b, j] times, for each weighting b: W_less + (W_equal + 1) / 2.

    x: an (n,) array; w: a (B x n) array of integer counts. Returns a (B x n) array."""
    less = (x[None, :] < x[:, None]).astype(float)  # [i, j]: x_j < x_i
    equal = (x[None, :] == x[:, None]).astype(float)
    ranks: np.ndarray = w @ less.T + (w @ equal.T + 1.0) / 2.0
    return ranks


def correlation(
    x: Sequence[float],
    y: Sequence[float],
    groups: Sequence[Any] | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, float]:
    """Spearman and Pearson correlation of x and y (NaN pairs dropped), their two-sided p-values
    (scipy) and percentile bootstrap CIs that resample `groups` (e.g. tasks) with replacement,
    keeping every point of a drawn group (default: each point its own group).

    x, y: (n,) sequences. Returns n, n_groups, spearman, spearman_p, spearman_lo, spearman_hi,
    pearson, pearson_p, pearson_lo, pearson_hi, slope (least-squares y on x), intercept.
    """
    from scipy import stats

    xa = np.asarray(x, dtype=float)
    ya = np.asarray(y, dtype=float)
    if xa.shape != ya.shape or xa.ndim != 1:
        raise ValueError(f"`x` and `y` must be 1-d of equal length, but got shapes {xa.shape} and {ya.shape}")
    ga = np.asarray(groups if groups is not None else np.arange(len(xa)), dtype=object)
    if ga.shape != xa.shape:
        raise ValueError(f"`groups` must have the length of x ({len(xa)}), but got {ga.shape}")
    ok = np.isfinite(xa) & np.isfinite(ya)
    xa, ya, ga = xa[ok], ya[ok], ga[ok]
    uniq = list(dict.fromkeys(ga.tolist()))
    out: dict[str, float] = {"n": int(len(xa)), "n_groups": len(uniq)}
    nan = float("nan")
    if len(xa) < 3 or np.std(xa) == 0 or np.std(ya) == 0:
        return {**out, **{k: nan for k in ("spearman", "spearman_p", "spearman_lo", "spearman_hi", "pearson",
                                            "pearson_p", "pearson_lo", "pearson_hi", "slope", "intercept")}}
    sp = stats.spearmanr(xa, ya)
    pe = stats.pearsonr(xa, ya)
    slope, intercept = np.polyfit(xa, ya, 1)
    # Resampling groups with replacement = weighting every point by how often its group is drawn.
    group_of = np.array([uniq.index(g) for g in ga.tolist()])
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(len(uniq), np.full(len(uniq), 1.0 / len(uniq)), size=n_boot)  # (B x G)
    w = draws[:, group_of].astype(float)  # (B x n)
    boot_p = _weighted_pearson(xa, ya, w)
    boot_s = _weighted_pearson(_weighted_ranks(xa, w), _weighted_ranks(ya, w), w)
    q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
    s_lo, s_hi = np.nanpercentile(boot_s, q)
    p_lo, p_hi = np.nanpercentile(boot_p, q)
    return {**out, "spearman": float(sp.statistic), "spearman_p": float(sp.pvalue), "spearman_lo": float(s_lo),
            "spearman_hi": float(s_hi), "pearson": float(pe.statistic), "pearson_p": float(pe.pvalue),
            "pearson_lo": float(p_lo), "pearson_hi": float(p_hi), "slope": float(slope),
            "intercept": float(intercept)}


def within_group_zscore(values: Sequence[float], groups: Sequence[Any]) -> np.ndarray:
    """values standardised within each group (mean 0, sd 1; a constant group becomes 0), so
    quantities on different scales per group (emd_sim per source model) can be pooled."""
    s = pd.Series(np.asarray(values, dtype=float))
    g = pd.Series(np.asarray(groups, dtype=object))
    mean = s.groupby(g).transform("mean")
    sd = s.groupby(g).transform("std").replace(0.0, np.nan)
    z: np.ndarray = ((s - mean) / sd).fillna(0.0).to_numpy()
    return z


def residualize(values: Sequence[float], covariate: Sequence[float], groups: Sequence[Any]) -> np.ndarray:
    """values minus their least-squares fit on `covariate` within each group (plus the group's
    mean, so the scale stays readable): what is left of e.g. emd_sim once the number of target
    classes, which the EMD also responds to, is accounted for. NaN where either input is NaN; a
    group with fewer than 3 points or no spread in the covariate is only centred."""
    v = np.asarray(values, dtype=float)
    c = np.asarray(covariate, dtype=float)
    g = np.asarray(groups, dtype=object)
    out = np.full(len(v), np.nan)
    for u in dict.fromkeys(g.tolist()):
        sel = (g == u) & np.isfinite(v) & np.isfinite(c)
        if not sel.any():
            continue
        if sel.sum() >= 3 and np.std(c[sel]) > 0:
            k, b = np.polyfit(c[sel], v[sel], 1)
            out[sel] = v[sel] - (k * c[sel] + b) + v[sel].mean()
        else:
            out[sel] = v[sel]
    return out


def paired_difference(
    a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, n_boot: int = 5000, seed: int = 0,
    level: float = 0.95,
) -> dict[str, float]:
    """Paired comparison of b - a (NaN pairs dropped): mean, median, mean |b - a|, a percentile
    bootstrap CI of the mean, wins/losses/ties (b > a, b < a, equal), a two-sided exact sign test
    on the non-ties and a two-sided Wilcoxon signed-rank test (zero differences dropped)."""
    from scipy import stats

    aa = np.asarray(a, dtype=float)
    bb = np.asarray(b, dtype=float)
    if aa.shape != bb.shape or aa.ndim != 1:
        raise ValueError(f"`a` and `b` must be 1-d of equal length, but got shapes {aa.shape} and {bb.shape}")
    ok = np.isfinite(aa) & np.isfinite(bb)
    d = bb[ok] - aa[ok]
    nan = float("nan")
    n = int(len(d))
    wins, losses = int((d > 0).sum()), int((d < 0).sum())
    out: dict[str, float] = {"n": n, "wins": wins, "losses": losses, "ties": n - wins - losses}
    if n == 0:
        return {**out, **{k: nan for k in ("mean", "median", "mean_abs", "lo", "hi", "sign_p", "wilcoxon_p")}}
    rng = np.random.default_rng(seed)
    boot = d[rng.integers(0, n, (n_boot, n))].mean(axis=1)
    lo, hi = np.percentile(boot, [(1 - level) / 2 * 100, (1 + level) / 2 * 100])
    sign_p = float(stats.binomtest(wins, wins + losses, 0.5).pvalue) if wins + losses else 1.0
    nz = d[d != 0]
    wil_p = float(stats.wilcoxon(nz).pvalue) if len(nz) >= 1 else 1.0
    return {**out, "mean": float(d.mean()), "median": float(np.median(d)), "mean_abs": float(np.abs(d).mean()),
            "lo": float(lo), "hi": float(hi), "sign_p": sign_p, "wilcoxon_p": wil_p}


def momentum_pairs(
    summary: pd.DataFrame,
    levels: Sequence[float],
    high_momentum: float = 0.9,
    weight_decay: float | None = None,
    metric: str = "best_acc",
) -> pd.DataFrame:
    """Momentum 0 vs `high_momentum` on every (dataset, model, level) where the runs exist.

    For each ELR level e of the momentum-0 runs (lr = e), two partners at `high_momentum` m:
    equal ELR (ELR e, lr e (1 - m)) and equal lr (lr e, ELR e / (1 - m)). Columns: dataset,
    model, level (e), acc_m0, acc_equal_elr, acc_equal_lr (NaN where the partner run is missing),
    all of `metric`.
    """
    m = float(high_momentum)
    partner_elrs = sorted({float(e) for e in levels} | {float(e) / (1.0 - m) for e in levels})
    zero = sweep_runs(summary, levels, 0.0, weight_decay)
    high = sweep_runs(summary, partner_elrs, m, weight_decay)
    z = zero.groupby(["dataset", "model", "grid_elr"])[metric].max()
    h = high.groupby(["dataset", "model", "grid_elr"])[metric].max()

    def look(dataset: str, model: str, elr: float) -> float:
        for key in h.index:  # tiny index: a scan with a tolerance beats float look-ups
            if key[0] == dataset and key[1] == model and math.isclose(key[2], elr, rel_tol=1e-3):
                return float(h.loc[key])
        return float("nan")

    rows = []
    for (dataset, model, e), acc0 in z.items():
        rows.append({"dataset": dataset, "model": model, "level": float(e), "acc_m0": float(acc0),
                     "acc_equal_elr": look(dataset, model, e), "acc_equal_lr": look(dataset, model, e / (1.0 - m))})
    out = pd.DataFrame(rows, columns=["dataset", "model", "level", "acc_m0", "acc_equal_elr", "acc_equal_lr"])
    return out.astype({c: float for c in ("level", "acc_m0", "acc_equal_elr", "acc_equal_lr")})
