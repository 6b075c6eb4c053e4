"""The recipe's hyperparameters really act in the Finetuner (tiny timm models, pretrained=False or
weights written here; nothing downloads)."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch

from quicktune.data import TaskData, load_task
from quicktune.finetune import Finetuner
from quicktune.hub import create_model, list_models
from quicktune.space import Config
from tests.helpers import make_image_folder

MODEL = "test_efficientnet"


@pytest.fixture(scope="module")
def task(tmp_path_factory: pytest.TempPathFactory) -> TaskData:
    root = make_image_folder(tmp_path_factory.mktemp("rr") / "colours", classes=3, per_class=11, val_per_class=4,
                             split=True, size=16)
    return load_task(root, size=16, cache_dir=None)


def _ft(task: TaskData, extras: dict, ckpt: Path | None = None, elr: float = 0.1, **kw) -> Finetuner:
    return Finetuner(task, Config(MODEL, elr, 1e-4, 0.9, extras), 3, seed=0, checkpoint_dir=ckpt, pretrained=False,
                     batch_size=8, device="cpu", **kw)


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_freeze_embedding_keeps_the_stem_and_trains_the_rest(task: TaskData) -> None:
    ft = _ft(task, {"freeze_embedding": True})
    before = _weights(ft.model)
    ft.train_until(1)
    after = ft.model.state_dict()
    assert torch.equal(after["conv_stem.weight"], before["conv_stem.weight"])
    assert torch.equal(after["bn1.weight"], before["bn1.weight"])
    assert not torch.equal(after["classifier.weight"], before["classifier.weight"])
    assert not torch.equal(after["blocks.0.0.conv.weight"], before["blocks.0.0.conv.weight"])


def test_l2sp_keeps_the_backbone_near_its_start(task: TaskData) -> None:
    def drift(extras: dict) -> float:
        ft = _ft(task, extras, elr=0.3)
        w0 = _weights(ft.model)
        ft.train_until(2)
        w = ft.model.state_dict()
        return sum(float((w[k].float() - w0[k].float()).pow(2).sum()) for k in w0
                   if not k.startswith("classifier") and w0[k].is_floating_point())

    assert drift({"sp_reg": 30.0}) < 0.8 * drift({})


@pytest.mark.parametrize("extras", [
    {"sched": "plateau", "patience_epochs": 0, "decay_rate": 0.5, "mixup": 0.4, "cutmix": 1.0, "smoothing": 0.1},
    {"sched": "cosine", "warmup_epochs": 1, "optimizer": "adamw", "opt_betas": "[0.9, 0.99]",
     "data_augmentation": "trivial_augment", "clip_grad": 1.0},
    {"sched": "step", "decay_epochs": 1, "optimizer": "nesterov", "sp_reg": 0.01, "pct_to_freeze": 0.4, "drop": 0.2},
])
def test_recipes_resume_exactly(task: TaskData, tmp_path: Path, extras: dict) -> None:
    elr = 1e-3 if extras.get("optimizer") == "adamw" else 0.1
    whole = _ft(task, extras, elr=elr)
    whole.train_until(3)
    part = _ft(task, extras, tmp_path / "ck", elr=elr)
    part.train_until(1)
    resumed = _ft(task, extras, tmp_path / "ck", elr=elr)  # a new process: from the checkpoint
    resumed.train_until(3)
    assert resumed.curve == whole.curve
    assert [r.lr for r in resumed.results] == [r.lr for r in whole.results]
    assert all(torch.equal(a, b) for a, b in zip(resumed.model.state_dict().values(),
                                                 whole.model.state_dict().values()))


def test_schedule_and_warmup_drive_the_recorded_lr(task: TaskData) -> None:
    ft = _ft(task, {"sched": "step", "decay_epochs": 1, "decay_rate": 0.5, "optimizer": "momentum"})
    ft.train_until(3)
    lr = ft.config.lr
    assert [r.lr for r in ft.results] == pytest.approx([lr * 0.5, lr * 0.25, lr * 0.125])
    warm = _ft(task, {"sched": "cosine", "warmup_epochs": 2, "warmup_lr": 1e-4})
    warm.train_until(1)
    assert warm.results[0].lr == pytest.approx(1e-4 + (lr - 1e-4) / 2)  # lr for epoch 2, halfway up


def test_drop_rate_reaches_the_model(task: TaskData) -> None:
    assert _ft(task, {"drop": 0.3}).model.drop_rate == 0.3


def test_linear_probing_trains_only_the_head(task: TaskData) -> None:
    ft = _ft(task, {"linear_probing": True})
    assert {n for n, p in ft.model.named_parameters() if p.requires_grad} == {"classifier.weight", "classifier.bias"}


def test_bad_recipe_is_refused_at_construction(task: TaskData) -> None:
    with pytest.raises(ValueError, match="sched"):
        _ft(task, {"sched": "linear"})


def test_timm_weights_file_named_after_the_model(task: TaskData, tmp_path: Path) -> None:
    """Offline timm weights: <weights-dir>/<timm name>.safetensors (or .pth), a plain timm state dict."""
    from safetensors.torch import save_file

    name = "test_vit.r160_in1k"
    src = timm.create_model(name, pretrained=False)
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(tmp_path / f"{name}.safetensors"))
    assert name in list_models(tmp_path)
    model = create_model(name, num_classes=3, weights_dir=tmp_path, pretrained=True)
    assert torch.equal(model.patch_embed.proj.weight, src.patch_embed.proj.weight)
    assert model.get_classifier().out_features == 3
    torch.save(timm.create_model("test_resnet", pretrained=False).state_dict(), tmp_path / "test_resnet.pth")
    assert "test_resnet" in list_models(tmp_path)
