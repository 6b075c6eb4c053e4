"""The akamaster CIFAR-10 ResNets load strictly and classify the CIFAR-10 test JPEGs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from quicktune import hub
from quicktune.convert.cifar import akamaster_state_dict
from quicktune.models.cifar_resnet import CifarResNet
from tests.helpers import shared_path


def _test_split() -> tuple[torch.Tensor, torch.Tensor]:
    """All of cifar10-small/test as raw 0-1 pixels (n x 3 x 32 x 32) and labels in CIFAR-10's
    canonical class order (n,), mapped from the folder names."""
    from PIL import Image

    root = shared_path("data", "cifar10-small", "test")
    xs, ys = [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        label = hub.CIFAR10_CLASSES.index(folder.name)
        for f in sorted(folder.glob("*.jpg")):
            xs.append(torch.from_numpy(np.array(Image.open(f).convert("RGB"))).permute(2, 0, 1))
            ys.append(label)
    return torch.stack(xs).float() / 255.0, torch.tensor(ys)


def test_checkpoints_load_strictly():
    for depth in (20, 32, 44, 56):
        path = next(shared_path("weights", "cifar10-resnet").glob(f"resnet{depth}-*.th"))
        model = CifarResNet(depth)
        assert model.load_state_dict(akamaster_state_dict(path, model), strict=True) is not None


def test_resnet20_classifies_cifar10_test_images():
    weights = shared_path("weights")
    model = hub.create_model("resnet20.cifar10", weights_dir=weights).eval()
    info = hub.model_info("resnet20.cifar10", weights)
    x, y = _test_split()
    x = (x - torch.tensor(info.mean)[:, None, None]) / torch.tensor(info.std)[:, None, None]
    with torch.no_grad():
        acc = float((model(x).argmax(1) == y).float().mean())
    # The checkpoint scores 91.8 % on the original test set; the re-encoded JPEGs cost ~10 points
    # (measured 80.4 % on these 1000 images). A wrong architecture or class order gives ~10 %.
    assert len(y) >= 300 and acc > 0.75, acc


def test_a_checkpoint_without_state_dict_is_rejected(tmp_path):
    path = tmp_path / "x.th"
    torch.save([1, 2, 3], path)
    with pytest.raises(ValueError, match="state_dict"):
        akamaster_state_dict(path, CifarResNet(20))
