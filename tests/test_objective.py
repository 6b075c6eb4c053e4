from __future__ import annotations

from pathlib import Path

import pytest

from quicktune.metadataset.storage import MetaDatasetStore
from quicktune.objective import FinetuneObjective
from quicktune.protocol import Objective, Trial
from quicktune.space import Config, SearchSpace
from tests.helpers import make_image_folder

MODEL = "test_efficientnet"


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUICKTUNE_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_image_folder(tmp_path_factory.mktemp("obj") / "colours", classes=3, per_class=12, val_per_class=4,
                             split=True, size=16)


@pytest.fixture
def space() -> SearchSpace:
    return SearchSpace([Config(MODEL, 0.1, 1e-4, 0.9), Config(MODEL, 0.01, 0.0, 0.5)])


def _objective(space: SearchSpace, folder: Path, workdir: Path, store=None) -> FinetuneObjective:
    return FinetuneObjective(space, f"{folder}:size=16", max_epochs=3, workdir=workdir, store=store,
                             pretrained=False, batch_size=16)


def test_freeze_thaw_trains_only_new_epochs(space: SearchSpace, folder: Path, tmp_path: Path) -> None:
    store = MetaDatasetStore(tmp_path / "store")
    obj = _objective(space, folder, tmp_path / "work", store)
    assert isinstance(obj, Objective)
    o1 = obj.evaluate(Trial(0, 1))
    assert len(o1.curve) == 1 and len(o1.epoch_seconds) == 1 and o1.seconds >= o1.epoch_seconds[0]
    assert not o1.finished
    o2 = obj.evaluate(Trial(0, 3))
    assert o2.curve[0] == o1.curve[0] and len(o2.curve) == 3 and len(o2.epoch_seconds) == 2
    assert o2.finished
    again = obj.evaluate(Trial(0, 3))
    assert again.seconds == 0.0 and again.epoch_seconds == () and again.curve == o2.curve
    df = store.read()
    assert sorted(df["epoch"]) == [1, 2, 3] and df["val_acc"].tolist() == list(o2.curve)
    assert set(df["source"]) == {"suggest"}


def test_a_new_objective_resumes_from_the_workdir(space: SearchSpace, folder: Path, tmp_path: Path) -> None:
    first = _objective(space, folder, tmp_path / "work")
    first.evaluate(Trial(1, 2))
    first.evaluate(Trial(0, 1))
    resumed = _objective(space, folder, tmp_path / "work")
    hist = {o.trial.config_id: o for o in resumed.history()}
    assert set(hist) == {0, 1} and len(hist[1].curve) == 2 and len(hist[0].curve) == 1
    cont = resumed.evaluate(Trial(1, 3))
    assert len(cont.epoch_seconds) == 1 and cont.curve[:2] == hist[1].curve
    # identical to a run that was never interrupted
    fresh = _objective(space, folder, tmp_path / "other").evaluate(Trial(1, 3))
    assert fresh.curve == cont.curve


def test_a_lost_store_row_is_written_back(space: SearchSpace, folder: Path, tmp_path: Path) -> None:
    # a kill between the checkpoint and the store append: the next objective fills the gap
    _objective(space, folder, tmp_path / "work").evaluate(Trial(0, 2))  # no store at all
    store = MetaDatasetStore(tmp_path / "store")
    obj = _objective(space, folder, tmp_path / "work", store)
    obs = obj.evaluate(Trial(0, 3))
    assert sorted(store.read()["epoch"]) == [1, 2, 3]
    assert store.read()["val_acc"].tolist() == list(obs.curve)


def test_bad_config_id(space: SearchSpace, folder: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="config_id"):
        _objective(space, folder, tmp_path / "w").evaluate(Trial(5, 1))
