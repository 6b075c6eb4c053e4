"""quicktune.analysis_qt and benchmarks/qt_findings.py on small synthetic tables with planted effects."""

from __future__ import annotations

import importlib.util
import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from quicktune import analysis_qt as aq
from tests.metadataset.tiny_quicktune import write_quicktune_dir

REPO = Path(__file__).resolve().parents[1]


def test_architecture_family_reads_timm_names():
    assert aq.architecture_family("xcit_small_12_p8_384_dist") == "transformer"
    assert aq.architecture_family("beit_base_patch16_384") == "transformer"
    assert aq.architecture_family("vit_tiny_patch16_224.augreg_in21k") == "transformer"
    assert aq.architecture_family("convnext_small_384_in22ft1k") == "convolutional"
    assert aq.architecture_family("tf_efficientnet_b4_ns") == "convolutional"
    assert aq.architecture_family("mobilenetv2_100.coral_in1k") == "convolutional"
    assert aq.architecture_family("mobilevit_xs") == "hybrid"  # not a "vit": hybrids come first
    assert aq.architecture_family("edgenext_small") == "hybrid"
    assert aq.architecture_family("my_own_net") == "other"
    assert aq.optimizer_group("nesterov") == aq.optimizer_group("momentum") == aq.optimizer_group("sgd") == "sgd"
    assert aq.optimizer_group("adamw") == "adamw"


def test_expected_max_equals_enumeration_of_subsets():
    v = [3.0, 1.0, 4.0, 1.5, 9.0, 2.6]
    for k in range(1, len(v) + 1):
        brute = np.mean([max(c) for c in itertools.combinations(v, k)])
        assert aq.expected_max(v, k) == pytest.approx(brute)
    assert aq.expected_max(v, 1) == pytest.approx(np.mean(v))
    assert np.isnan(aq.expected_max(v, 7))
    assert aq.cell_value(v, "best2") == pytest.approx(aq.expected_max(v, 2))
    with pytest.raises(ValueError, match="best<k>"):
        aq.cell_value(v, "median")


def test_within_gap_removes_the_model_mix_that_biases_plain_means():
    # Group a drew mostly the good model: plain means give a - b = +7, the truth within model is +2.
    model = ["good"] * 4 + ["bad"] * 4
    in_a = [1, 1, 1, 0, 1, 0, 0, 0]
    y = np.array([{"good": 80.0, "bad": 60.0}[m] + 2.0 * a for m, a in zip(model, in_a)])
    ia = np.asarray(in_a, bool)
    assert y[ia].mean() - y[~ia].mean() == pytest.approx(12.0)
    assert aq.within_gap(y, in_a, model) == pytest.approx(2.0)
    assert np.isnan(aq.within_gap([1.0, 2.0], [1, 0], ["m1", "m2"]))  # no model holds both groups


def test_summarize_uses_scipy_t_interval_and_verdict_reads_its_side():
    d = np.array([1.0, 2.0, 0.5, 1.5, 3.0, np.nan])
    s = aq.summarize(d)
    ci = stats.ttest_1samp(d[:5], 0.0).confidence_interval(0.95)
    assert (s["n"], s["wins"], s["losses"]) == (5, 5, 0)
    assert (s["lo"], s["hi"]) == pytest.approx((ci.low, ci.high))
    assert aq.verdict(s, +1) == "supported"
    assert aq.verdict(s, -1) == "contradicted"
    assert aq.verdict(aq.summarize([-1.0, 1.0, 0.5, -0.4]), +1) == "not supported (CI includes 0)"
    assert aq.verdict(aq.summarize([]), +1) == "no data"


def synthetic_quicktune(root: Path, n_datasets: int = 8, runs_per_dataset: int = 60, seed: int = 0) -> Path:
    """A Quick-Tune-format directory with random configs and planted effects (accuracy points):
    AdamW +8 over SGD on transformers, 0 on conv nets; sp_reg > 0 helps by 10 * (similarity - 0.5)
    where linear probing reaches `similarity` x the fine-tuned accuracy; step -3 vs cosine."""
    rng = np.random.default_rng(seed)
    models = ["vit_small_patch16_224", "deit_tiny_patch16_224", "resnet50", "convnext_tiny"]
    opts, scheds = ["adamw", "sgd", "momentum", "adam"], ["cosine", "step"]
    table, perf = {}, {}
    rid = 1000
    for d in range(n_datasets):
        sim = 0.3 + 0.6 * d / (n_datasets - 1)
        perf[f"D{d}"] = {}
        for _ in range(runs_per_dataset):
            m, o, s = rng.choice(models), rng.choice(opts), rng.choice(scheds)
            lp = int(rng.random() < 0.25)
            sp = float(rng.choice([0.0, 0.01]))
            ft = 60.0 + 5 * d + (10.0 if m.startswith("convnext") else 0.0)
            acc = ft * (sim if lp else 1.0)
            if not lp:
                acc += 8.0 * (o == "adamw" and aq.architecture_family(m) == "transformer")
                acc += 10.0 * (sim - 0.5) * (sp > 0)
            acc += -3.0 * (s == "step") + rng.normal(0, 0.5)
            n_ep = 1 if rng.random() < 0.2 else 4
            perf[f"D{d}"][str(rid)] = [float(np.clip(acc - 3 + e, 0, 100)) for e in range(n_ep)]
            row = {f"cat:model:{x}": int(x == m) for x in models}
            row |= {f"cat:opt:{x}": int(x == o) for x in opts}
            row |= {f"cat:sched:{x}": int(x == s) for x in scheds}
            row |= {"lr": 1e-3, "momentum": 0.9, "weight_decay": 1e-4, "linear_probing": lp, "pct_to_freeze": 0.0,
                    "sp_reg": sp, "warmup_epochs": int(rng.choice([0, 5]))}
            table[rid] = row
            rid += 1
    descriptors = {f"D{d}": [1000, 10, 128, 3] for d in range(n_datasets)}
    return write_quicktune_dir(root, table=pd.DataFrame.from_dict(table, orient="index"), perf=perf,
                               descriptors=descriptors)


@pytest.fixture(scope="module")
def synth_table(tmp_path_factory):
    from quicktune.metadataset.importers import read_quicktune

    runs, _ = read_quicktune(synthetic_quicktune(tmp_path_factory.mktemp("qt")))
    return aq.run_table(runs)


def test_run_table_spreads_extras_and_marks_complete_runs(synth_table):
    t = synth_table
    assert len(t) == 8 * 60 and set(t["family"]) == {"transformer", "convolutional"}
    assert {"sched", "sp_reg", "linear_probing", "warmup_epochs"} <= set(t.columns)
    assert set(t.loc[t["epochs"] == 1, "complete"]) == {False} and set(t.loc[t["epochs"] == 4, "complete"]) == {True}
    assert (t["final_acc"] >= t["acc_e1"] - 1e-9).all() and t["final_acc"].max() <= 100


def test_contrasts_recover_the_planted_optimizer_gap(synth_table):
    t = synth_table[synth_table["complete"] & (synth_table["linear_probing"] == 0)]
    adamw, sgd = (lambda x: x["opt_group"] == "adamw"), (lambda x: x["opt_group"] == "sgd")
    trans, conv = (lambda x: x["family"] == "transformer"), (lambda x: x["family"] == "convolutional")
    s_tr, per = aq.group_contrast(t, lambda x: adamw(x) & trans(x), lambda x: sgd(x) & trans(x), stat="model-fe")
    assert s_tr["mean"] == pytest.approx(8.0, abs=1.0) and aq.verdict(s_tr) == "supported"
    assert len(per) == 8 and (per["n_a"] > 0).all()
    s_cv, _ = aq.group_contrast(t, lambda x: adamw(x) & conv(x), lambda x: sgd(x) & conv(x), stat="model-fe")
    assert abs(s_cv["mean"]) < 1.0 and aq.verdict(s_cv) == "not supported (CI includes 0)"
    s_dd, _ = aq.difference_of_contrasts(t, adamw, sgd, trans, conv, stat="model-fe")
    assert s_dd["mean"] == pytest.approx(8.0, abs=1.5) and aq.verdict(s_dd) == "supported"


def test_similarity_proxy_and_l2sp_effect_follow_the_planted_similarity(synth_table):
    t = synth_table[synth_table["complete"]]
    proxy = aq.similarity_proxy(t, stat="mean")
    planted = pd.Series(0.3 + 0.6 * np.arange(8) / 7, index=[f"D{d}" for d in range(8)])
    assert np.corrcoef(proxy.reindex(planted.index), planted)[0, 1] > 0.95
    ft = t[t["linear_probing"] == 0]
    _, per = aq.group_contrast(ft, lambda x: x["sp_reg"] > 0, lambda x: x["sp_reg"] == 0, stat="model-fe")
    ev = aq.effect_vs_covariate(per, proxy)
    assert ev["correlation"]["spearman"] > 0.8
    assert ev["high"]["mean"] > 0 > ev["low"]["mean"]
    with pytest.raises(ValueError, match="linear_probing"):
        aq.similarity_proxy(t.drop(columns="linear_probing"))


def test_qt_findings_script_writes_its_outputs(tmp_path):
    spec = importlib.util.spec_from_file_location("qt_findings", REPO / "benchmarks" / "qt_findings.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    src = synthetic_quicktune(tmp_path / "qt")
    assert mod.main(["--metadataset", str(src), "--out", str(tmp_path / "out")]) == 0
    f = pd.read_csv(tmp_path / "out" / "qt_findings.csv")
    row = f[(f["contrast"] == "AdamW - SGD") & (f["subset"] == "transformer") & (f["stat"] == "model-fe")].iloc[0]
    assert row["verdict"] == "supported" and row["mean"] == pytest.approx(8.0, abs=1.0)
    step = f[(f["contrast"] == "step - cosine") & (f["stat"] == "model-fe")].iloc[0]
    assert step["verdict"] == "lower" and step["lo"] <= -3.0 <= step["hi"]  # other random factors add noise
    assert "not testable" in f[f["contrast"] == "freeze-embedding"]["verdict"].iat[0]
    summary = json.loads((tmp_path / "out" / "qt_findings.json").read_text())
    assert summary["setup"]["datasets"] == 8
    for name in ("qt_findings.md", "qt_findings_per_dataset.csv", "qt_optimizer_gap.png", "qt_schedules.png",
                 "qt_l2sp_similarity.png"):
        assert (tmp_path / "out" / name).stat().st_size > 0
