"""Reads check every part file (schema, types, row rules) and name it; compaction refuses to bake
bad rows into a snapshot; `metadataset info` verifies the manifest's content hash."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from quicktune.cli import app
from quicktune.metadataset import MetaDatasetStore, StoreError
from quicktune.metadataset.loading import open_metadataset
from quicktune.metadataset.schema import RUN_SCHEMA
from tests.helpers import synthetic_runs

runner = CliRunner()


def _store(tmp_path):
    store = MetaDatasetStore(tmp_path / "s")
    store.append(synthetic_runs(datasets=("d0", "d1"), max_epochs=4))
    return store


def _plant_rows(store, name, **change):
    """A part with RUN_SCHEMA (a valid Parquet file of the right shape) whose rows break a rule."""
    df = synthetic_runs(datasets=("d9",), max_epochs=4).head(4).assign(written_at=1.0, **change)
    p = store.root / "runs" / name
    pq.write_table(pa.Table.from_pandas(df[RUN_SCHEMA.names], schema=RUN_SCHEMA, preserve_index=False), p)
    return p


def _one_line(msg):
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize(
    "plant, rule",
    [
        (lambda st: pq.write_table(pa.table({"foo": [1, 2], "bar": ["a", "b"]}), st.root / "runs" / "part-9-x.parquet"),
         "not a runs part of a quicktune store (missing columns run_key"),
        (lambda st: pq.write_table(
            pa.Table.from_pandas(synthetic_runs(datasets=("d9",)).head(2).assign(epoch="first"), preserve_index=False),
            st.root / "runs" / "part-9-x.parquet"), "columns do not fit the runs schema"),
        (lambda st: _plant_rows(st, "part-9-x.parquet", val_acc=1.5), "`0 <= val_acc <= 1` must hold"),
        (lambda st: _plant_rows(st, "part-9-x.parquet", epoch=-2), "`epoch >= 1` must hold"),
        (lambda st: _plant_rows(st, "part-9-x.parquet", epoch=9), "`epoch <= max_epochs` must hold"),
    ],
)
def test_a_bad_part_is_refused_on_read_naming_the_file(tmp_path, plant, rule):
    store = _store(tmp_path)
    plant(store)
    for read in (store.read, lambda: open_metadataset(store.root)):
        with pytest.raises(StoreError) as err:
            read()
        msg = _one_line(str(err.value))
        assert msg.startswith(str(store.root / "runs" / "part-9-x.parquet")) and rule in msg, msg


def test_compact_refuses_a_bad_part_and_keeps_every_file(tmp_path):
    store = _store(tmp_path)
    bad = _plant_rows(store, "part-9-x.parquet", val_acc=42.0)
    before = sorted(p.name for p in (store.root / "runs").iterdir())
    r = runner.invoke(app, ["metadataset", "compact", str(store.root)])
    assert r.exit_code == 2, r.output
    assert r.output.startswith("error:") and str(bad) in r.output.replace("\n", "")
    assert sorted(p.name for p in (store.root / "runs").iterdir()) == before  # nothing folded, nothing deleted
    assert not (store.root / "manifest.json").exists()


def test_info_verifies_the_manifest_hash(tmp_path):
    store = _store(tmp_path)
    store.compact()
    r = runner.invoke(app, ["metadataset", "info", str(store.root)])
    assert r.exit_code == 0 and "content hash verified" in r.output, r.output

    store.append(synthetic_runs(datasets=("d2",), max_epochs=4))  # a later append is fine, and said
    r = runner.invoke(app, ["metadataset", "info", str(store.root)])
    assert r.exit_code == 0 and "1 part(s) appended since the last compaction" in r.output, r.output

    # Change a value inside the snapshot, keeping a valid file: info refuses, naming it.
    snap = next((store.root / "runs").glob("snapshot-*"))
    t = pq.read_table(snap)
    acc = t.column("val_acc").to_pylist()
    acc[0] = 0.123
    pq.write_table(t.set_column(t.schema.get_field_index("val_acc"), "val_acc", pa.array(acc)), snap)
    r = runner.invoke(app, ["metadataset", "info", str(store.root)])
    assert r.exit_code == 2, r.output
    assert "differs from" in r.output and snap.name in r.output.replace("\n", ""), r.output
