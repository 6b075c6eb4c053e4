import json

import numpy as np
import pandas as pd
import pytest

from quicktune.metadataset import CurveTable, read_quicktune
from quicktune.metadataset.tabular import nan_to_last
from tests.helpers import shared_path
from tests.metadataset.tiny_quicktune import PERF, write_quicktune_dir


def test_curve_table_from_a_tiny_import(tmp_path):
    table = CurveTable(*read_quicktune(write_quicktune_dir(tmp_path / "mini")))
    assert table.datasets == ["d1", "d2"] and table.max_epochs == 4
    assert table.models == ["net_a", "net_b"]
    for d in table.datasets:
        task = table.task(d)
        n = len(PERF[d])
        assert task.perf.shape == task.cost.shape == (n, 4) and task.n_runs == n
        assert sorted(task.lengths.tolist()) == sorted(len(c) for c in PERF[d].values())
        for i, length in enumerate(task.lengths):
            assert np.isnan(task.perf[i, length:]).all() and np.isnan(task.cost[i, length:]).all()
            assert not np.isnan(task.cost[i, :length]).any()
        assert task.dataset_features["n_classes"] == {"d1": 10, "d2": 5}[d]
    d1 = table.task("d1")
    diverged = d1.perf[d1.lengths == 2][0]  # run 12: [50 %, null]
    assert diverged[0] == pytest.approx(0.5) and np.isnan(diverged[1])
    assert d1.best == pytest.approx(0.5) and d1.worst == pytest.approx(0.1)
    assert table.dataset_feature_names() == ["n_samples", "n_classes", "image_size", "channels"]
    with pytest.raises(KeyError, match="'d9' is not in the meta-dataset"):
        table.task("d9")


def test_curve_table_from_the_shared_extended_copy():
    path = shared_path("data", "quicktune-extended")
    runs, feats = read_quicktune(path)
    table = CurveTable(runs, feats)
    perf = json.loads((path / "curves" / "perf.json").read_text())
    assert len(table.datasets) == 19 and table.max_epochs == 50 and len(table.models) == 24
    tasks = table.tasks()
    assert sum(t.n_runs for t in tasks) == 3485
    for t in tasks:
        assert t.perf.shape == (len(perf[t.dataset]), 50)
        assert sorted(t.lengths.tolist()) == sorted(len(c) for c in perf[t.dataset].values())
        recorded = ~np.isnan(t.perf)
        assert recorded.sum() == t.lengths.sum()  # NaN exactly after each run's last epoch
        assert (recorded == (np.arange(50)[None, :] < t.lengths[:, None])).all()
        assert np.nanmax(t.perf) <= 1.0 and t.total_seconds() > 0
    assert sum(t.total_seconds() for t in tasks) == pytest.approx(runs["seconds"].sum())


def test_nan_to_last_fills_forward_along_the_last_axis():
    x = np.array([[np.nan, 0.2, np.nan, 0.4], [0.1, np.nan, np.nan, np.nan]])
    np.testing.assert_allclose(nan_to_last(x), [[0.0, 0.2, 0.2, 0.4], [0.1, 0.1, 0.1, 0.1]])
    np.testing.assert_allclose(nan_to_last(np.array([np.nan, 1.0])), [0.0, 1.0])
    assert np.isnan(x).sum() == 5  # the input is not modified


def test_restrict_hides_the_other_datasets_everywhere():
    from quicktune.metadataset.tabular import CurveTable
    from tests.helpers import synthetic_runs

    runs = synthetic_runs(datasets=("a", "b", "c"), max_epochs=3)
    feats = pd.DataFrame([dict(dataset=d, model="", name="n_classes", value=float(i)) for i, d in enumerate("abc")])
    table = CurveTable(runs, feats)
    table.task("a")  # built before the restriction: shared
    view = table.restrict(["b", "c"])
    assert view.datasets == ["b", "c"] and [t.dataset for t in view.tasks()] == ["b", "c"]
    assert view.task("c").dataset_features == {"n_classes": 2.0}  # built after: reads the right rows
    with pytest.raises(KeyError):
        view.task("a")
    assert table.datasets == ["a", "b", "c"]  # the original is untouched
