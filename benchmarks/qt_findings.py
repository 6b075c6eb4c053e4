"""Fine-tuning findings checked on the published Quick-Tune meta-dataset (issue 13, item 2).

The meta-dataset's runs are random configurations (optimizer, schedule, warm-up, freezing,
sp_reg, ... drawn per run), so every claim is tested as a within-dataset contrast of two groups of
runs, with a CI over datasets (quicktune.analysis_qt). Claims:

1. Kumar et al. ("How to fine-tune vision models with SGD"): AdamW beats SGD on transformers;
   the gap is larger on transformers than on convolutional nets. SGD = plain, heavy-ball and
   Nesterov SGD (timm's `sgd` is Nesterov). Runs that train the backbone (no linear probing,
   pct_to_freeze < 1).
2. Their explanation, freezing the embedding, cannot be tested: the table records no
   freeze-embedding option, only pct_to_freeze (the first X% of parameter tensors, input side
   first, which always includes the embedding but much more) and linear probing. As a proxy:
   is the AdamW-minus-SGD gap smaller when the input side is partly frozen (0 < pct < 1)?
3. Schedules: step, multistep, plateau against cosine; warm-up (5 or 10 epochs) against none,
   overall and on transformers.
4. Li et al. (ICLR 2020): L2-SP (sp_reg > 0) helps on domains similar to the source, not
   necessarily on dissimilar ones. The meta-dataset records no similarity, so the proxy is
   per dataset how close linear probing gets to fine-tuning (expected best of 3 runs of each):
   frozen features that nearly match fine-tuning mean a source-like domain.

Accuracy: the final (epoch-50) validation accuracy of complete runs (1,193 of 3,485 runs stop
after one epoch; their epoch-1 accuracy ranks like the complete runs', so dropping them is not a
selection on quality). Cell statistics: `mean` (the option averaged over the random rest of the
config) and `best3` (expected best of 3 runs: the option a little tuned).

    python benchmarks/qt_findings.py [--metadataset ../shared/data/quicktune-extended] [--out benchmarks/results]

Writes qt_findings.csv (one row per contrast), qt_findings_per_dataset.csv, qt_findings.json,
qt_findings.md and qt_optimizer_gap.png, qt_schedules.png, qt_l2sp_similarity.png.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from quicktune import analysis_qt as aq

REPO = Path(__file__).resolve().parents[1]
STATS = ("model-fe", "mean", "best3")
FIELDS = ["claim", "contrast", "subset", "stat", "direction", "n", "mean", "lo", "hi", "boot_lo", "boot_hi",
          "wins", "losses", "wilcoxon_p", "verdict"]


def col(name: str, default: Any = 0) -> aq.Selector:
    return lambda t: t[name].fillna(default) if name in t.columns else pd.Series(default, index=t.index)


def is_(name: str, *values: Any) -> aq.Selector:
    return lambda t: t[name].isin(values)


def both(*sel: aq.Selector) -> aq.Selector:
    def f(t: pd.DataFrame) -> pd.Series:
        m = pd.Series(True, index=t.index)
        for s in sel:
            m &= s(t).astype(bool)
        return m
    return f


def record(rows: list[dict], per: list[pd.DataFrame], claim: str, contrast: str, subset: str, stat: str,
           direction: int, summary: dict[str, float], pdt: pd.DataFrame) -> None:
    rows.append({"claim": claim, "contrast": contrast, "subset": subset, "stat": stat, "direction": direction,
                 **{k: summary.get(k) for k in ("n", "mean", "lo", "hi", "boot_lo", "boot_hi", "wins", "losses",
                                                 "wilcoxon_p")},
                 "verdict": aq.verdict(summary, direction) if direction else describe(summary)})
    per.append(pdt.assign(claim=claim, contrast=contrast, subset=subset, stat=stat))


def describe(summary: dict[str, float]) -> str:
    """For contrasts without a claimed direction."""
    v = aq.verdict(summary, 1)
    return {"supported": "higher", "contradicted": "lower"}.get(v, v.replace("not supported ", "no difference "))


def analyse(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    done = table[table["complete"]]
    backbone = both(lambda t: col("linear_probing")(t) == 0, lambda t: col("pct_to_freeze")(t) < 1)
    adamw, sgd = is_("opt_group", "adamw"), is_("opt_group", "sgd")
    fam = {f: is_("family", f) for f in ("transformer", "convolutional", "hybrid")}
    rows: list[dict] = []
    per: list[pd.DataFrame] = []
    extra: dict[str, Any] = {}
    for stat in STATS:
        kw = {"stat": stat, "min_runs": 3 if stat == "best3" else 2}
        # 1. AdamW - SGD by architecture family (runs that train the backbone).
        for f in ("transformer", "convolutional", "hybrid"):
            s, p = aq.group_contrast(done, both(adamw, fam[f], backbone), both(sgd, fam[f], backbone), **kw)
            claim = {"transformer": "Kumar: AdamW > SGD on transformers"}.get(f, "")
            record(rows, per, claim, "AdamW - SGD", f, stat, 1 if f == "transformer" else 0, s, p)
        s, p = aq.difference_of_contrasts(done, both(adamw, backbone), both(sgd, backbone), fam["transformer"],
                                          fam["convolutional"], **kw)
        record(rows, per, "Kumar: the AdamW - SGD gap is larger on transformers than on conv nets",
               "(AdamW - SGD) transformer - convolutional", "", stat, 1, s, p)
        # 1b. The same with every Adam-family run (adam, adamw, adamp: 3x the runs of AdamW alone).
        adams = is_("opt_group", "adam", "adamw", "adamp")
        for f in ("transformer", "convolutional"):
            s, p = aq.group_contrast(done, both(adams, fam[f], backbone), both(sgd, fam[f], backbone), **kw)
            record(rows, per, "", "Adam family - SGD", f, stat, 0, s, p)
        s, p = aq.difference_of_contrasts(done, both(adams, backbone), both(sgd, backbone), fam["transformer"],
                                          fam["convolutional"], **kw)
        record(rows, per, "", "(Adam family - SGD) transformer - convolutional", "", stat, 0, s, p)
        # 2. Freeze-embedding proxy: the gap without freezing minus the gap with the input side partly frozen.
        unfrozen = both(backbone, lambda t: col("pct_to_freeze")(t) == 0)
        partly = both(backbone, lambda t: col("pct_to_freeze")(t) > 0)
        for f, sub in (("transformer", fam["transformer"]), ("all", lambda t: pd.Series(True, index=t.index))):
            s, p = aq.difference_of_contrasts(done, adamw, sgd, both(unfrozen, sub), both(partly, sub), **kw)
            record(rows, per, "proxy for Kumar's freeze-embedding: partial input-side freezing shrinks AdamW's edge",
                   "(AdamW - SGD) pct_to_freeze=0 - (AdamW - SGD) 0<pct<1", f, stat, 1, s, p)
        # 3. Schedules against cosine; warm-up against none.
        for sched in ("step", "multistep", "plateau"):
            s, p = aq.group_contrast(done, is_("sched", sched), is_("sched", "cosine"), **kw)
            record(rows, per, "", f"{sched} - cosine", "all", stat, 0, s, p)
        warm, cold = (lambda t: col("warmup_epochs")(t) > 0), (lambda t: col("warmup_epochs")(t) == 0)
        for f, sub in (("all", lambda t: pd.Series(True, index=t.index)), ("transformer", fam["transformer"]),
                       ("convolutional", fam["convolutional"])):
            s, p = aq.group_contrast(done, both(warm, sub), both(cold, sub), **kw)
            record(rows, per, {"all": "warm-up helps", "transformer": "warm-up helps transformers"}.get(f, ""),
                   "warm-up (5/10 epochs) - none", f, stat, 1 if f != "convolutional" else 0, s, p)
        # 4. L2-SP against domain similarity (proxy).
        sp, nosp = (lambda t: col("sp_reg")(t) > 0), (lambda t: col("sp_reg")(t) == 0)
        s, p = aq.group_contrast(done, both(sp, backbone), both(nosp, backbone), **kw)
        record(rows, per, "", "sp_reg > 0 - sp_reg = 0", "all", stat, 0, s, p)
        proxy = aq.similarity_proxy(done)
        ev = aq.effect_vs_covariate(p, proxy)
        record(rows, per, "Li: L2-SP helps on similar domains", "sp_reg > 0 - sp_reg = 0",
               f"similarity proxy > median ({ev['median']:.3f})", stat, 1, ev["high"], p.iloc[0:0])
        record(rows, per, "", "sp_reg > 0 - sp_reg = 0", f"similarity proxy <= median ({ev['median']:.3f})", stat, 0,
               ev["low"], p.iloc[0:0])
        c = ev["correlation"]
        rows.append({"claim": "Li: L2-SP's benefit grows with domain similarity", "contrast":
                     "Spearman(sp_reg effect, similarity proxy)", "subset": "datasets", "stat": stat, "direction": 1,
                     "n": c["n"], "mean": c["spearman"], "lo": c["spearman_lo"], "hi": c["spearman_hi"],
                     "wilcoxon_p": c["spearman_p"],
                     "verdict": aq.verdict({"lo": c["spearman_lo"], "hi": c["spearman_hi"]}, 1)})
        extra.setdefault("similarity_proxy", {k: round(float(v), 4) for k, v in proxy.items()})
    rows.append({"claim": "Kumar: freezing the embedding lets SGD match AdamW", "contrast": "freeze-embedding",
                 "subset": "", "stat": "", "direction": 1, "n": 0,
                 "verdict": "not testable: the table records no freeze-embedding option (only pct_to_freeze and "
                            "linear_probing)"})
    return pd.DataFrame(rows, columns=FIELDS), pd.concat(per, ignore_index=True), extra


def plot(findings: pd.DataFrame, per: pd.DataFrame, proxy: dict[str, float], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    panels = [("qt_optimizer_gap.png", "AdamW - SGD", ["transformer", "convolutional", "hybrid"],
               "AdamW - SGD final accuracy (points), per dataset"),
              ("qt_schedules.png", None, None, "schedule / warm-up contrast (points), per dataset")]
    for name, contrast, subsets, title in panels:
        if contrast:
            keys = [(contrast, s, s) for s in subsets]
        else:
            keys = [("step - cosine", "all", "step\n-cosine"), ("multistep - cosine", "all", "multistep\n-cosine"),
                    ("plateau - cosine", "all", "plateau\n-cosine"),
                    ("warm-up (5/10 epochs) - none", "all", "warm-up\n-none"),
                    ("warm-up (5/10 epochs) - none", "transformer", "warm-up\n-none\ntransf.")]
        fig, axes = plt.subplots(1, len(STATS), figsize=(4.2 * len(STATS), 3.6))
        for ax, stat in zip(axes, STATS):
            sel = per[per["stat"] == stat]
            for i, (c, s, _) in enumerate(keys):
                d = sel[(sel["contrast"] == c) & (sel["subset"] == s)]["diff"].dropna()
                f = findings[(findings["contrast"] == c) & (findings["subset"] == s) & (findings["stat"] == stat)]
                ax.scatter(np.full(len(d), i) + np.linspace(-0.15, 0.15, len(d)), d, s=10, alpha=0.6)
                if len(f) and np.isfinite(f["lo"].iat[0]):
                    ax.errorbar(i + 0.3, f["mean"].iat[0], yerr=[[f["mean"].iat[0] - f["lo"].iat[0]],
                                                                 [f["hi"].iat[0] - f["mean"].iat[0]]],
                                fmt="o", color="k", capsize=3)
            ax.axhline(0, color="grey", lw=0.8)
            ax.set_xticks(range(len(keys)), [label for _, _, label in keys], fontsize=7)
            ax.set_title(stat, fontsize=9)
        fig.suptitle(title + " (dots); mean and 95% t CI over datasets (black)", fontsize=9)
        fig.tight_layout()
        fig.savefig(out / name, dpi=100)
        plt.close(fig)
        written.append(name)
    fig, axes = plt.subplots(1, len(STATS), figsize=(4.2 * len(STATS), 3.6))
    for ax, stat in zip(axes, STATS):
        d = per[(per["stat"] == stat) & (per["contrast"] == "sp_reg > 0 - sp_reg = 0") & (per["subset"] == "all")]
        x = d["dataset"].map(proxy)
        ax.scatter(x, d["diff"], s=14)
        for xi, yi, name in zip(x, d["diff"], d["dataset"]):
            ax.annotate(name, (xi, yi), fontsize=6)
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xlabel("similarity proxy: linear probing / fine-tuning (best of 3)")
        ax.set_ylabel("sp_reg>0 - sp_reg=0 (points)")
        ax.set_title(stat, fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "qt_l2sp_similarity.png", dpi=100)
    plt.close(fig)
    return [*written, "qt_l2sp_similarity.png"]


def markdown(findings: pd.DataFrame, setup: dict[str, Any]) -> str:
    lines = ["# Fine-tuning findings on the Quick-Tune meta-dataset", "",
             (f"Written by `benchmarks/qt_findings.py` on {setup['written']}. {setup['runs']} runs "
              f"({setup['complete']} complete, {setup['epochs']}-epoch horizon), {setup['datasets']} datasets, "
              f"{setup['models']} models. Final accuracy of complete runs, in points: per dataset group a - "
              "group b, averaged over datasets with a 95% t interval. `model-fe` = compared within each model "
              "(model fixed effects), `mean` = plain average over the other random hyperparameters, `best3` "
              "= expected best of 3 runs."), "",
             "| claim | contrast | subset | stat | datasets | mean | 95% CI | verdict |", "|---|---|---|---|---|---|---|---|"]
    for r in findings.itertuples():
        ci = f"[{r.lo:+.1f}, {r.hi:+.1f}]" if pd.notna(r.lo) else "-"
        mean = f"{r.mean:+.1f}" if pd.notna(r.mean) else "-"
        if r.contrast.startswith("Spearman") and pd.notna(r.mean):
            mean, ci = f"{r.mean:+.2f}", f"[{r.lo:+.2f}, {r.hi:+.2f}]"
        lines.append(f"| {r.claim} | {r.contrast} | {r.subset} | {r.stat} | {int(r.n) if pd.notna(r.n) else 0} | "
                     f"{mean} | {ci} | {r.verdict} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from quicktune.metadataset.importers import read_quicktune

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--metadataset", type=Path, default=REPO.parent / "shared" / "data" / "quicktune-extended")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = ap.parse_args(argv)
    runs, _ = read_quicktune(args.metadataset)
    table = aq.run_table(runs)
    findings, per, extra = analyse(table)
    args.out.mkdir(parents=True, exist_ok=True)
    findings.to_csv(args.out / "qt_findings.csv", index=False, float_format="%.4g")
    per.to_csv(args.out / "qt_findings_per_dataset.csv", index=False, float_format="%.4g")
    setup = {"written": _dt.date.today().isoformat(), "source": str(runs["source"].iat[0]),
             "runs": len(table), "complete": int(table["complete"].sum()),
             "epochs": int(table["max_epochs"].max()), "datasets": int(table["dataset"].nunique()),
             "models": int(table["model"].nunique()),
             "families": table.drop_duplicates("model").set_index("model")["family"].to_dict()}
    pngs = plot(findings, per, extra["similarity_proxy"], args.out)
    (args.out / "qt_findings.json").write_text(json.dumps(
        {"setup": setup, **extra, "findings": json.loads(findings.to_json(orient="records"))}, indent=1))
    (args.out / "qt_findings.md").write_text(markdown(findings, setup))
    print(markdown(findings, setup))
    print("wrote", ", ".join(["qt_findings.csv", "qt_findings_per_dataset.csv", "qt_findings.json", "qt_findings.md",
                              *pngs]), "into", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
