import numpy as np
import pytest

from quicktune.metadataset import CurveTable, MetaDatasetStore, StoreError, import_quicktune, open_metadataset
from quicktune.metadataset.loading import summarize
from tests.metadataset.tiny_quicktune import write_quicktune_dir


def test_open_a_quicktune_directory_in_memory(tmp_path):
    src = write_quicktune_dir(tmp_path / "mini")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    table = open_metadataset(src)
    assert isinstance(table, CurveTable) and table.datasets == ["d1", "d2"]
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing written


def test_open_a_store_gives_the_same_curves(tmp_path):
    src = write_quicktune_dir(tmp_path / "mini")
    store = MetaDatasetStore(tmp_path / "store")
    import_quicktune(src, store)
    a, b = open_metadataset(src), open_metadataset(tmp_path / "store")
    assert a.datasets == b.datasets and a.max_epochs == b.max_epochs
    for d in a.datasets:
        ta, tb = a.task(d), b.task(d)
        order = [ta.run_keys.index(k) for k in tb.run_keys]
        assert sorted(ta.run_keys) == sorted(tb.run_keys)
        np.testing.assert_array_equal(ta.perf[order], tb.perf)  # NaN padding included
        np.testing.assert_array_equal(ta.cost[order], tb.cost)
        assert [ta.configs[i] for i in order] == tb.configs


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p / "absent", "no such directory"),
        (lambda p: p, r"neither a meta-dataset store \(no runs/ folder\) nor a Quick-Tune meta-dataset"),
        (lambda p: MetaDatasetStore(p / "empty").root, "the meta-dataset store holds no runs"),
    ],
)
def test_open_anything_else_is_a_clear_error(tmp_path, make, message):
    with pytest.raises(StoreError, match=message):
        open_metadataset(make(tmp_path))


def test_a_half_formed_quicktune_directory_gets_the_importers_error(tmp_path):
    root = write_quicktune_dir(tmp_path / "mini")
    (root / "curves" / "cost.json").unlink()
    with pytest.raises(StoreError, match="cost.json: missing"):
        open_metadataset(root)


def test_summarize_counts(tmp_path, runs_df):
    s = summarize(runs_df)
    assert (s["datasets"], s["models"], s["runs"], s["epochs"]) == (3, 2, 36, 288)
    assert s["total_hours"] == pytest.approx(runs_df["seconds"].sum() / 3600)
    assert [d["dataset"] for d in s["per_dataset"]] == ["d0", "d1", "d2"]
    assert sum(d["runs"] for d in s["per_dataset"]) == 36
