from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from quicktune.data import TaskData, load_task
from quicktune.finetune import Finetuner, run_identity
from quicktune.metadataset.schema import RUN_COLUMNS, run_key
from quicktune.metadataset.storage import MetaDatasetStore
from quicktune.space import Config
from tests.helpers import make_image_folder

MODEL = "test_efficientnet"  # a ~100k-parameter timm test architecture, random init (no weights)
CFG = Config(MODEL, elr=0.1, weight_decay=1e-4, momentum=0.9)


@pytest.fixture(scope="module")
def task(tmp_path_factory: pytest.TempPathFactory) -> TaskData:
    root = make_image_folder(tmp_path_factory.mktemp("ft") / "colours", classes=3, per_class=20, val_per_class=6,
                             split=True, size=16)
    return load_task(root, size=16, cache_dir=None)


def _ft(task: TaskData, ckpt: Path | None, config: Config = CFG, max_epochs: int = 4, **kw) -> Finetuner:
    return Finetuner(task, config, max_epochs, seed=0, checkpoint_dir=ckpt, pretrained=False, batch_size=16, **kw)


def test_accuracy_rises_above_chance(task: TaskData, tmp_path: Path) -> None:
    ft = _ft(task, tmp_path / "run")
    results = ft.train_until(4)
    assert [r.epoch for r in results] == [1, 2, 3, 4]
    assert all(r.status == "ok" and r.seconds > 0 for r in results)
    assert max(r.val_acc for r in results) > 1 / 3 + 0.25
    assert results[-1].train_loss < results[0].train_loss
    assert ft.finished and ft.train_until(10) == []
    # cosine over the fixed horizon: the rate falls to 0 at the last epoch
    assert results[-1].lr == pytest.approx(0.0, abs=1e-12) and results[0].lr < CFG.lr


def test_continuation_equals_an_uninterrupted_run(task: TaskData, tmp_path: Path) -> None:
    full = _ft(task, tmp_path / "full").train_until(4)
    first = _ft(task, tmp_path / "split").train_until(1)
    resumed = _ft(task, tmp_path / "split")  # a new object: state comes from the checkpoint only
    assert resumed.epochs_done == 1 and resumed.curve == [first[0].val_acc]
    middle = resumed.train_until(3)
    rest = _ft(task, tmp_path / "split").train_until(4)
    got = first + middle + rest
    assert [r.epoch for r in got] == [1, 2, 3, 4]
    assert [r.val_acc for r in got] == [r.val_acc for r in full]  # exact equality
    assert [r.val_loss for r in got] == [r.val_loss for r in full]
    assert [r.train_loss for r in got] == [r.train_loss for r in full]


def test_seed_changes_the_run(task: TaskData) -> None:
    a = Finetuner(task, CFG, 2, seed=0, pretrained=False, batch_size=16).train_until(2)
    b = Finetuner(task, CFG, 2, seed=1, pretrained=False, batch_size=16).train_until(2)
    assert [r.val_loss for r in a] != [r.val_loss for r in b]


def test_horizon_is_part_of_the_identity(task: TaskData) -> None:
    short = _ft(task, None, max_epochs=2)
    long = _ft(task, None, max_epochs=8)
    assert short.run_key != long.run_key
    # different horizons, different schedules: epoch 1 ends at a different learning rate
    assert short.train_until(1)[0].lr < long.train_until(1)[0].lr
    # a resolution chosen for the model (not named by the task) joins the run key, not the task name
    assert short.dataset == "colours"
    assert run_identity(task, CFG, 2, 0, pretrained=False, batch_size=16) == (short.dataset, short.run_key)
    assert short.run_key == run_key("colours", CFG, 0, 2, batch_size=16, pretrained=False, image_size=16)


def test_divergence_stops_the_run(task: TaskData, tmp_path: Path) -> None:
    wild = Config(MODEL, elr=1e12, weight_decay=0.0, momentum=0.0)
    ft = _ft(task, tmp_path / "wild", config=wild)
    results = ft.train_until(4)
    assert results[-1].status == "diverged" and math.isnan(results[-1].val_acc)
    assert ft.finished and ft.status == "diverged"
    assert len(results) < 4
    again = _ft(task, tmp_path / "wild", config=wild)
    assert again.finished and again.train_until(4) == []


def test_rows_fit_the_store(task: TaskData, tmp_path: Path) -> None:
    store = MetaDatasetStore(tmp_path / "store")
    ft = _ft(task, tmp_path / "run", max_epochs=2)
    ft.train_until(2, on_epoch=lambda r: store.append(ft.rows([r])))
    df = store.read()
    assert list(df.columns) == RUN_COLUMNS
    assert df["epoch"].tolist() == [1, 2] and (df["run_key"] == ft.run_key).all()
    assert df["lr"].iloc[0] == pytest.approx(0.1 * (1 - 0.9))
    assert df["val_acc"].tolist() == ft.curve
    assert (df["max_epochs"] == 2).all() and (df["status"] == "ok").all()


def test_checkpoints_are_written_atomically_and_shrunk_when_done(task: TaskData, tmp_path: Path) -> None:
    ft = _ft(task, tmp_path / "run", max_epochs=2, keep_model=False)
    ft.train_until(1)
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert state["model"] is not None and {"torch", "numpy", "python"} <= set(state["rng"])
    ft.train_until(2)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["checkpoint.pt"]  # no temp left over
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert state["model"] is None and len(state["results"]) == 2
    done = _ft(task, tmp_path / "run", max_epochs=2, keep_model=False)
    assert done.finished and done.curve == ft.curve
    done.delete_checkpoint()
    assert not (tmp_path / "run").exists()


def test_a_checkpoint_of_another_run_is_refused(task: TaskData, tmp_path: Path) -> None:
    _ft(task, tmp_path / "run", max_epochs=2).train_until(1)
    with pytest.raises(ValueError, match="belongs to run"):
        _ft(task, tmp_path / "run", max_epochs=3)


def test_save_model_round_trips_through_the_hub(task: TaskData, tmp_path: Path) -> None:
    from quicktune.hub import create_model

    ft = _ft(task, tmp_path / "run", max_epochs=1)
    ft.train_until(1)
    path = ft.save_model(tmp_path / "weights", name="colours-ft")
    assert path.exists()
    loaded = create_model("colours-ft", weights_dir=tmp_path / "weights").eval()
    ft.model.eval()
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(loaded(x), ft.model(x))


def test_folded_batchnorm_is_recalibrated_without_changing_the_eval_function() -> None:
    from quicktune.finetune import calibrate_folded_batchnorm

    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 8, 3, bias=False)
    bn = torch.nn.BatchNorm2d(8)
    model = torch.nn.Sequential(conv, bn, torch.nn.ReLU6())
    # fold: identity statistics, the shift carries the folded bias (here: mostly negative)
    with torch.no_grad():
        bn.running_mean.zero_()
        bn.running_var.fill_(1 - bn.eps)
        bn.weight.fill_(1.0)
        bn.bias.copy_(torch.linspace(-0.5, 0.2, 8))
    x = torch.randn(64, 3, 10, 10) * 0.1 + 0.3
    model.eval()
    before = model(x).detach()
    import copy

    naive = copy.deepcopy(model).train()  # what train mode does to folded BN without calibration
    assert not torch.allclose(naive(x), before, atol=1e-2)
    assert calibrate_folded_batchnorm(model, x) == 1
    model.eval()
    assert torch.allclose(model(x), before, atol=1e-5)
    assert not torch.allclose(bn.running_var, torch.ones(8))
    model.train()
    assert torch.allclose(model(x), before, atol=1e-4)  # batch stats == calibration stats here
    assert calibrate_folded_batchnorm(model, x) == 0  # real statistics are left alone


def test_the_best_epochs_weights_are_kept_and_handed_back(task: TaskData, tmp_path: Path) -> None:
    snapshots: dict[int, dict[str, torch.Tensor]] = {}
    ft = _ft(task, tmp_path / "run", keep_best=True)
    ft.train_until(3, on_epoch=lambda r: snapshots.update({r.epoch: {k: v.clone() for k, v in ft.model.state_dict().items()}}))
    best = ft.best_epoch
    # This run's best epoch is not its last (so the kept weights, not the current ones, are used).
    assert best is not None and best < ft.epochs_done and ft.curve[best - 1] == max(ft.curve)
    for which, epoch in (("best", best), ("last", 3)):
        # A new object: the weights come from the files, as after a restart.
        model, got = _ft(task, tmp_path / "run", keep_best=True).trained_model(which)
        assert got == epoch
        correct, n, _ = ft.score(task.val, model)
        assert correct / n == ft.curve[epoch - 1]
        assert all(torch.equal(v, snapshots[epoch][k]) for k, v in model.state_dict().items())
    with pytest.raises(RuntimeError, match="were not kept"):
        plain = _ft(task, tmp_path / "plain")
        plain.train_until(3)
        plain.trained_model("best")
