"""The Ray executor (runs only where the optional `ray` extra is installed; deselect with -m "not ray")."""

from __future__ import annotations

from pathlib import Path

import pytest

from quicktune.collect import plan_collection, run_collection, sample_hyperparameters
from quicktune.data import TaskSpec
from quicktune.metadataset.storage import MetaDatasetStore
from tests.helpers import make_image_folder

pytestmark = [pytest.mark.ray, pytest.mark.slow]

MODELS = ["test_efficientnet", "test_resnet"]


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _rows(store: Path) -> set[tuple[str, int, float]]:
    return {(r.run_key, int(r.epoch), float(r.val_acc)) for r in MetaDatasetStore(store).read().itertuples()}


def test_ray_executor_matches_the_local_one(ray_cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUICKTUNE_CACHE", str(tmp_path / "cache"))  # Ray workers inherit the driver's env
    folder = make_image_folder(tmp_path / "colours", classes=3, per_class=12, val_per_class=4, split=True, size=16)

    def plan(store: Path, work: Path):
        return plan_collection([TaskSpec(str(folder), size=16)], MODELS, sample_hyperparameters(2, seed=0), 2, store,
                               pretrained=False, batch_size=16, work_dir=work)

    events = []
    summary = run_collection(plan(tmp_path / "ray", tmp_path / "w1"), executor="ray", workers=2, threads=1,
                             on_event=events.append)
    assert summary.failed == [] and summary.finished == 4 and summary.epochs_trained == 8
    assert sum(e["kind"] == "epoch" for e in events) == 8  # progress came back through the Ray queue
    run_collection(plan(tmp_path / "local", tmp_path / "w2"), executor="local", workers=1, threads=1)
    assert _rows(tmp_path / "ray") == _rows(tmp_path / "local") and len(_rows(tmp_path / "ray")) == 8
    assert plan(tmp_path / "ray", tmp_path / "w1").jobs == []  # a rerun finds everything done
