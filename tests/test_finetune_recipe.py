from __future__ import annotations

import pytest
import torch

from quicktune.finetune.recipe import Recipe
from quicktune.finetune.timm_parts import make_optimizer, make_scheduler, timm_optimizer_name
from quicktune.space import Config


def test_a_config_without_extras_is_v1() -> None:
    r = Recipe.from_config(Config("m", 0.1))
    assert r.is_v1 and r.sched is None and r.timm_auto_augment is None
    assert Recipe.from_config(Config("m", 0.1, extras={"optimizer": "adamw"})).is_v1
    assert not Recipe.from_config(Config("m", 0.1, extras={"sched": "cosine"})).is_v1


def test_quicktune_recorded_values_are_read() -> None:
    # values as the Quick-Tune importer records them (strings for one-hot groups, -1 for "off")
    extras = {"sched": "plateau", "opt_betas": "[0.9, 0.99]", "clip_grad": -1.0, "layer_decay": -1.0,
              "data_augmentation": "random_augment", "ra_num_ops": 3, "ra_magnitude": 17, "auto_augment": "None",
              "warmup_epochs": 5, "warmup_lr": 0.0, "amp": 1, "linear_probing": 0, "pct_to_freeze": 0.2,
              "bss_reg": 0.0, "stoch_norm": 0, "sp_reg": 0.01, "patience_epochs": 2}
    r = Recipe.from_config(Config("m", 1e-3, extras={**extras, "optimizer": "adamw"}))
    assert r.sched == "plateau" and r.opt_betas == (0.9, 0.99) and r.clip_grad is None and r.layer_decay is None
    assert r.timm_auto_augment == "rand-m17-n3" and r.warmup_epochs == 5 and r.amp is True
    assert r.auto_augment == "v0" and r.sp_reg == 0.01 and not r.linear_probing


@pytest.mark.parametrize(("extras", "words"), [
    ({"sched": "linear"}, "sched"),
    ({"optimizer": "rmsprop2"}, "optimizer"),
    ({"smoothing": 1.5}, "smoothing"),
    ({"bss_reg": 0.1}, "bss_reg"),
    ({"warmup_epochs": 2.5}, "warmup_epochs"),
    ({"opt_betas": "[0.9]"}, "opt_betas"),
    ({"shced": "cosine"}, "shced"),
])
def test_bad_values_are_refused_in_one_line(extras: dict, words: str) -> None:
    with pytest.raises(ValueError, match=words) as e:
        Recipe.from_config(Config("m", 0.1, extras=extras))
    assert "\n" not in str(e.value)


def test_optimizer_names_map_onto_timm() -> None:
    # ours "sgd"/"momentum" = heavy-ball (timm "momentum"); ours "nesterov" = timm "sgd"
    assert timm_optimizer_name(Config("m", 0.1)) == "momentum"
    assert timm_optimizer_name(Config("m", 0.1, extras={"optimizer": "nesterov"})) == "sgd"
    assert timm_optimizer_name(Config("m", 0.1, 0.0, 0.0, {"optimizer": "nesterov"})) == "momentum"
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    opt = make_optimizer(model, Config("m", 0.1, 1e-3, 0.9), Recipe())
    # one group, weight decay on every parameter (biases and norms included), no Nesterov: v1
    assert len(opt.param_groups) == 1 and len(opt.param_groups[0]["params"]) == 4
    g = opt.param_groups[0]
    assert g["weight_decay"] == 1e-3 and g["nesterov"] is False and g["momentum"] == 0.9
    assert g["lr"] == pytest.approx(0.1 * (1 - 0.9))
    adam = make_optimizer(model, Config("m", 1e-3, 0.0, 0.9, {"optimizer": "adamw", "opt_betas": "[0.0, 0.99]"}),
                          Recipe(optimizer="adamw", opt_betas=(0.0, 0.99)))
    assert isinstance(adam, torch.optim.AdamW) and adam.param_groups[0]["betas"] == (0.0, 0.99)
    assert adam.param_groups[0]["lr"] == 1e-3  # Adam family: lr = ELR


def test_timm_schedules_with_warmup() -> None:
    def lrs(recipe: Recipe, accs: list[float] | None = None) -> list[float]:
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
        sched = make_scheduler(opt, recipe, max_epochs=10, steps_per_epoch=3)
        out = [opt.param_groups[0]["lr"]]
        for e in range(1, 10):
            sched.step(e, (accs or [0.5] * 10)[e - 1])
            out.append(opt.param_groups[0]["lr"])
        return out

    cos = lrs(Recipe(sched="cosine", warmup_epochs=2, warmup_lr=1e-3))
    assert cos[0] == pytest.approx(1e-3) and cos[2] == pytest.approx(0.1 * 0.5 * (1 + torch.cos(torch.tensor(0.2 * 3.14159265)).item()), rel=1e-4)
    assert all(a > b for a, b in zip(cos[2:], cos[3:]))
    step = lrs(Recipe(sched="step", decay_epochs=4, decay_rate=0.5))
    assert step[:4] == [0.1] * 4 and step[4] == pytest.approx(0.05) and step[8] == pytest.approx(0.025)
    plateau = lrs(Recipe(sched="plateau", patience_epochs=1, decay_rate=0.5), accs=[0.5] * 10)
    assert plateau[0] == 0.1 and plateau[-1] < 0.1  # flat accuracy: decays after the patience
