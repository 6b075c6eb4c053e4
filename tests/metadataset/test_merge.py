"""`quicktune metadataset merge A B --out C`: a user's runs join the embedded meta-dataset and
`metatrain` learns from both; mixing two tasks under one name, or features of two settings, is
refused in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from quicktune.cli import app
from quicktune.metadataset import MetaDatasetStore, StoreError, merge_metadatasets
from quicktune.metadataset.loading import EMBEDDED_METADATASET
from quicktune.metadataset.schema import FeatureSettings
from tests.helpers import synthetic_runs

runner = CliRunner()


def _mine(root: Path, datasets=("mine0", "mine1"), n_samples: float = 40.0, epochs: int = 5) -> Path:
    store = MetaDatasetStore(root)
    store.append(synthetic_runs(datasets=datasets, max_epochs=epochs))  # the embedded horizon: 5 epochs
    store.append_features([dict(dataset=d, model="", name="n_samples", value=n_samples, written_at=0.0) for d in datasets])
    return root


def test_merge_with_the_embedded_metadataset_then_metatrain_on_both(tmp_path: Path) -> None:
    mine = _mine(tmp_path / "mine")
    embedded = MetaDatasetStore(EMBEDDED_METADATASET, create=False)
    before = embedded.read()
    out = tmp_path / "merged"
    r = runner.invoke(app, ["metadataset", "merge", str(EMBEDDED_METADATASET), str(mine), "--out", str(out)])
    assert r.exit_code == 0, r.output
    merged = MetaDatasetStore(out).read()
    assert len(merged) == len(before) + len(MetaDatasetStore(mine).read())
    assert {"mine0", "mine1"} | set(before["dataset"]) == set(merged["dataset"])
    feats = MetaDatasetStore(out).read_features()
    assert len(feats) == len(embedded.read_features()) + 2
    assert MetaDatasetStore(out).feature_settings() == embedded.feature_settings()
    # Merging again changes nothing on read (one row per run and epoch).
    assert merge_metadatasets([mine], out)["epochs"] == len(merged)
    r = runner.invoke(app, ["metatrain", "--metadataset", str(out), "--out", str(tmp_path / "s.pt"), "--steps", "5",
                            "--val-fraction", "0"])
    assert r.exit_code == 0, r.output
    from quicktune.surrogate.gp import Surrogate

    s = Surrogate.load(tmp_path / "s.pt")
    assert {"mine0", "mine1"} <= set(s.info["train_datasets"]) and set(before["dataset"]) <= set(s.info["train_datasets"])


def test_merge_refuses_two_tasks_under_one_name_and_mixed_feature_settings(tmp_path: Path) -> None:
    a = _mine(tmp_path / "a", n_samples=40.0)
    b = _mine(tmp_path / "b", n_samples=99.0)
    r = runner.invoke(app, ["metadataset", "merge", str(a), str(b), "--out", str(tmp_path / "c")])
    assert r.exit_code == 2 and "two tasks under one name" in r.output and len(r.output.strip().splitlines()) == 1
    c = _mine(tmp_path / "c2", datasets=("other",))
    MetaDatasetStore(c).record_feature_settings(FeatureSettings(n_samples=50))
    MetaDatasetStore(c).append_features([dict(dataset="other", model="m_small", name="logme", value=0.1, written_at=0.0)])
    MetaDatasetStore(a).append_features([dict(dataset="mine0", model="m_small", name="logme", value=0.2, written_at=0.0)])
    with pytest.raises(StoreError, match="different settings"):
        merge_metadatasets([a, c], tmp_path / "d")
    assert not (tmp_path / "d").exists()  # nothing written before the checks pass
    short = _mine(tmp_path / "short", datasets=("s0",), epochs=3)
    with pytest.raises(StoreError, match="one epoch horizon"):
        merge_metadatasets([a, short], tmp_path / "e")
