"""A v1 config keeps its identity and its numerics through the timm-factory fine-tuner.

The reference below is v1's training procedure written out with plain torch (torch.optim.SGD /
Adam over model.parameters() and a LambdaLR cosine per update), on the same seeded draws; one epoch
of the Finetuner must give bit-identical weights.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from quicktune.data import TaskData, load_task
from quicktune.finetune import Finetuner
from quicktune.metadataset.schema import run_key
from quicktune.space import Config
from tests.helpers import make_image_folder

MODEL = "test_efficientnet"


@pytest.fixture(scope="module")
def task(tmp_path_factory: pytest.TempPathFactory) -> TaskData:
    root = make_image_folder(tmp_path_factory.mktemp("v1id") / "colours", classes=3, per_class=14, val_per_class=4,
                             split=True, size=16)
    return load_task(root, size=16, cache_dir=None)


def test_v1_run_keys_are_unchanged() -> None:
    # Literal keys computed before the fine-tuner gained its new hyperparameters.
    assert run_key("colours", Config("resnet20.cifar10", 0.1, 1e-4, 0.9), 0, 5) == "83bd0817c893d6d060d5"
    cfg = Config("resnet20.cifar10", 0.01, 0.0, 0.0, {"optimizer": "adamw"})
    assert run_key("colours", cfg, 1, 5, image_size=32) == "774650d43bbed1f32fde"


def _v1_reference(task: TaskData, config: Config, batch_size: int, max_epochs: int) -> dict[str, torch.Tensor]:
    """One epoch of v1's procedure (pretrained=False, so no BatchNorm calibration)."""
    from quicktune.finetune.epoch import _augment
    from quicktune.finetune.records import _epoch_seed
    from quicktune.hub import create_model, model_info

    torch.manual_seed(_epoch_seed(0, 0, 0))
    model = create_model(config.model, num_classes=task.n_classes, pretrained=False)
    if config.optimizer in ("adam", "adamw"):
        cls = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
        opt: torch.optim.Optimizer = cls(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                              weight_decay=config.weight_decay,
                              nesterov=config.optimizer == "nesterov" and config.momentum > 0)
    n = len(task.train)
    steps = n // batch_size + (1 if n % batch_size > 1 else 0)
    total = max_epochs * steps
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1.0 + math.cos(math.pi * min(s, total) / total)))
    info = model_info(config.model)
    mean = torch.tensor(info.mean).view(1, 3, 1, 1)
    std = torch.tensor(info.std).view(1, 3, 1, 1)
    torch.manual_seed(_epoch_seed(0, 1, 1))
    gen = torch.Generator().manual_seed(_epoch_seed(0, 1, 2))
    order = torch.randperm(n, generator=gen)
    model.train()
    for step in range(steps):
        idx = order[step * batch_size : (step + 1) * batch_size]
        x = (_augment(task.train.images[idx], gen).float().div_(255.0) - mean) / std
        loss = F.cross_entropy(model(x), task.train.labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("extras", [{}, {"optimizer": "nesterov"}, {"optimizer": "adamw"}, {"optimizer": "adam"}])
def test_one_epoch_of_a_v1_config_is_bit_identical(task: TaskData, extras: dict) -> None:
    elr = 1e-3 if extras.get("optimizer", "sgd").startswith("adam") else 0.1
    config = Config(MODEL, elr, 1e-3, 0.9, extras)
    ft = Finetuner(task, config, 3, seed=0, pretrained=False, batch_size=8, device="cpu")
    ft.train_until(1)
    ref = _v1_reference(task, config, 8, 3)
    got = ft.model.state_dict()
    assert set(got) == set(ref)
    for k in ref:
        assert torch.equal(got[k], ref[k]), k
