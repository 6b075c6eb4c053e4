"""Issue 8 item 7: mixed epoch horizons are refused by metatrain; a planted or damaged surrogate
file gets one line without torch's weights_only advice; quicktune's warnings print as `note:`."""

from __future__ import annotations

import os
import warnings

import pytest
import torch
from typer.testing import CliRunner

from quicktune.cli import app
from quicktune.metadataset import MetaDatasetStore
from quicktune.surrogate.gp import Surrogate
from tests.helpers import make_image_folder, synthetic_runs

runner = CliRunner()


def test_metatrain_refuses_mixed_horizons(tmp_path):
    store = MetaDatasetStore(tmp_path / "s")
    store.append(synthetic_runs(datasets=("d0", "d1"), max_epochs=4))
    store.append(synthetic_runs(datasets=("d2",), max_epochs=5))
    r = runner.invoke(app, ["metatrain", "--metadataset", str(store.root), "--out", str(tmp_path / "x.pt"),
                            "--steps", "2"])
    assert r.exit_code == 2, r.output
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), r.output
    assert "one epoch horizon" in lines[0] and "4 epochs (24 runs)" in lines[0] and "5 epochs (12 runs)" in lines[0]
    assert not (tmp_path / "x.pt").exists()


class _Planted:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ['PLANT_MARKER']}",))


def test_a_bad_surrogate_file_is_one_line_without_torch_advice(tmp_path, monkeypatch):
    marker = tmp_path / "code-ran"
    monkeypatch.setenv("PLANT_MARKER", str(marker))
    planted, cut = tmp_path / "planted.pt", tmp_path / "cut.pt"
    torch.save({"state": _Planted()}, planted)
    cut.write_bytes(planted.read_bytes()[:40])
    for path in (planted, cut):
        with pytest.raises(ValueError) as err:
            Surrogate.load(path)
        msg = str(err.value)
        assert str(path) in msg and "\n" not in msg and "weights_only" not in msg, msg
    assert not marker.exists()


def test_quicktune_warnings_print_as_one_note_line(tmp_path, capsys):
    from quicktune.cli._common import warnings_as_notes
    from quicktune.data import load_task

    root = make_image_folder(tmp_path / "c", classes=2, per_class=4)
    (root / "class_0" / "broken.png").write_bytes(b"not a png")
    old = warnings.showwarning
    try:
        warnings_as_notes()
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            load_task(root, size=8, cache_dir=None, skip_unreadable=True)
    finally:
        warnings.showwarning = old
    err = capsys.readouterr().err
    assert err.startswith("note: skipped 1 unreadable image(s):") and "broken.png" in err, err
    assert "UserWarning" not in err and len(err.strip().splitlines()) == 1, err
