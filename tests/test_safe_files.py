"""Issue 8 item 2: run checkpoints and the decoded-data cache are tensors + plain values, read
with weights_only=True; a planted file never runs code, and a damaged or wrong one is ignored
(the run retrained, the cache rebuilt), never a crash."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from quicktune.data import load_task
from quicktune.finetune import Finetuner
from quicktune.space import Config
from tests.helpers import make_image_folder

CFG = Config("test_resnet", elr=0.1, weight_decay=0.0, momentum=0.9)


class _Planted:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ['PLANT_MARKER']}",))


@pytest.fixture
def marker(tmp_path, monkeypatch):
    m = tmp_path / "code-ran"
    monkeypatch.setenv("PLANT_MARKER", str(m))
    return m


@pytest.fixture
def folder(tmp_path):
    return make_image_folder(tmp_path / "colours", classes=3, per_class=8, val_per_class=3, split=True, size=16)


def _ft(data, ckpt: Path) -> Finetuner:
    return Finetuner(data, CFG, 2, seed=0, checkpoint_dir=ckpt, pretrained=False, batch_size=8, num_threads=1)


def test_a_planted_or_damaged_checkpoint_is_ignored_and_the_run_retrained(folder, tmp_path, marker):
    data = load_task(folder, size=16, cache_dir=None)
    ref = _ft(data, tmp_path / "ref")
    ref.train_until(2)
    ckpt = tmp_path / "run" / "checkpoint.pt"
    ckpt.parent.mkdir()
    for planted in ({"run_key": "x", "results": [], "status": "ok", "model": _Planted()}, b"PK\x03\x04 cut short",
                    {"run_key": ref.run_key, "results": [{"epoch": 3}], "status": "ok"}):
        if isinstance(planted, bytes):
            ckpt.write_bytes(planted)
        else:
            torch.save(planted, ckpt)
        ft = _ft(data, ckpt.parent)
        assert ft.epochs_done == 0 and not marker.exists()
    ft.train_until(2)
    assert ft.curve == ref.curve  # retrained from epoch 1: the same run
    resumed = _ft(data, ckpt.parent)  # its own checkpoint loads (weights_only) and resumes
    assert resumed.curve == ref.curve and resumed.finished


def test_a_planted_or_wrong_data_cache_is_rebuilt(folder, tmp_path, marker):
    cache = tmp_path / "cache"
    good = load_task(folder, size=16, cache_dir=cache)
    files = sorted(cache.glob("*.pt"))
    assert len(files) == 2  # train/ and val/
    import quicktune.data.tasks as tasks

    for planted in ({"images": _Planted()},
                    {"images": torch.zeros(2, 3, 16, 16, dtype=torch.uint8), "labels": torch.zeros(2, dtype=torch.long),
                     "classes": ["other", "classes"], "channels": torch.zeros(2), "sides": torch.zeros(2),
                     "unreadable": []}):
        for f in files:
            torch.save(planted, f)
        again = load_task(folder, size=16, cache_dir=cache)
        assert not marker.exists()
        assert torch.equal(again.train.images, good.train.images) and torch.equal(again.val.labels, good.val.labels)
    # ... and the rebuilt cache is read back without decoding any image
    real = tasks._decode
    tasks._decode = lambda *a, **k: (_ for _ in ()).throw(AssertionError("decoded although cached"))
    try:
        assert torch.equal(load_task(folder, size=16, cache_dir=cache).train.images, good.train.images)
    finally:
        tasks._decode = real
