import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quicktune.baselines import RandomSearch
from quicktune.benchmark import methods as methods_mod
from quicktune.benchmark.experiment import (
    ALL,
    LONG_COLUMNS,
    aggregate,
    fold_contexts,
    make_folds,
    report_times,
    restrict_table,
    run_benchmark,
    run_experiment,
    time_grid,
    write_outputs,
)
from quicktune.benchmark.methods import Method, get_method
from quicktune.metadataset.tabular import CurveTable
from tests.helpers import synthetic_runs


@pytest.fixture(scope="module")
def table() -> CurveTable:
    return CurveTable(synthetic_runs(datasets=("d0", "d1", "d2", "d3")))


def test_folds_are_deterministic_disjoint_and_cover_everything():
    ds = [f"x{i}" for i in range(7)]
    folds = make_folds(reversed(ds), 3)
    assert folds == make_folds(ds, 3)
    assert sorted(sum(folds, [])) == sorted(ds) and len(folds) == 3
    assert make_folds(ds, 10) == [[d] for d in sorted(ds)]  # never an empty fold


def test_fold_context_hides_the_held_out_datasets(table, tmp_path):
    ctx = fold_contexts(table, 2, tmp_path)
    for d in table.datasets:
        fold = ctx[d]
        assert d in fold.test_datasets and d not in fold.train_datasets
        assert fold.train.datasets == list(fold.train_datasets)
        assert set(fold.train._runs["dataset"]) == set(fold.train_datasets)
        with pytest.raises(KeyError):
            fold.train.task(d)
        assert fold.train.task(fold.train_datasets[0]).dataset == fold.train_datasets[0]
    assert table.datasets == ["d0", "d1", "d2", "d3"]  # the original is untouched
    assert ctx["d0"].key != ctx["d1"].key and ctx["d0"].key == ctx["d2"].key
    with pytest.raises(KeyError, match="nope"):
        restrict_table(table, ["nope"])


def test_time_grid_holds_the_report_times_within_the_budget():
    g = time_grid(5 * 3600, points=50)
    assert {3600.0, 4 * 3600.0, 5 * 3600.0} <= set(g) and 16 * 3600.0 not in g
    assert np.all(np.diff(g) > 0) and g[-1] == 5 * 3600
    assert list(report_times(5 * 3600)) == ["1h", "4h", "5h"]
    assert list(report_times(16 * 3600)) == ["1h", "4h", "16h"]
    assert report_times(600, at=[240, 60, 3600]) == {"1m": 60.0, "4m": 240.0, "10m": 600.0}
    assert {60.0, 240.0, 600.0} <= set(time_grid(600, points=5, report_at=[60, 240]))


def test_trajectory_has_every_epoch_and_regret_starts_at_one(table, tmp_path):
    task = table.task("d1")
    fold = fold_contexts(table, 2, tmp_path)["d1"]
    budget = task.total_seconds() + 1  # enough for every run
    r = run_experiment("random", task, 0, budget, fold)
    assert r.stop == "exhausted" and r.n_trials == task.n_runs
    assert len(r.times) == int(task.lengths.sum())  # one point per epoch, not per trial
    assert np.all(np.diff(r.times) > 0) and r.times[-1] == pytest.approx(task.total_seconds())
    assert len(r.overhead) == r.n_trials
    inc = r.incumbents
    assert np.all(np.diff(inc) >= 0) and inc[-1] == pytest.approx(task.best)
    before = r.times[0] / 2
    reg = r.regret_at(task, [before, r.times[0], budget])
    assert reg[0] == 1.0 and 0 <= reg[1] <= 1 and reg[2] == 0.0


def test_the_clock_stops_at_the_budget(table, tmp_path):
    task = table.task("d0")
    fold = fold_contexts(table, 2, tmp_path)["d0"]
    r = run_experiment("hyperband", task, 0, 100.0, fold)
    assert r.stop == "budget" and r.simulated_s >= 100.0 and r.times[-1] <= 100.0


def test_random_search_regret_decreases_and_reaches_zero(table):
    budget = max(t.total_seconds() for t in table.tasks()) + 1
    res = run_benchmark(table, ["random"], budget, seeds=range(4), n_folds=2)
    assert list(res.long.columns) == LONG_COLUMNS
    assert len(res.long) == 4 * 4 * len(res.grid)
    assert res.long["regret"].between(0, 1).all()
    mean = res.long.groupby("time_s")["regret"].mean().sort_index()
    assert np.all(np.diff(mean.to_numpy()) <= 1e-12)
    assert mean.iloc[0] > 0.5 and mean.iloc[-1] == 0.0


def test_results_do_not_depend_on_workers(table, tmp_path):
    kw = dict(budget_s=600.0, seeds=range(2), n_folds=2, cache_dir=tmp_path)
    one = run_benchmark(table, ["random", "hyperband"], workers=1, **kw)
    two = run_benchmark(table, ["random", "hyperband"], workers=2, **kw)
    pd.testing.assert_frame_equal(one.long, two.long)
    cols = ["method", "dataset", "seed", "n_trials", "n_epochs", "simulated_s", "final_regret"]
    pd.testing.assert_frame_equal(one.runs[cols], two.runs[cols])


calls: list[tuple[str, tuple[str, ...]]] = []


def _prepare(fold):
    calls.append(("prepare", fold.train_datasets))
    (fold.cache_dir / f"model-{fold.key}.txt").write_text(",".join(fold.train_datasets))


def _make(space, max_epochs, seed, context):
    cached = (context.fold.cache_dir / f"model-{context.fold.key}.txt").read_text().split(",")
    assert context.dataset not in cached  # the held-out dataset was not trained on
    calls.append(("make", tuple(cached)))
    return RandomSearch(space, max_epochs, seed)


def test_a_registered_method_is_prepared_once_per_fold(table, tmp_path, monkeypatch):
    monkeypatch.setitem(methods_mod.METHODS, "meta", Method("meta", _make, prepare=_prepare))
    calls.clear()
    res = run_benchmark(table, ["meta"], 300.0, datasets=["d0", "d1", "d2"], seeds=range(2), n_folds=2,
                        cache_dir=tmp_path / "cache")
    preps = [c for c in calls if c[0] == "prepare"]
    assert sorted(preps) == sorted([("prepare", ("d1", "d3")), ("prepare", ("d0", "d2"))])
    assert len([c for c in calls if c[0] == "make"]) == 3 * 2
    assert set(res.long["method"]) == {"meta"}


def test_unknown_method_lists_the_known_ones():
    with pytest.raises(KeyError, match="random"):
        get_method("nope")


def test_aggregate_averages_datasets_and_brackets_the_mean():
    rows = []
    for d, base in (("a", 0.2), ("b", 0.6)):
        for s in range(5):
            for t in (1.0, 2.0):
                rows.append(dict(method="m", dataset=d, fold=0, seed=s, time_s=t, regret=base + 0.01 * s - 0.1 * t))
    agg = aggregate(pd.DataFrame(rows), n_boot=200)
    a = agg[(agg.dataset == "a") & (agg.time_s == 1.0)].iloc[0]
    assert a["mean"] == pytest.approx(0.12) and a.ci_low <= a["mean"] <= a.ci_high and a.ci_high - a.ci_low > 0
    al = agg[(agg.dataset == ALL) & (agg.time_s == 2.0)].iloc[0]
    assert al["mean"] == pytest.approx((0.02 + 0.42) / 2) and al.n == 10


def test_outputs_have_the_documented_files_and_columns(table, tmp_path):
    res = run_benchmark(table, ["random", "grid"], 2 * 3600.0, seeds=range(2), n_folds=2)
    paths = write_outputs(res, tmp_path, prefix="bm")
    long = pd.read_csv(paths["long"])
    assert list(long.columns) == LONG_COLUMNS and set(long["method"]) == {"random", "grid"}
    summary = pd.read_csv(paths["summary_csv"])
    assert {"method", "dataset", "time", "time_s", "mean", "ci_low", "ci_high", "n", "median_overhead_s"} <= set(summary.columns)
    assert set(summary["time"]) == {"1h", "2h"} and ALL in set(summary["dataset"])
    doc = json.loads(Path(paths["summary_json"]).read_text())
    assert set(doc["methods"]["random"]["mean_regret"]) == {"1h", "2h"}
    assert doc["methods"]["grid"]["median_overhead_s_per_step"] >= 0
    for key in ("png", "png_per_dataset"):
        assert Path(paths[key]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_restricted_view_builds_unbuilt_tasks_from_the_right_rows():
    runs = synthetic_runs(datasets=("d0", "d1", "d2", "d3"))
    fresh = CurveTable(runs)  # nothing built yet: the view must build its tasks itself
    view = restrict_table(fresh, ["d2", "d3"])
    reference = CurveTable(runs)
    for d in ("d2", "d3"):
        got, want = view.task(d), reference.task(d)
        assert got.run_keys == want.run_keys
        np.testing.assert_array_equal(got.perf, want.perf)


def test_the_selected_config_and_its_held_out_epoch_are_reported(table, tmp_path):
    from quicktune.benchmark.experiment import summarize
    from quicktune.benchmark.heldout import heldout_epoch

    res = run_benchmark(table, ["random", "hyperband"], 900.0, seeds=range(2), n_folds=2, cache_dir=tmp_path)
    for r in res.runs.itertuples():
        task = table.task(r.dataset)
        cid, epoch = int(r.selected_config), int(r.selected_epoch)
        # The selection is the incumbent at the budget: its recorded accuracy is the final incumbent.
        assert task.perf[cid, epoch - 1] == r.selected_acc
        assert r.final_regret == pytest.approx(task.regret(r.selected_acc))
        other, acc = heldout_epoch(task, cid, epoch)
        assert other != epoch and abs(other - epoch) == 1 and acc == r.heldout_acc
    doc = summarize(res)[1]["heldout_epoch"]["methods"]
    for m in ("random", "hyperband"):
        e = doc[m]
        assert e["optimism"] == pytest.approx(e["selected_acc"] - e["heldout_acc"])
        assert e["optimism_ci95"][0] <= e["optimism"] <= e["optimism_ci95"][1]


def test_the_no_zero_shot_ablation_meta_trains_its_own_surrogate(table, tmp_path, monkeypatch):
    from quicktune.benchmark import qt_method

    seen: list[float | None] = []

    class _Result:
        def __init__(self, w):
            self.w = w
            self.surrogate = self

        def save(self, path):
            Path(path).write_text(str(self.w))

    def fake_meta_train(train, **kw):
        seen.append(kw.get("zero_shot_weight"))
        return _Result(kw.get("zero_shot_weight"))

    import quicktune.surrogate.fit as fit

    monkeypatch.setattr(fit, "meta_train", fake_meta_train)
    fold = fold_contexts(table, 2, cache_dir=tmp_path)["d0"]
    get_method("quicktune").prepare_fold(fold)
    get_method("quicktune-no-zs").prepare_fold(fold)
    get_method("quicktune-no-zs").prepare_fold(fold)  # cached: not meta-trained again
    assert seen == [None, 0.0]  # the default keeps meta_train's own weight; the ablation turns it off
    default, ablation = qt_method.surrogate_path(fold), qt_method.surrogate_path(fold, qt_method.NO_ZERO_SHOT)
    assert default != ablation and default.read_text() == "None" and ablation.read_text() == "0.0"
