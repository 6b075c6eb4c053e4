import json

import numpy as np
import pandas as pd
import pytest

from quicktune.metadataset.schema import RUN_COLUMNS
from quicktune.metadataset.storage import MANIFEST, MetaDatasetStore, StoreError
from tests.helpers import synthetic_runs


def _content(df: pd.DataFrame) -> pd.DataFrame:
    """Rows without `written_at`, in key order (what a read promises)."""
    cols = [c for c in RUN_COLUMNS if c != "written_at"]
    return df[cols].sort_values(["run_key", "epoch"]).reset_index(drop=True)


def _files(store: MetaDatasetStore, kind: str = "runs") -> list[str]:
    return sorted(p.name for p in (store.root / kind).iterdir())


def test_round_trip_keeps_every_column(tmp_path, runs_df):
    store = MetaDatasetStore(tmp_path / "s")
    store.append(runs_df)
    back = store.read()
    assert list(back.columns) == RUN_COLUMNS
    pd.testing.assert_frame_equal(_content(back), _content(runs_df), check_dtype=False)
    assert back["epoch"].dtype == np.int64 and back["val_acc"].dtype == np.float64


def test_same_rows_twice_are_read_once(tmp_path, runs_df):
    store = MetaDatasetStore(tmp_path / "s")
    store.append(runs_df)
    store.append(runs_df)
    assert len(_files(store)) == 2
    back = store.read()
    assert len(back) == len(runs_df)
    assert not back.duplicated(["run_key", "epoch"]).any()


def test_latest_written_row_wins(tmp_path, runs_df):
    store = MetaDatasetStore(tmp_path / "s")
    store.append(runs_df)
    newer = runs_df.head(5).copy()
    newer["val_acc"] = 0.123
    newer["written_at"] = np.nan  # stamped at append time, after the first part
    store.append(newer)
    back = store.read().set_index(["run_key", "epoch"])
    changed = back.loc[list(zip(newer["run_key"], newer["epoch"]))]
    assert (changed["val_acc"] == 0.123).all()
    assert len(back) == len(runs_df)
    assert (back["val_acc"] == 0.123).sum() == 5


def test_an_explicitly_older_row_does_not_win(tmp_path, runs_df):
    store = MetaDatasetStore(tmp_path / "s")
    store.append(runs_df)
    older = runs_df.head(1).copy()
    older["val_acc"] = 0.5
    older["written_at"] = runs_df["written_at"].min() - 1000.0
    store.append(older)
    assert (store.read()["val_acc"] == 0.5).sum() == (runs_df["val_acc"] == 0.5).sum()


def test_read_can_filter_datasets_and_done_epochs_counts(tmp_path, runs_df):
    store = MetaDatasetStore(tmp_path / "s")
    store.append(runs_df)
    assert set(store.read(datasets=["d1"])["dataset"]) == {"d1"}
    done = store.done_epochs()
    assert len(done) == runs_df["run_key"].nunique() and set(done.values()) == {8}


def test_empty_appends_write_nothing(tmp_path, runs_df):
    store = MetaDatasetStore(tmp_path / "s")
    assert store.append([]) is None
    assert store.append(runs_df.head(0)) is None
    assert store.is_empty() and store.read().empty and list(store.read().columns) == RUN_COLUMNS


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda df: df.drop(columns=["seconds"]), r"missing: \['seconds'\]"),
        (lambda df: df.assign(colour="red"), r"unknown columns: \['colour'\]"),
        (lambda df: df.assign(status="great"), r"`status` must be one of .*'great'"),
        (lambda df: df.assign(epoch=0), r"`epoch >= 1` must hold, but got min epoch 0"),
        (lambda df: df.assign(val_acc=df["val_acc"] * 100 + 1), r"`0 <= val_acc <= 1` must hold \(a fraction, not %\)"),
        (lambda df: df.assign(seconds=-1.0), r"`seconds >= 0` must hold, but got seconds=-1.0"),
        (lambda df: df.assign(model=""), r"`model` must be a non-empty string"),
        (lambda df: df.assign(epoch="three"), r"rows do not fit the schema"),
        (lambda df: df.assign(max_epochs=None), r"`max_epochs` must be set on every row"),
    ],
)
def test_schema_violations_are_rejected_with_the_rule(tmp_path, runs_df, change, message):
    store = MetaDatasetStore(tmp_path / "s")
    with pytest.raises(StoreError, match=message) as err:
        store.append(change(runs_df.head(3)))
    assert "\n" not in str(err.value)
    assert store.is_empty()  # nothing half-written


def test_features_are_deduplicated_by_dataset_model_name(tmp_path):
    store = MetaDatasetStore(tmp_path / "s")
    store.append_features([{"dataset": "d", "model": "", "name": "n_classes", "value": 10.0}])
    store.append_features([{"dataset": "d", "model": "", "name": "n_classes", "value": 12.0},
                           {"dataset": "d", "model": "m", "name": "emd", "value": 0.5}])
    f = store.read_features()
    assert len(f) == 2 and f.set_index("name").loc["n_classes", "value"] == 12.0


def test_temp_files_are_ignored_and_damaged_parts_are_named(tmp_path, runs_df):
    store = MetaDatasetStore(tmp_path / "s")
    store.append(runs_df)
    (store.root / "runs" / ".tmp-deadbeef-part-1-2-3.parquet").write_bytes(b"PAR1 half a file")
    assert len(store.read()) == len(runs_df)
    bad = store.root / "runs" / "part-9-9-damaged.parquet"
    bad.write_bytes(b"not parquet")
    with pytest.raises(StoreError, match="part-9-9-damaged.parquet: unreadable part file"):
        store.read()


def test_a_missing_store_is_an_error_when_not_creating(tmp_path):
    with pytest.raises(StoreError, match="does not exist"):
        MetaDatasetStore(tmp_path / "nope", create=False)
    assert not (tmp_path / "nope").exists()


def test_compaction_preserves_content_and_writes_a_stable_manifest(tmp_path):
    store = MetaDatasetStore(tmp_path / "s")
    a, b = synthetic_runs(datasets=("d0",)), synthetic_runs(datasets=("d1", "d2"))
    store.append(a)
    store.append(b)
    store.append(a)  # a duplicate part
    store.append_features([{"dataset": "d0", "model": "", "name": "n_classes", "value": 3.0}])
    before = store.read()

    manifest = store.compact()
    assert [n.split("-")[0] for n in _files(store)] == ["snapshot"]
    after = store.read()
    pd.testing.assert_frame_equal(_content(after), _content(before))
    assert manifest["runs"]["rows"] == len(before) == len(a) + len(b)
    assert manifest["runs"]["n_runs"] == before["run_key"].nunique()
    assert manifest["runs"]["datasets"] == ["d0", "d1", "d2"]
    assert manifest["features"]["rows"] == 1
    assert json.loads((store.root / MANIFEST).read_text()) == store.manifest() == manifest

    # Compacting again, or appending rows already held and compacting, keeps the hash.
    assert store.compact()["runs"]["content_hash"] == manifest["runs"]["content_hash"]
    store.append(b)
    again = store.compact()
    assert again["runs"]["content_hash"] == manifest["runs"]["content_hash"]
    assert again["runs"]["rows"] == manifest["runs"]["rows"]

    # ...and a real change of content changes it.
    changed = a.head(1).assign(val_acc=0.0001, written_at=np.nan)
    store.append(changed)
    assert store.compact()["runs"]["content_hash"] != manifest["runs"]["content_hash"]


def test_compacting_an_empty_store(tmp_path):
    m = MetaDatasetStore(tmp_path / "s").compact()
    assert m["runs"]["rows"] == 0 and m["features"]["rows"] == 0 and m["runs"]["datasets"] == []
