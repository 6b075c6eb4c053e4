import math

import numpy as np
import pandas as pd
import pytest

from quicktune import analysis as qa

GRID = [3.16e-3, 1e-2, 3.16e-2, 1e-1, 3.16e-1]


def rows(dataset, model, elr, momentum, accs, max_epochs=5, status_last="ok", wd=1e-4, extras="{}"):
    key = f"{dataset}|{model}|{elr}|{momentum}|{wd}|{extras}"
    out = []
    for t, a in enumerate(accs, start=1):
        out.append(dict(run_key=key, dataset=dataset, model=model, elr=elr, lr=elr * (1 - momentum),
                        momentum=momentum, weight_decay=wd, optimizer="sgd", extras=extras, seed=0,
                        max_epochs=max_epochs, epoch=t, val_acc=a,
                        status=status_last if t == len(accs) else "ok"))
    return out


def sweep_frame(dataset, model, final_by_elr, momentum=0.9):
    r = []
    for e, a in final_by_elr.items():
        r += rows(dataset, model, e, momentum, [a / 2, a / 1.5, a, a, a])
    return pd.DataFrame(r)


def test_run_summary_best_final_and_divergence():
    df = pd.DataFrame(
        rows("d", "m", 0.01, 0.9, [0.2, 0.6, 0.5, 0.4, 0.45])
        + rows("d", "m", 0.316, 0.9, [0.3, 0.5, float("nan")], status_last="diverged")
        + rows("d", "m", 0.1, 0.9, [0.1, 0.2])  # still running
    )
    s = qa.run_summary(df, chance={"d": 0.1}).set_index("elr")
    assert s.loc[0.01, "best_acc"] == pytest.approx(0.6)
    assert s.loc[0.01, "final_acc"] == pytest.approx(0.45)
    assert bool(s.loc[0.01, "complete"])
    # A diverged run is finished; its final accuracy is the chance level, its best stays its best.
    assert bool(s.loc[0.316, "complete"]) and s.loc[0.316, "final_acc"] == pytest.approx(0.1)
    assert s.loc[0.316, "best_acc"] == pytest.approx(0.5)
    assert not bool(s.loc[0.1, "complete"])


def test_best_elr_argmax_edges_and_incomplete_sweeps():
    df = pd.concat([
        sweep_frame("a", "m", dict(zip(GRID, [0.5, 0.7, 0.6, 0.4, 0.2]))),
        sweep_frame("b", "m", dict(zip(GRID, [0.9, 0.7, 0.6, 0.4, 0.2]))),  # best at the low edge
        sweep_frame("c", "m", dict(zip(GRID[:4], [0.5, 0.7, 0.6, 0.4]))),  # sweep incomplete
    ])
    s = qa.run_summary(df)
    b = qa.best_elr(qa.sweep_runs(s, GRID, 0.9, 1e-4), GRID, "final_acc").set_index("dataset")
    assert list(b.index) == ["a", "b"]
    assert b.loc["a", "best_elr"] == pytest.approx(1e-2)
    assert b.loc["a", "n_ties"] == 1 and not b.loc["a", "at_low_edge"] and not b.loc["a", "at_high_edge"]
    assert b.loc["b", "argmax_elr"] == pytest.approx(3.16e-3) and b.loc["b", "at_low_edge"]
    assert b.loc["a", "acc_0.01"] == pytest.approx(0.7)


def test_best_elr_ties_use_the_geometric_mean_and_near_ties_use_the_binomial_se():
    df = sweep_frame("a", "m", dict(zip(GRID, [0.5, 0.7, 0.7, 0.68, 0.2])))
    s = qa.run_summary(df)
    b = qa.best_elr(qa.sweep_runs(s, GRID, 0.9, 1e-4), GRID, "final_acc", n_val={"a": 100}).iloc[0]
    assert b["n_ties"] == 2
    assert b["log10_best_elr"] == pytest.approx((math.log10(1e-2) + math.log10(3.16e-2)) / 2)
    assert b["argmax_elr"] == pytest.approx(1e-2)
    # SE at 0.7 on 100 images is 0.046: 0.68 is a near tie, 0.5 is not.
    assert b["n_near"] == 3


def test_sweep_runs_filters_momentum_weight_decay_extras_and_grid():
    df = pd.DataFrame(
        rows("a", "m", 0.01, 0.9, [0.5] * 5) + rows("a", "m", 0.01, 0.0, [0.5] * 5)
        + rows("a", "m", 0.01, 0.9, [0.5] * 5, wd=1e-3) + rows("a", "m", 0.05, 0.9, [0.5] * 5)
        + rows("a", "m", 0.01, 0.9, [0.5] * 5, extras='{"batch_size": 16}')
    )
    s = qa.sweep_runs(qa.run_summary(df), GRID, 0.9, 1e-4)
    assert len(s) == 1 and s["grid_elr"].iloc[0] == pytest.approx(0.01)


def test_correlation_detects_a_monotone_relation_and_drops_nans():
    x = np.arange(10.0)
    y = -np.exp(x / 3)  # monotone decreasing, not linear
    c = qa.correlation(np.append(x, np.nan), np.append(y, 1.0), n_boot=200)
    assert c["n"] == 10
    assert c["spearman"] == pytest.approx(-1.0)
    assert -1.0 < c["pearson"] < -0.8
    assert c["spearman_hi"] == pytest.approx(-1.0)
    assert c["slope"] < 0


def test_correlation_bootstrap_resamples_groups_and_handles_constants():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(30)
    y = rng.standard_normal(30)
    c = qa.correlation(x, y, groups=np.repeat(np.arange(10), 3), n_boot=300)
    assert c["n_groups"] == 10 and c["spearman_lo"] < c["spearman"] < c["spearman_hi"]
    assert math.isnan(qa.correlation([1, 1, 1, 1], [1, 2, 3, 4])["spearman"])
    with pytest.raises(ValueError, match="equal length"):
        qa.correlation([1, 2, 3], [1, 2])


def test_within_group_zscore_removes_group_offsets():
    z = qa.within_group_zscore([1.0, 2.0, 3.0, 101.0, 102.0, 103.0, 5.0], ["a", "a", "a", "b", "b", "b", "c"])
    np.testing.assert_allclose(z[:3], z[3:6])
    assert z[:3].mean() == pytest.approx(0.0) and z[6] == 0.0


def test_paired_difference_counts_tests_and_ci():
    a = np.full(12, 0.5)
    b = a + np.array([0.1] * 10 + [0.0, -0.05])
    d = qa.paired_difference(a, b, n_boot=500)
    assert (d["n"], d["wins"], d["losses"], d["ties"]) == (12, 10, 1, 1)
    assert d["mean"] == pytest.approx((1.0 - 0.05) / 12)
    assert d["lo"] <= d["mean"] <= d["hi"] and d["lo"] > 0
    assert d["sign_p"] < 0.05 and d["wilcoxon_p"] < 0.05
    same = qa.paired_difference(a, a)
    assert same["ties"] == 12 and same["mean"] == 0 and same["sign_p"] == 1.0


def test_momentum_pairs_match_equal_elr_and_equal_lr_partners():
    df = pd.concat([
        sweep_frame("a", "m", dict(zip(GRID, [0.5, 0.7, 0.6, 0.4, 0.2]))),
        sweep_frame("a", "m", {1e-2: 0.66, 3.16e-2: 0.61}, momentum=0.0),
        sweep_frame("b", "m", {1e-2: 0.3}, momentum=0.0),  # no momentum-0.9 partners
    ])
    p = qa.momentum_pairs(qa.run_summary(df), [1e-2, 3.16e-2], 0.9, 1e-4, "final_acc")
    p = p.set_index(["dataset", "level"])
    assert p.loc[("a", 1e-2), "acc_m0"] == pytest.approx(0.66)
    assert p.loc[("a", 1e-2), "acc_equal_elr"] == pytest.approx(0.7)
    assert p.loc[("a", 1e-2), "acc_equal_lr"] == pytest.approx(0.4)  # m=0.9 at ELR 0.1
    assert p.loc[("a", 3.16e-2), "acc_equal_lr"] == pytest.approx(0.2)  # m=0.9 at ELR 0.316
    assert math.isnan(p.loc[("b", 1e-2), "acc_equal_elr"])


def test_momentum_pairs_without_momentum_zero_runs_is_an_empty_numeric_frame():
    df = sweep_frame("a", "m", dict(zip(GRID, [0.5, 0.7, 0.6, 0.4, 0.2])))
    p = qa.momentum_pairs(qa.run_summary(df), [1e-2], 0.9, 1e-4)
    assert p.empty and p["acc_equal_lr"].dtype == float
    assert qa.paired_difference(p["acc_m0"], p["acc_equal_lr"])["n"] == 0


def test_parabolic_argmax_finds_the_vertex_and_never_extrapolates():
    x = np.log10(GRID)
    y = -((x - (-1.8)) ** 2)  # an exact parabola with its top at log10 ELR = -1.8
    assert qa.parabolic_argmax(x, y, int(np.argmax(y))) == pytest.approx(-1.8, abs=1e-6)
    assert qa.parabolic_argmax(x, [0.9, 0.8, 0.7, 0.6, 0.5], 0) == pytest.approx(x[0])  # edge: stay there
    # Two equal neighbours: the vertex lies midway between them.
    assert qa.parabolic_argmax([0, 1, 2, 3], [0.1, 0.5, 0.5, 0.1], 1) == pytest.approx(1.5)
    assert qa.parabolic_argmax([0, 1, 2], [0.5, 0.5, 0.5], 1) == 1.0  # flat: no curvature
    assert qa.parabolic_argmax([0, 1, 2], [float("-inf"), 0.5, 0.4], 1) == 1.0


def test_weighted_bootstrap_statistics_equal_those_of_the_replicated_sample():
    from scipy import stats

    rng = np.random.default_rng(1)
    x = np.round(rng.standard_normal(9), 1)  # rounding makes ties
    y = np.round(x + rng.standard_normal(9), 1)
    w = rng.integers(0, 3, (4, 9)).astype(float)
    w[:, :3] += 1  # every weighting keeps at least three points
    r_s = qa._weighted_pearson(qa._weighted_ranks(x, w), qa._weighted_ranks(y, w), w)
    r_p = qa._weighted_pearson(x, y, w)
    for b in range(len(w)):
        idx = np.repeat(np.arange(9), w[b].astype(int))
        assert r_p[b] == pytest.approx(stats.pearsonr(x[idx], y[idx]).statistic)
        assert r_s[b] == pytest.approx(stats.spearmanr(x[idx], y[idx]).statistic)


def test_residualize_removes_a_linear_covariate_within_each_group():
    c = np.array([1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0])
    noise = np.array([0.1, -0.1, 0.05, -0.05, 0.2, -0.2, 0.0, 0.0])
    v = np.concatenate([2.0 * c[:4], 10.0 - c[4:]]) + noise
    g = ["a"] * 4 + ["b"] * 4
    r = qa.residualize(v, c, g)
    for sel in (slice(0, 4), slice(4, 8)):
        assert abs(np.corrcoef(r[sel], c[sel])[0, 1]) < 1e-9
        assert r[sel].mean() == pytest.approx(v[sel].mean())
    assert np.isnan(qa.residualize([1.0, np.nan], [1.0, 2.0], ["a", "a"])[1])
