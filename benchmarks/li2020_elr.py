"""Li et al. (ICLR 2020), "Rethinking the Hyperparameters for Fine-tuning", on the embedded
CPU meta-dataset metadataset/v1 (collected by metadataset/campaign/campaign_v1.py).

Two of their claims, checked on the data that is in the store when this runs (the campaign may
still be filling it: the outputs say how many tasks and models were covered):

1. The best effective learning rate ELR = lr / (1 - momentum) depends on how similar the target
   task is to the source (pretraining) domain: similar domains prefer a smaller ELR (their
   Table 4 / Figure 4, with Cui et al.'s EMD domain similarity). Here: per (task, model) the best
   ELR of the momentum-0.9 sweep (campaign grid, best validation accuracy over the 5 epochs; the
   final-epoch accuracy as a check), against emd_sim (and LogME / LEEP gains) of the model on the
   task: Spearman and Pearson correlation with a bootstrap CI over tasks, per model (the fair
   comparison: emd_sim is not comparable across source class counts, see quicktune.features)
   and pooled (raw, and with x and y standardised within each model).
2. Momentum 0 vs 0.9 matters little at equal ELR but a lot at equal lr: for every (task, model)
   with the runs, the accuracy difference acc(m=0.9) - acc(m=0) at equal ELR (0.01, 0.0316) and
   at equal lr (lr 0.01: m=0.9 at ELR 0.1; lr 0.0316: m=0.9 at ELR 0.316), with a bootstrap CI,
   a sign test and a Wilcoxon signed-rank test, and |difference| at equal lr vs at equal ELR.

Domain features come from the store's feature rows (campaign phase "features"); for pairs
without them they are computed with quicktune.features.domain_features exactly as the campaign
does (same options, same cache: nobody computes one twice), when the task data is at --data.

    /work/venv/bin/python benchmarks/li2020_elr.py [--metadataset metadataset/v1] [--data /work/data]
        [--weights ../shared/weights] [--out benchmarks/results] [--no-compute-features]

Writes into --out: li2020_elr.csv (one row per (task, model): best ELR by both metrics, ties,
edges, features, accuracy at every grid ELR), li2020_momentum.csv (the paired runs),
li2020_summary.json (coverage, correlations, momentum tests, verdicts), li2020_best_elr.md (the
best-ELR table for the README), li2020_elr_vs_similarity.png, li2020_momentum.png and
li2020_elr_curves.png (accuracy against ELR per task, coloured by similarity).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.util
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from quicktune import analysis as qa
from quicktune.metadataset import load_rows

REPO = Path(__file__).resolve().parents[1]
SIMILARITIES = ("emd_sim", "logme_gain", "leep_gain")  # x axes; Li et al. use EMD similarity (Cui et al.)
# Checks, in the tables only: emd_sim with the number of target classes regressed out within each
# model (with uniform weights on the source prototypes the EMD also grows with fewer target
# classes, e.g. a 2-class CIFAR subset looks less like CIFAR-10 than CIFAR-10 itself), and the
# source model's mean top-1 confidence on target images.
CHECKS = ("emd_sim_given_classes", "source_confidence")
METRICS = ("best_acc", "final_acc")  # best ELR by max over epochs (primary) and by the last epoch (check)
# y of the correlations: log10 best grid ELR by either metric, and the sub-grid (parabolic) estimate.
Y_VARIANTS = {"best_acc": "log10_best_elr_best_acc", "final_acc": "log10_best_elr_final_acc",
              "best_acc_interp": "log10_best_elr_interp_best_acc"}
MIN_N_FOR_CI = 8  # a percentile bootstrap over fewer tasks says nothing: no verdict from it
HIGH_MOMENTUM = 0.9


def load_campaign() -> Any:
    """metadataset/campaign/campaign_v1.py as a module: its TASKS, MODELS, ELR grid and phases
    define what this analysis expects to find."""
    path = REPO / "metadataset" / "campaign" / "campaign_v1.py"
    spec = importlib.util.spec_from_file_location("campaign_v1", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


# ---------------------------------------------------------------------------------------------
# Task metadata and domain features
# ---------------------------------------------------------------------------------------------
def task_info(camp: Any, data_root: Path, weights: Path, want_features: set[tuple[str, str]],
              compute: bool) -> tuple[dict[str, dict[str, float]], dict[tuple[str, str], dict[str, float]]]:
    """Per task: n_val (validation images) and chance (1 / classes), read from the task data;
    per (task, model) in `want_features`: domain features computed (or read from the shared
    cache) exactly as campaign_v1.domain_features does. Empty where the data is not there."""
    from quicktune.collect import training_size
    from quicktune.data import TaskSpec, load_task
    from quicktune.hub import model_info

    info: dict[str, dict[str, float]] = {}
    feats: dict[tuple[str, str], dict[str, float]] = {}
    if not data_root.is_dir():
        print(f"note: no task data at {data_root}: validation sizes unknown, no features computed", file=sys.stderr)
        return info, feats
    for text in camp.task_specs(data_root):
        spec = TaskSpec.parse(text)
        try:
            for i, model in enumerate(camp.MODELS):
                if i > 0 and not (compute and (spec.task_name, model) in want_features):
                    continue
                # The resolution the model trains (and the campaign computes its features) at.
                size = spec.size or training_size(model_info(model, str(weights)).input_size, camp.MAX_IMAGE_SIZE)
                data = load_task(spec, size)
                info[spec.task_name] = {"n_val": float(len(data.val)), "chance": 1.0 / data.n_classes}
                if compute and (spec.task_name, model) in want_features:
                    from quicktune.features import domain_features

                    feats[(spec.task_name, model)] = domain_features(
                        model, data, weights_dir=str(weights), n_samples=500, seed=0, image_size=size)
        except Exception as e:  # a missing folder should not stop the analysis of the others
            print(f"note: {spec.task_name}: {type(e).__name__}: {e}", file=sys.stderr)
    return info, feats


def pair_features(features: pd.DataFrame) -> dict[tuple[str, str], dict[str, float]]:
    f = features[features["model"] != ""] if len(features) else features
    out: dict[tuple[str, str], dict[str, float]] = {}
    for r in f.itertuples(index=False):
        out.setdefault((str(r.dataset), str(r.model)), {})[str(r.name)] = float(r.value)
    return out


# ---------------------------------------------------------------------------------------------
# Analyses
# ---------------------------------------------------------------------------------------------
def correlations(table: pd.DataFrame, models: list[str], n_boot: int) -> list[dict[str, Any]]:
    """log10(best ELR) against each similarity, per model, pooled (raw values: mixes the
    models' different similarity scales and ELR preferences) and pooled within-model (x and y
    z-scored within each model, models with a constant best ELR left out)."""
    rows = []
    for metric, y_col in Y_VARIANTS.items():
        for sim in (*SIMILARITIES, *CHECKS):
            if sim not in table:
                continue
            scopes: list[tuple[str, pd.DataFrame, bool]] = [(m, table[table["model"] == m], False) for m in models]
            scopes += [("pooled", table, False), ("pooled_within_model", table, True)]
            for scope, t, standardise in scopes:
                t = t[np.isfinite(t[sim]) & np.isfinite(t[y_col])]
                excluded: list[str] = []
                if standardise:
                    # A model whose best ELR is the same on every task (e.g. always the grid's top
                    # edge) says nothing about the relation; its points would only dilute rho.
                    flat = t.groupby("model")[y_col].nunique() <= 1
                    excluded = sorted(flat[flat].index)
                    t = t[~t["model"].isin(excluded)]
                x, y = t[sim].to_numpy(float), t[y_col].to_numpy(float)
                if standardise:  # compare tasks within each model only
                    x = qa.within_group_zscore(x, t["model"])
                    y = qa.within_group_zscore(y, t["model"])
                c = qa.correlation(x, y, groups=t["dataset"].to_numpy(), n_boot=n_boot, seed=0)
                rows.append({"metric": metric, "similarity": sim, "scope": scope, **c,
                             "excluded_models": ",".join(excluded)})
    return rows


def momentum_tests(pairs: pd.DataFrame) -> list[dict[str, Any]]:
    rows = []
    for level, p in [("all", pairs), *((f"{lv:.3g}", g) for lv, g in pairs.groupby("level"))]:
        eq_elr = qa.paired_difference(p["acc_m0"], p["acc_equal_elr"])
        eq_lr = qa.paired_difference(p["acc_m0"], p["acc_equal_lr"])
        both = p[np.isfinite(p["acc_equal_elr"]) & np.isfinite(p["acc_equal_lr"])]
        # Li et al.: |m=0.9 - m=0| is larger at equal lr than at equal ELR. b - a = |eq lr| - |eq ELR|.
        gap = qa.paired_difference((both["acc_equal_elr"] - both["acc_m0"]).abs(),
                                   (both["acc_equal_lr"] - both["acc_m0"]).abs())
        rows += [{"level": level, "comparison": "equal_elr", **eq_elr},
                 {"level": level, "comparison": "equal_lr", **eq_lr},
                 {"level": level, "comparison": "abs_gap_equal_lr_minus_equal_elr", **gap}]
    return rows


# ---------------------------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------------------------
MODEL_COLOURS = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown"]


def short(model: str) -> str:
    return model.replace(".coral_", " ").replace("_100", "").replace(".cifar10", " cifar10")


SIM_LABELS = {"emd_sim": "EMD domain similarity (Cui et al.)", "logme_gain": "LogME gain over the label prior",
              "leep_gain": "LEEP gain over the label prior"}


def _scatter_best(ax: Any, x: np.ndarray, t: pd.DataFrame, colour: str, label: str | None, rng: Any) -> None:
    """Best ELR points: circle inside the grid, triangle up / down at the high / low edge (the
    optimum may lie beyond), hollow when several grid ELRs tie for the best. Vertical jitter of
    +-0.04 decades, since the best ELR takes few values."""
    y = 10 ** (t["log10_best_elr_best_acc"].to_numpy() + rng.uniform(-0.04, 0.04, len(t)))
    tied = t["n_ties_best_acc"].to_numpy() > 1
    shape = np.where(t["at_high_edge_best_acc"].to_numpy(), "^", np.where(t["at_low_edge_best_acc"].to_numpy(), "v", "o"))
    first = True
    for mk in ("o", "^", "v"):
        for hollow in (False, True):
            sel = (shape == mk) & (tied == hollow)
            if not sel.any():
                continue
            ax.scatter(x[sel], y[sel], marker=mk, s=30, facecolors="none" if hollow else colour, edgecolors=colour,
                       label=label if first else None)
            first = False


def _set_elr_axis(ax: Any, grid: list[float]) -> None:
    ax.set_yscale("log")
    ax.set_yticks(grid)
    ax.set_yticklabels([f"{g:.3g}" for g in grid])
    ax.minorticks_off()
    ax.set_ylim(min(grid) / 1.6, max(grid) * 1.6)
    ax.grid(alpha=0.3)


def _corr_text(corr: pd.DataFrame, sim: str, scope: str) -> str:
    c = corr[(corr["metric"] == "best_acc") & (corr["similarity"] == sim) & (corr["scope"] == scope)]
    if c.empty or not np.isfinite(c["spearman"].iloc[0]):
        n = int(c["n"].iloc[0]) if len(c) else 0
        return f"n={n}, rho undefined"
    r = c.iloc[0]
    return f"n={int(r['n'])}, rho={r['spearman']:+.2f} [{r['spearman_lo']:+.2f}, {r['spearman_hi']:+.2f}]"


def plot_elr_vs_similarity(table: pd.DataFrame, corr: pd.DataFrame, models: list[str], grid: list[float],
                           path: Path, coverage: str) -> None:
    """Top row: one panel per model, best ELR against emd_sim on that model's own scale (the fair
    comparison, as in Li et al. Fig. 4 for one source). Bottom row: all models pooled, each
    similarity standardised within its model (z-score), one least-squares trend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ncol = max(len(models), len(SIMILARITIES))
    fig, axes = plt.subplots(2, ncol, figsize=(4.3 * ncol, 8.4), squeeze=False)
    rng = np.random.default_rng(0)
    colour = {m: MODEL_COLOURS[i % len(MODEL_COLOURS)] for i, m in enumerate(models)}
    for ax, m in zip(axes[0], models):
        t = table[(table["model"] == m) & np.isfinite(table["emd_sim"]) & np.isfinite(table["log10_best_elr_best_acc"])]
        if len(t):
            x = t["emd_sim"].to_numpy()
            _scatter_best(ax, x, t, colour[m], None, rng)
            if len(t) >= 3 and np.std(x) > 0:
                k, b = np.polyfit(x, t["log10_best_elr_best_acc"].to_numpy(), 1)
                xs = np.linspace(x.min(), x.max(), 20)
                ax.plot(xs, 10 ** (k * xs + b), color=colour[m], lw=1.2)
        _set_elr_axis(ax, grid)
        ax.set_title(f"{short(m)}\nemd_sim: {_corr_text(corr, 'emd_sim', m)}", fontsize=9)
        ax.set_xlabel(SIM_LABELS["emd_sim"], fontsize=8)
        ax.set_ylabel("best ELR = lr / (1 - m), m = 0.9", fontsize=8)
    for ax in axes[0][len(models):]:
        ax.axis("off")
    for ax, sim in zip(axes[1], SIMILARITIES):
        t = table[np.isfinite(table[sim]) & np.isfinite(table["log10_best_elr_best_acc"])] if sim in table \
            else table.iloc[:0]
        c = corr[(corr["metric"] == "best_acc") & (corr["similarity"] == sim) & (corr["scope"] == "pooled_within_model")]
        excluded = [e for e in (c["excluded_models"].iloc[0].split(",") if len(c) else []) if e]
        t = t[~t["model"].isin(excluded)]
        if len(t):
            z = qa.within_group_zscore(t[sim].to_numpy(), t["model"].to_numpy())
            for m in models:
                sel = (t["model"] == m).to_numpy()
                if sel.any():
                    _scatter_best(ax, z[sel], t[sel], colour[m], short(m), rng)
            y = t["log10_best_elr_best_acc"].to_numpy()
            if len(t) >= 3 and np.std(z) > 0:
                # Trend of the within-model standardised y on x, drawn around the pooled mean of y.
                zy = qa.within_group_zscore(y, t["model"].to_numpy())
                k, _ = np.polyfit(z, zy, 1)
                xs = np.linspace(z.min(), z.max(), 20)
                ax.plot(xs, 10 ** (np.mean(y) + k * np.std(y) * xs), color="k", lw=1.2, ls="--",
                        label="pooled within-model trend")
        _set_elr_axis(ax, grid)
        left_out = f" (not {', '.join(short(e) for e in excluded)}: constant)" if excluded else ""
        ax.set_title(f"all models{left_out}, {sim} z-scored within model\n"
                     f"{_corr_text(corr, sim, 'pooled_within_model')}", fontsize=9)
        ax.set_xlabel(f"{SIM_LABELS.get(sim, sim)}, z-score within model", fontsize=8)
        ax.set_ylabel("best ELR, m = 0.9", fontsize=8)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6, loc="lower left")
    for ax in axes[1][len(SIMILARITIES):]:
        ax.axis("off")
        ax.text(0.0, 0.5, "markers: o inside the grid, ^ / v best at the\nhigh / low edge (optimum may lie beyond),\n"
                "hollow: several grid ELRs tie for the best.\nBest = max validation accuracy over 5 epochs.\n"
                "Li et al.: more similar -> smaller best ELR\n(a negative rho).", fontsize=8, va="center")
    fig.suptitle(f"Best ELR vs domain similarity (after Li et al. 2020, Fig. 4). {coverage}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_sweep_curves(table: pd.DataFrame, models: list[str], grid: list[float], path: Path, coverage: str) -> None:
    """Per model: accuracy against ELR for every task (relative to the task's best of the sweep),
    coloured by the task's emd_sim rank within the model: if similar tasks prefer smaller ELRs,
    the yellow (similar) curves peak left of the purple (dissimilar) ones."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = [f"acc_{g:.3g}_best_acc" for g in grid]
    fig, axes = plt.subplots(1, len(models), figsize=(4.3 * len(models), 4.0), squeeze=False)
    cmap = plt.get_cmap("viridis")
    for ax, m in zip(axes[0], models):
        t = table[table["model"] == m]
        rank = t["emd_sim"].rank(pct=True).to_numpy() if np.isfinite(t["emd_sim"]).any() else np.full(len(t), 0.5)
        for (_, r), q in zip(t.iterrows(), rank):
            acc = r[cols].to_numpy(dtype=float)
            ax.plot(grid, acc / np.nanmax(acc), color=cmap(q if np.isfinite(q) else 0.5), lw=1, alpha=0.8,
                    marker=".")
        ax.set_xscale("log")
        ax.set_xticks(grid)
        ax.set_xticklabels([f"{g:.3g}" for g in grid], fontsize=7)
        ax.minorticks_off()
        ax.set_ylim(0, 1.05)
        ax.set_title(f"{short(m)} ({len(t)} tasks)", fontsize=9)
        ax.set_xlabel("ELR (momentum 0.9)", fontsize=8)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("best val. accuracy / task's best", fontsize=8)
    sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(0, 1))
    fig.colorbar(sm, ax=axes[0].tolist(), label="emd_sim rank within model (1 = most similar)", shrink=0.8)
    fig.suptitle(f"ELR sweeps per task and model. {coverage}", fontsize=9)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def plot_momentum(pairs: pd.DataFrame, tests: pd.DataFrame, models: list[str], path: Path, coverage: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8))
    markers = {lv: mk for lv, mk in zip(sorted(pairs["level"].unique()), ["o", "s", "^", "D"])}
    for ax, comp, col_name, label in [
        (axes[0], "equal_elr", "acc_equal_elr", "equal ELR (m=0.9 at lr = ELR x 0.1)"),
        (axes[1], "equal_lr", "acc_equal_lr", "equal lr (m=0.9 at ELR = 10 x lr)"),
    ]:
        for i, m in enumerate(models):
            for lv, mk in markers.items():
                p = pairs[(pairs["model"] == m) & (pairs["level"] == lv)]
                if p.empty:
                    continue
                ax.scatter(p["acc_m0"], p[col_name], s=24, marker=mk, color=MODEL_COLOURS[i % len(MODEL_COLOURS)],
                           label=f"{short(m)}, m=0 at ELR {lv:.3g}")
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_aspect("equal")
        t = tests[(tests["level"] == "all") & (tests["comparison"] == comp)]
        if len(t) and t["n"].iloc[0] > 0:
            r = t.iloc[0]
            ax.set_title(f"{label}\nmean(m0.9 - m0) = {r['mean']:+.3f} [{r['lo']:+.3f}, {r['hi']:+.3f}], "
                         f"mean|d| = {r['mean_abs']:.3f}\nwins/losses/ties {int(r['wins'])}/{int(r['losses'])}/"
                         f"{int(r['ties'])}, sign p = {r['sign_p']:.2g}, Wilcoxon p = {r['wilcoxon_p']:.2g}",
                         fontsize=8)
        else:
            ax.set_title(f"{label}\n(no pairs yet)", fontsize=8)
        ax.set_xlabel("validation accuracy, momentum 0")
        ax.set_ylabel("validation accuracy, momentum 0.9")
        ax.grid(alpha=0.3)
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(fontsize=6, loc="upper left")
    d_elr = (pairs["acc_equal_elr"] - pairs["acc_m0"]).dropna()
    d_lr = (pairs["acc_equal_lr"] - pairs["acc_m0"]).dropna()
    lo = min([-0.1, *d_elr.tolist(), *d_lr.tolist()])
    hi = max([0.1, *d_elr.tolist(), *d_lr.tolist()])
    bins = np.linspace(lo, hi, 31)
    axes[2].hist(d_elr, bins=bins, alpha=0.6, label=f"equal ELR (n={len(d_elr)})")
    axes[2].hist(d_lr, bins=bins, alpha=0.6, label=f"equal lr (n={len(d_lr)})")
    axes[2].axvline(0, color="k", lw=0.8)
    axes[2].set_xlabel("accuracy(m=0.9) - accuracy(m=0)")
    axes[2].set_ylabel("(task, model, level) pairs")
    axes[2].legend(fontsize=8)
    axes[2].set_title("paired differences (best validation accuracy over 5 epochs)", fontsize=8)
    fig.suptitle(f"Momentum 0 vs 0.9 at equal ELR and at equal lr (after Li et al. 2020)\n{coverage}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# Tables and verdicts
# ---------------------------------------------------------------------------------------------
# Models whose pretraining data is itself one of the task families (by definition of the source):
# their tasks from that family are "in domain", every other task is not.
SOURCE_FAMILY = {"resnet20.cifar10": "cifar10-small"}


def source_family_test(table: pd.DataFrame) -> dict[str, Any]:
    """Best ELR on the model's own source family vs on every other task (a coarser but sharper
    similarity than emd_sim): medians and a one-sided Mann-Whitney U test (Li et al.: in-domain
    tasks prefer a smaller ELR)."""
    from scipy.stats import mannwhitneyu

    out: dict[str, Any] = {}
    for model, family in SOURCE_FAMILY.items():
        t = table[table["model"] == model]
        if t.empty:
            continue
        inside = t["dataset"].str.startswith(family + "/") | (t["dataset"] == family)
        a = np.asarray(t.loc[inside, "log10_best_elr_best_acc"], dtype=float)
        b = np.asarray(t.loc[~inside, "log10_best_elr_best_acc"], dtype=float)
        if len(a) == 0 or len(b) == 0:
            continue
        u = mannwhitneyu(a, b, alternative="less")
        out[model] = {
            "family": family, "n_in": int(len(a)), "n_out": int(len(b)),
            "median_best_elr_in": float(10 ** np.median(a)), "median_best_elr_out": float(10 ** np.median(b)),
            "share_out_larger_than_max_in": float(np.mean(b > a.max())),
            "mannwhitney_u": float(u.statistic), "p_one_sided": float(u.pvalue),
            "direction_as_li": bool(np.median(a) < np.median(b)),
        }
    return out


def best_elr_markdown(table: pd.DataFrame, models: list[str], grid: list[float]) -> str:
    """Task x model table of the best ELR (max validation accuracy over epochs) with emd_sim."""
    lines = [
        "Best ELR of the momentum-0.9 sweep per task and model (best validation accuracy over 5 epochs; "
        f"grid {', '.join(f'{g:.3g}' for g in grid)}; models without runs at the largest values use the grid up to "
        f"{table['grid_max_best_acc'].min():.3g}, see grid_max in li2020_elr.csv). `=` tied best (geometric mean of the tied ELRs shown), "
        "`<=` / `>=` best at the low / high edge of the grid; in brackets emd_sim of the model on the task.",
        "",
        "| task | " + " | ".join(short(m) for m in models) + " |",
        "|---|" + "---|" * len(models),
    ]
    for task in sorted(table["dataset"].unique()):
        cells = []
        for m in models:
            r = table[(table["dataset"] == task) & (table["model"] == m)]
            if r.empty:
                cells.append("")
                continue
            r = r.iloc[0]
            mark = "<=" if r["at_low_edge_best_acc"] else (">=" if r["at_high_edge_best_acc"] else "")
            mark += "=" if r["n_ties_best_acc"] > 1 else ""
            sim = f" ({r['emd_sim']:.2f})" if "emd_sim" in r and np.isfinite(r["emd_sim"]) else ""
            cells.append(f"{mark}{r['best_elr_best_acc']:.3g}{sim}")
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def verdicts(corr: pd.DataFrame, tests: pd.DataFrame, models: list[str], metric: str) -> dict[str, Any]:
    """Does the data agree with Li et al.? Read off the computed statistics (nothing assumed)."""
    out: dict[str, Any] = {}
    c = corr[(corr["metric"] == metric) & (corr["similarity"] == "emd_sim")]
    per_model = {}
    for m in models:
        r = c[c["scope"] == m]
        if len(r) and np.isfinite(r["spearman"].iloc[0]):
            r = r.iloc[0]
            enough = r["n_groups"] >= MIN_N_FOR_CI
            per_model[m] = {
                "spearman": r["spearman"], "ci": [r["spearman_lo"], r["spearman_hi"]], "n": int(r["n"]),
                "p": r["spearman_p"], "direction_as_li": bool(r["spearman"] < 0),
                "ci_excludes_zero": bool(r["spearman_hi"] < 0 or r["spearman_lo"] > 0) if enough else None,
            }
    out["elr_vs_emd_sim_per_model"] = per_model
    r = c[c["scope"] == "pooled_within_model"]
    if len(r) and np.isfinite(r["spearman"].iloc[0]):
        r = r.iloc[0]
        out["elr_vs_emd_sim_within_model_pooled"] = {
            "spearman": r["spearman"], "ci": [r["spearman_lo"], r["spearman_hi"]], "n": int(r["n"]),
            "n_tasks": int(r["n_groups"]), "p": r["spearman_p"], "excluded_models": r["excluded_models"],
            # Reproduced: negative with the bootstrap CI below zero; contradicted: CI above zero.
            "reproduces_li": bool(r["spearman_hi"] < 0) if r["n_groups"] >= MIN_N_FOR_CI else None,
            "contradicts_li": bool(r["spearman_lo"] > 0) if r["n_groups"] >= MIN_N_FOR_CI else None,
        }
    t = tests[tests["level"] == "all"].set_index("comparison")
    if {"equal_elr", "equal_lr", "abs_gap_equal_lr_minus_equal_elr"} <= set(t.index) and t.loc["equal_elr", "n"] > 0:
        out["momentum"] = {
            "equal_elr_mean_diff": t.loc["equal_elr", "mean"],
            "equal_elr_ci": [t.loc["equal_elr", "lo"], t.loc["equal_elr", "hi"]],
            "equal_elr_mean_abs_diff": t.loc["equal_elr", "mean_abs"],
            "equal_lr_mean_diff": t.loc["equal_lr", "mean"],
            "equal_lr_ci": [t.loc["equal_lr", "lo"], t.loc["equal_lr", "hi"]],
            "equal_lr_mean_abs_diff": t.loc["equal_lr", "mean_abs"],
            "abs_gap_mean": t.loc["abs_gap_equal_lr_minus_equal_elr", "mean"],
            "abs_gap_ci": [t.loc["abs_gap_equal_lr_minus_equal_elr", "lo"],
                           t.loc["abs_gap_equal_lr_minus_equal_elr", "hi"]],
            "abs_gap_wilcoxon_p": t.loc["abs_gap_equal_lr_minus_equal_elr", "wilcoxon_p"],
            # Li et al.: the momentum effect at equal lr is larger than at equal ELR.
            "reproduces_li": bool(t.loc["abs_gap_equal_lr_minus_equal_elr", "lo"] > 0)
            if t.loc["abs_gap_equal_lr_minus_equal_elr", "n"] >= MIN_N_FOR_CI else None,
        }
    return out


def _clean(o: Any) -> Any:
    """JSON-safe: numpy scalars to Python, NaN to None."""
    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating, float)):
        return None if not math.isfinite(float(o)) else float(o)
    if isinstance(o, np.bool_):
        return bool(o)
    return o


# ---------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--metadataset", type=Path, default=REPO / "metadataset" / "v1")
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("QUICKTUNE_DATA", "/work/data")))
    ap.add_argument("--weights", type=Path, default=REPO.parent / "shared" / "weights")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    ap.add_argument("--no-compute-features", action="store_true",
                    help="use only the store's feature rows (and never run a model)")
    ap.add_argument("--n-boot", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    camp = load_campaign()
    base_grid = sorted(float(e) for e in camp.ELR_SWEEP)
    # The sweep extended upwards (phase elr-sweep-high) for the models that were best at its top
    # edge: those (task, model) pairs are analysed over the extended grid, the others over the base grid.
    high = sorted(float(c["elr"]) for c in camp.PHASES.get("elr-sweep-high", ([], []))[0])
    grid = sorted(set(base_grid) | set(high))
    levels = sorted({float(c["elr"]) for name, (cfgs, _) in camp.PHASES.items() for c in cfgs
                     if float(c["momentum"]) == 0.0})
    models = list(camp.MODELS)

    runs, features = load_rows(args.metadataset)
    store_feats = pair_features(features)
    all_pairs = set(zip(runs["dataset"], runs["model"]))
    missing = {p for p in all_pairs if "emd_sim" not in store_feats.get(p, {})}
    info, computed = task_info(camp, args.data, args.weights, missing, not args.no_compute_features)
    feats = {**computed, **store_feats}  # the store's rows win
    n_classes = {str(r.dataset): float(r.value) for r in features.itertuples(index=False)
                 if r.model == "" and r.name == "n_classes"} if len(features) else {}
    chance = {d: 1.0 / n for d, n in n_classes.items() if n > 0}
    chance.update({d: v["chance"] for d, v in info.items()})
    n_val = {d: v["n_val"] for d, v in info.items()}

    summary = qa.run_summary(runs, chance)
    sweep = qa.sweep_runs(summary, grid, HIGH_MOMENTUM, camp.WEIGHT_DECAY)
    base_sweep = sweep[sweep["grid_elr"].isin(base_grid)]
    per_metric = []
    for metric in METRICS:
        ext = qa.best_elr(sweep, grid, metric, n_val)  # pairs with the extended sweep complete
        done = set(zip(ext["dataset"], ext["model"])) if len(ext) else set()
        base = qa.best_elr(base_sweep, base_grid, metric, n_val)
        if len(base):
            base = base[[(d, m) not in done for d, m in zip(base["dataset"], base["model"])]]
        b = pd.concat([x for x in (ext, base) if len(x)], ignore_index=True)
        b["grid_max"] = [max(grid) if (d, m) in done else max(base_grid) for d, m in zip(b["dataset"], b["model"])]
        per_metric.append(b.set_index(["dataset", "model"]).add_suffix(f"_{metric}"))
    if per_metric[0].empty:
        print("no (task, model) has a complete momentum-0.9 ELR sweep yet: nothing to analyse", file=sys.stderr)
        return 1
    table = per_metric[0].join(per_metric[1], how="left").reset_index()
    # Accuracy at every grid ELR appears twice (per metric) with the metric in the name; keep both.
    for name in ("emd_sim", "emd_distance", "logme", "leep", "source_confidence", "logme_gain", "leep_gain"):
        table[name] = [feats.get((d, m), {}).get(name, np.nan) for d, m in zip(table["dataset"], table["model"])]
    table["n_val"] = table["dataset"].map(n_val)
    table["n_classes"] = table["dataset"].map({**n_classes, **{d: 1.0 / v["chance"] for d, v in info.items()}})
    table["emd_sim_given_classes"] = qa.residualize(table["emd_sim"], np.log(table["n_classes"]), table["model"])
    table["agree_best_vs_final"] = np.isclose(table["log10_best_elr_best_acc"], table["log10_best_elr_final_acc"])
    models_present = [m for m in models if m in set(table["model"])] + sorted(set(table["model"]) - set(models))

    corr = pd.DataFrame(correlations(table, models_present, args.n_boot))
    pairs = qa.momentum_pairs(summary, levels, HIGH_MOMENTUM, camp.WEIGHT_DECAY, "best_acc")
    pairs_final = qa.momentum_pairs(summary, levels, HIGH_MOMENTUM, camp.WEIGHT_DECAY, "final_acc")
    tests = pd.DataFrame(momentum_tests(pairs))
    tests_final = pd.DataFrame(momentum_tests(pairs_final))

    # Coverage: what the store held at this moment.
    sweep_pairs = summary[np.isclose(summary["momentum"].astype(float), HIGH_MOMENTUM)]
    coverage = {
        "generated_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "store": str(args.metadataset),
        "store_rows": int(len(runs)), "store_runs": int(runs["run_key"].nunique()),
        "runs_complete": int(summary["complete"].sum()), "runs_diverged": int((summary["status"] == "diverged").sum()),
        "campaign_tasks": len(camp.TASKS), "campaign_models": len(models),
        "sweep_pairs_complete": int(len(table)),
        "sweep_pairs_expected": len(camp.TASKS) * len(models),
        "sweep_pairs_started": int(sweep_pairs.groupby(["dataset", "model"]).ngroups),
        "tasks_with_complete_sweep": int(table["dataset"].nunique()),
        "models_with_complete_sweep": {m: int((table["model"] == m).sum()) for m in models_present},
        "pairs_with_emd_sim": int(np.isfinite(table["emd_sim"]).sum()),
        "pairs_emd_sim_from_store": int(sum("emd_sim" in store_feats.get((d, m), {})
                                            for d, m in zip(table["dataset"], table["model"]))),
        "momentum_pairs_equal_elr": int(np.isfinite(pairs["acc_equal_elr"]).sum()) if len(pairs) else 0,
        "momentum_pairs_equal_lr": int(np.isfinite(pairs["acc_equal_lr"]).sum()) if len(pairs) else 0,
        "momentum_models": sorted(pairs["model"].unique().tolist()) if len(pairs) else [],
    }
    cov_text = (f"{coverage['sweep_pairs_complete']}/{coverage['sweep_pairs_expected']} (task, model) sweeps "
                f"complete ({coverage['tasks_with_complete_sweep']} tasks, {len(models_present)} models); "
                f"store read {coverage['generated_at']}")

    edges = {metric: {
        "at_low_edge": int(table[f"at_low_edge_{metric}"].sum()),
        "at_high_edge": int(table[f"at_high_edge_{metric}"].sum()),
        "tied": int((table[f"n_ties_{metric}"] > 1).sum()),
        "mean_near_ties_within_1se": float(table.loc[table[f"n_near_{metric}"] > 0, f"n_near_{metric}"].mean())
        if (table[f"n_near_{metric}"] > 0).any() else float("nan"),
        "best_elr_counts": {f"{g:.3g}": int(np.isclose(table[f"argmax_elr_{metric}"], g).sum()) for g in grid},
        "per_model_at_edge": {m: {"low": int(table.loc[table["model"] == m, f"at_low_edge_{metric}"].sum()),
                                  "high": int(table.loc[table["model"] == m, f"at_high_edge_{metric}"].sum()),
                                  "n": int((table["model"] == m).sum())} for m in models_present},
        "per_model_median_best_elr": {m: float(10 ** table.loc[table["model"] == m, f"log10_best_elr_{metric}"].median())
                                      for m in models_present},
    } for metric in METRICS}
    edges["agreement_best_vs_final"] = float(table["agree_best_vs_final"].mean())
    edges["spearman_best_vs_final_log10_elr"] = float(
        pd.Series(table["log10_best_elr_best_acc"]).corr(pd.Series(table["log10_best_elr_final_acc"]), method="spearman"))

    args.out.mkdir(parents=True, exist_ok=True)
    table.sort_values(["model", "dataset"]).to_csv(args.out / "li2020_elr.csv", index=False, float_format="%.6g")
    pairs.merge(pairs_final, on=["dataset", "model", "level"], suffixes=("", "_final"), how="outer") \
        .to_csv(args.out / "li2020_momentum.csv", index=False, float_format="%.6g")
    (args.out / "li2020_best_elr.md").write_text(best_elr_markdown(table, models_present, grid))
    summary_json = {
        "description": "Li et al. 2020 reproduction on metadataset/v1 (benchmarks/li2020_elr.py)",
        "coverage": coverage, "grid": grid, "momentum_levels": levels, "weight_decay": camp.WEIGHT_DECAY,
        "epochs": camp.EPOCHS, "best_elr": edges, "correlations": corr.to_dict("records"),
        "momentum_tests_best_acc": tests.to_dict("records"), "momentum_tests_final_acc": tests_final.to_dict("records"),
        "verdicts_best_acc": verdicts(corr, tests, models_present, "best_acc"),
        "verdicts_final_acc": verdicts(corr, tests_final, models_present, "final_acc"),
        "verdicts_best_acc_interp": verdicts(corr, tests, models_present, "best_acc_interp"),
        "source_family_vs_other": source_family_test(table),
    }
    (args.out / "li2020_summary.json").write_text(json.dumps(_clean(summary_json), indent=1))
    plot_elr_vs_similarity(table, corr, models_present, grid, args.out / "li2020_elr_vs_similarity.png", cov_text)
    plot_momentum(pairs, tests, models_present, args.out / "li2020_momentum.png", cov_text)
    plot_sweep_curves(table, models_present, grid, args.out / "li2020_elr_curves.png", cov_text)

    # Console report.
    print(cov_text)
    print(f"best-ELR sweeps: {edges['best_acc']}")
    print(f"best ELR by max-over-epochs vs by final epoch: same in {edges['agreement_best_vs_final']:.0%}")
    show = corr[["metric", "similarity", "scope", "n", "spearman", "spearman_lo", "spearman_hi",
                                                "spearman_p", "pearson", "pearson_p"]]
    with pd.option_context("display.width", 200, "display.max_rows", 200, "display.float_format", "{:+.3f}".format):
        print(show.to_string(index=False))
        print(tests[["level", "comparison", "n", "mean", "lo", "hi", "mean_abs", "wins", "losses", "ties", "sign_p",
                     "wilcoxon_p"]].to_string(index=False))
    print(json.dumps(_clean(summary_json["verdicts_best_acc"]), indent=1))
    print("source family vs other:", json.dumps(_clean(summary_json["source_family_vs_other"]), indent=1))
    print(f"wrote {args.out}/li2020_{{elr.csv,momentum.csv,summary.json,best_elr.md,elr_vs_similarity.png,momentum.png,elr_curves.png}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
