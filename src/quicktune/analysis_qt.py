"""Fine-tuning findings tested on the published Quick-Tune meta-dataset (pure functions on rows).

The Quick-Tune meta-dataset (Arango et al. 2024) holds random configurations: optimizer, schedule,
warm-up, freezing, sp_reg (L2-SP) and more are all drawn at random per run. There are therefore
no matched pairs of runs; every comparison here is made *within a dataset* between two groups of
runs (e.g. AdamW runs vs SGD runs of the transformer models on that dataset), summarised per
group by a cell statistic, and the per-dataset differences are then averaged with a CI over
datasets (a t interval from scipy, a bootstrap CI, and a Wilcoxon signed-rank test):

* `run_table`: one row per run from long-format rows (metadataset RUN_SCHEMA, e.g. from
  `quicktune.metadataset.importers.read_quicktune`): config columns, the extras spread into
  columns, the architecture family, final / best / epoch-1 accuracy in % points, completeness;
* `cell_value`: the cell statistic: `mean` (the average over the random rest of the config: how
  good the option is on this search space), or `best<k>` (the expected best of k runs drawn
  without replacement, an unbiased order-statistics estimator: how good it is once tuned a little);
  `per_dataset(..., stat="model-fe")` compares the groups within each model instead
  (`within_gap`, model fixed effects), removing the noise of which models each group drew;
* `group_contrast`: per dataset, stat(group a) - stat(group b), then `summarize` over datasets;
* `difference_of_contrasts`: per dataset, (a - b within subset 1) - (a - b within subset 2);
* `verdict`: "supported" / "contradicted" / "not supported (CI includes 0)" for a signed claim.

Nothing here reads files or imports torch.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from quicktune.analysis import correlation, paired_difference

# timm architecture name prefixes -> family. Hybrids (convolutions and attention) are their own
# family, never counted as either side of the transformer-vs-convolutional contrast.
_FAMILIES: tuple[tuple[str, str], ...] = (
    ("mobilevit", "hybrid"), ("edgenext", "hybrid"), ("levit", "hybrid"), ("coat", "hybrid"),
    ("efficientformer", "hybrid"), ("fastvit", "hybrid"), ("maxvit", "hybrid"), ("coatnet", "hybrid"),
    ("vit", "transformer"), ("deit", "transformer"), ("beit", "transformer"), ("swin", "transformer"),
    ("volo", "transformer"), ("xcit", "transformer"), ("cait", "transformer"), ("eva", "transformer"),
    ("pit", "transformer"), ("twins", "transformer"), ("crossvit", "transformer"), ("tnt", "transformer"),
    ("convnext", "convolutional"), ("resnet", "convolutional"), ("resnext", "convolutional"),
    ("efficientnet", "convolutional"), ("tf_efficientnet", "convolutional"), ("dla", "convolutional"),
    ("mobilenet", "convolutional"), ("regnet", "convolutional"), ("densenet", "convolutional"),
    ("vgg", "convolutional"), ("inception", "convolutional"), ("mnasnet", "convolutional"),
    ("ghostnet", "convolutional"), ("rexnet", "convolutional"), ("hrnet", "convolutional"),
)
SGD_FAMILY = ("sgd", "momentum", "nesterov")  # quicktune's names for SGD with/without (Nesterov) momentum


def architecture_family(model: str) -> str:
    """"transformer", "convolutional", "hybrid" or "other" from a timm model name (pretrained tag
    and quicktune's source suffix after the first "." are ignored)."""
    arch = model.split(".", 1)[0].lower()
    for prefix, family in _FAMILIES:
        if arch.startswith(prefix):
            return family
    return "other"


def optimizer_group(optimizer: str) -> str:
    """"sgd" (plain / heavy-ball / Nesterov SGD), "adamw", or the optimizer's own name."""
    return "sgd" if optimizer in SGD_FAMILY else optimizer


def run_table(runs: pd.DataFrame, horizon: int | None = None) -> pd.DataFrame:
    """One row per run_key of long-format run rows; accuracies in % points.

    Columns: run_key, dataset, model, family, optimizer, opt_group, lr, elr, momentum,
    weight_decay, epochs (last recorded), complete (epochs >= horizon; default: the rows'
    max_epochs), final_acc (at the last recorded epoch), best_acc (max over epochs), acc_e1 (at
    epoch 1), and one column per extra hyperparameter (NaN where a run lacks it).
    """
    if runs.empty:
        raise ValueError("`runs` must hold at least one row, but is empty")
    df = runs.sort_values(["run_key", "epoch"])
    g = df.groupby("run_key", sort=True)
    out = g[["dataset", "model", "optimizer", "lr", "elr", "momentum", "weight_decay", "max_epochs", "extras"]].first()
    out["epochs"] = g["epoch"].max().astype(int)
    out["final_acc"] = 100.0 * g["val_acc"].last()
    out["best_acc"] = 100.0 * g["val_acc"].max()
    first = df[df["epoch"] == 1].drop_duplicates("run_key").set_index("run_key")["val_acc"]
    out["acc_e1"] = 100.0 * first.reindex(out.index)
    out["complete"] = out["epochs"] >= (out["max_epochs"] if horizon is None else horizon)
    out["family"] = out["model"].map(architecture_family)
    out["opt_group"] = out["optimizer"].map(optimizer_group)
    extras = pd.DataFrame([json.loads(e) if e else {} for e in out.pop("extras")], index=out.index)
    extras = extras.drop(columns=[c for c in extras.columns if c in out.columns])
    return pd.concat([out, extras], axis=1).reset_index()


def expected_max(values: Sequence[float], k: int) -> float:
    """E[max of k values drawn without replacement from `values`] (NaN if fewer than k).

    With v_(1) <= ... <= v_(n) sorted, P(max = v_(i)) = C(i-1, k-1) / C(n, k).
    """
    v = np.sort(np.asarray(values, dtype=float))
    v = v[np.isfinite(v)]
    n = len(v)
    if k < 1:
        raise ValueError(f"`k >= 1` must hold, but got k={k}")
    if n < k:
        return float("nan")
    w = np.array([math.comb(i - 1, k - 1) for i in range(1, n + 1)], dtype=float) / math.comb(n, k)
    return float(w @ v)


def cell_value(values: Sequence[float], stat: str) -> float:
    """`mean` or `best<k>` (expected best of k runs) of one group's accuracies; NaN when empty."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if stat == "mean":
        return float(v.mean()) if len(v) else float("nan")
    if stat.startswith("best") and stat[4:].isdigit():
        return expected_max(v, int(stat[4:]))
    raise ValueError(f"`stat` must be 'mean' or 'best<k>' (e.g. best3), but got {stat!r}")


Selector = Callable[[pd.DataFrame], pd.Series]


def within_gap(values: Sequence[float], in_a: Sequence[bool], strata: Sequence[Any]) -> float:
    """Mean(a) - mean(b) adjusted for strata (e.g. the model): the least-squares coefficient of
    the group indicator in values ~ stratum fixed effects + indicator (Frisch-Waugh: demean both
    within each stratum, then regress). Only strata holding both groups inform it; NaN if none."""
    y, x = np.asarray(values, dtype=float), np.asarray(in_a, dtype=float)
    s = pd.Series(np.asarray(strata, dtype=object))
    ok = np.isfinite(y)
    y, x, s = y[ok], x[ok], s[ok].reset_index(drop=True)
    if not len(y):
        return float("nan")
    yt = y - pd.Series(y).groupby(s).transform("mean").to_numpy()
    xt = x - pd.Series(x).groupby(s).transform("mean").to_numpy()
    den = float(xt @ xt)
    return float(xt @ yt) / den if den > 1e-12 else float("nan")


def per_dataset(table: pd.DataFrame, a: Selector, b: Selector, value: str = "final_acc", stat: str = "mean",
                min_runs: int = 2) -> pd.DataFrame:
    """Per dataset: stat over the runs selected by `a`, by `b`, their difference, and the counts.

    a, b: functions of the run table returning a boolean mask. A dataset with fewer than
    `min_runs` runs in either group gets NaN (left out of the summary). stat "model-fe": diff is
    `within_gap` with the model as stratum (a and b compared within each model; a, b columns
    then hold the plain means).
    Returns columns dataset, n_a, n_b, a, b, diff (a - b), one row per dataset.
    """
    rows = []
    ma, mb = a(table).to_numpy(bool), b(table).to_numpy(bool)
    vals, models = table[value].to_numpy(float), table["model"].to_numpy(object)
    for d, idx in table.groupby("dataset", sort=True).indices.items():
        ia, ib = idx[ma[idx] & np.isfinite(vals[idx])], idx[mb[idx] & np.isfinite(vals[idx])]
        ok = len(ia) >= min_runs and len(ib) >= min_runs
        inner = "mean" if stat == "model-fe" else stat
        sa = cell_value(vals[ia], inner) if ok else float("nan")
        sb = cell_value(vals[ib], inner) if ok else float("nan")
        diff = sa - sb
        if stat == "model-fe":
            both_idx = np.concatenate([ia, ib])
            diff = within_gap(vals[both_idx], np.r_[np.ones(len(ia)), np.zeros(len(ib))], models[both_idx]) \
                if ok else float("nan")
        rows.append({"dataset": d, "n_a": len(ia), "n_b": len(ib), "a": sa, "b": sb, "diff": diff})
    return pd.DataFrame(rows, columns=["dataset", "n_a", "n_b", "a", "b", "diff"])


def summarize(diffs: Sequence[float], level: float = 0.95, seed: int = 0) -> dict[str, float]:
    """Mean of per-dataset differences (NaN dropped) with a t interval (scipy), a bootstrap CI,
    wins / losses and Wilcoxon signed-rank and sign-test p-values (from analysis.paired_difference)."""
    from scipy import stats

    d = np.asarray(diffs, dtype=float)
    d = d[np.isfinite(d)]
    out = paired_difference(np.zeros(len(d)), d, seed=seed, level=level)
    out["boot_lo"], out["boot_hi"] = out.pop("lo"), out.pop("hi")
    if len(d) >= 2 and np.std(d) > 0:
        ci = stats.ttest_1samp(d, 0.0).confidence_interval(level)
        out["lo"], out["hi"] = float(ci.low), float(ci.high)
    else:
        out["lo"] = out["hi"] = float("nan")
    return out


def group_contrast(table: pd.DataFrame, a: Selector, b: Selector, **kw: Any) -> tuple[dict[str, float], pd.DataFrame]:
    """`per_dataset` then `summarize` over datasets: (summary, per-dataset table)."""
    pdt = per_dataset(table, a, b, **kw)
    return summarize(pdt["diff"]), pdt


def difference_of_contrasts(table: pd.DataFrame, a: Selector, b: Selector, subset1: Selector, subset2: Selector,
                            **kw: Any) -> tuple[dict[str, float], pd.DataFrame]:
    """Per dataset (a - b within subset1) - (a - b within subset2), summarised over datasets
    (e.g. the AdamW-minus-SGD gap on transformers minus the gap on convolutional nets)."""
    one = per_dataset(table, lambda t: a(t) & subset1(t), lambda t: b(t) & subset1(t), **kw)
    two = per_dataset(table, lambda t: a(t) & subset2(t), lambda t: b(t) & subset2(t), **kw)
    m = one[["dataset", "diff"]].merge(two[["dataset", "diff"]], on="dataset", suffixes=("_1", "_2"))
    m["diff"] = m["diff_1"] - m["diff_2"]
    return summarize(m["diff"]), m


def verdict(summary: dict[str, float], direction: int = 1) -> str:
    """A signed claim ("the mean difference is > 0" for direction=+1, "< 0" for -1) against the
    t interval: "supported" if it excludes 0 on the claimed side, "contradicted" if on the other
    side, else "not supported (CI includes 0)"; "no data" without an interval."""
    lo, hi = summary.get("lo", float("nan")), summary.get("hi", float("nan"))
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "no data"
    lo, hi = (lo, hi) if direction > 0 else (-hi, -lo)
    if lo > 0:
        return "supported"
    if hi < 0:
        return "contradicted"
    return "not supported (CI includes 0)"


def similarity_proxy(table: pd.DataFrame, value: str = "final_acc", stat: str = "best3") -> pd.Series:
    """Per dataset, how far frozen pretrained features go: stat(linear-probing runs) /
    stat(runs that fine-tune the backbone), in [0, ~1]. A domain close to the source's makes
    the frozen features nearly as good as fine-tuning (the transferability reading of "domain
    similarity"; used when the meta-dataset records no similarity feature). Needs the
    `linear_probing` extra; runs with pct_to_freeze = 1 count as linear probing.
    """
    if "linear_probing" not in table.columns:
        raise ValueError("the similarity proxy needs the `linear_probing` extra, which these runs do not record")
    frozen = (table["linear_probing"].fillna(0) == 1) | (table.get("pct_to_freeze", pd.Series(0, index=table.index)) >= 1)
    pdt = per_dataset(table, lambda t: frozen, lambda t: ~frozen, value=value, stat=stat)
    return pd.Series((pdt["a"] / pdt["b"]).to_numpy(), index=pdt["dataset"], name="similarity_proxy")


def effect_vs_covariate(per_dataset_table: pd.DataFrame, covariate: pd.Series) -> dict[str, Any]:
    """Spearman correlation (bootstrap CI over datasets) of a per-dataset effect with a per-dataset
    covariate, and the effect summarised separately in the datasets above / at or below the
    covariate's median (keys: correlation, high, low, median)."""
    x = covariate.reindex(per_dataset_table["dataset"]).to_numpy(float)
    y = per_dataset_table["diff"].to_numpy(float)
    ok = np.isfinite(x) & np.isfinite(y)
    med = float(np.median(x[ok])) if ok.any() else float("nan")
    return {"correlation": correlation(x, y), "median": med,
            "high": summarize(y[ok & (x > med)]), "low": summarize(y[ok & (x <= med)])}
