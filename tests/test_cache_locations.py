"""Caches live in the user cache dir ($QUICKTUNE_CACHE, else $XDG_CACHE_HOME/quicktune, else
~/.cache/quicktune), never in the user's weights folder; planted cache files never run code."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from quicktune import hub
from quicktune.cachedir import cache_root
from tests.helpers import shared_path


def test_cache_root_order(tmp_path, monkeypatch):
    monkeypatch.delenv("QUICKTUNE_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert cache_root() == tmp_path / "home" / ".cache" / "quicktune"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")  # the XDG spec: relative paths are invalid
    assert cache_root() == tmp_path / "home" / ".cache" / "quicktune"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "quicktune"
    monkeypatch.setenv("QUICKTUNE_CACHE", str(tmp_path / "qt"))
    assert cache_root() == tmp_path / "qt"


def _tree(root: Path) -> list[tuple[str, int]]:
    return sorted((str(p.relative_to(root)), p.lstat().st_mtime_ns) for p in root.rglob("*"))


@pytest.fixture
def coral_weights(tmp_path, monkeypatch):
    """A writable weights folder holding one Coral file (a symlink), and an XDG cache elsewhere."""
    src = shared_path("weights", "coral", "mobilenet_v1_0.25_128_quant.tflite")
    wd = tmp_path / "weights"
    wd.mkdir()
    (wd / src.name).symlink_to(src)
    for var in ("QUICKTUNE_CACHE", "QUICKTUNE_CONVERTED_CACHE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return wd


def test_the_weights_folder_is_never_written(coral_weights, tmp_path):
    before = _tree(coral_weights)
    a = hub.create_model("mobilenetv1_025.coral_in1k", weights_dir=coral_weights)
    assert _tree(coral_weights) == before  # no .converted/ (or anything else) in the user's folder
    cached = list((tmp_path / "xdg" / "quicktune" / "converted").glob("mobilenetv1_025.coral_in1k-*.pth"))
    assert len(cached) == 1
    b = hub.create_model("mobilenetv1_025.coral_in1k", weights_dir=coral_weights)  # from the cache
    for (k, v), w in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(v, w), k


class _Planted:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ['PLANT_MARKER']}",))


def test_a_planted_or_wrong_conversion_cache_is_converted_again(coral_weights, tmp_path, monkeypatch):
    good = hub.create_model("mobilenetv1_025.coral_in1k", weights_dir=coral_weights).state_dict()
    cached = next((tmp_path / "xdg" / "quicktune" / "converted").glob("*.pth"))
    marker = tmp_path / "code-ran"
    monkeypatch.setenv("PLANT_MARKER", str(marker))
    for planted in ({"weight": _Planted()}, {"wrong.key": torch.zeros(3)}):
        torch.save(planted, cached)
        sd = hub.create_model("mobilenetv1_025.coral_in1k", weights_dir=coral_weights).state_dict()
        assert not marker.exists()
        assert all(torch.equal(sd[k], good[k]) for k in good)
