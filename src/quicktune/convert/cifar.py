"""akamaster/pytorch_resnet_cifar10 checkpoints -> state dicts for `quicktune.models.CifarResNet`."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn


def akamaster_state_dict(path: str | Path, model: nn.Module) -> dict[str, torch.Tensor]:
    """Read an akamaster `.th` file (a dict with 'state_dict' whose keys carry DataParallel's
    `module.` prefix) as a state dict that `model.load_state_dict(..., strict=True)` accepts."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    sd = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(sd, dict):
        raise ValueError(f"expected a dict with a 'state_dict' entry in {path}, but got {type(ckpt).__name__}")
    sd = {k.removeprefix("module."): v for k, v in sd.items()}
    # Checkpoints saved by torch < 0.4.1 lack the BatchNorm step counters, which hold no learned
    # state; adding them keeps the load strict for everything that matters.
    for name, m in model.named_modules():
        if isinstance(m, nn.BatchNorm2d) and f"{name}.num_batches_tracked" not in sd:
            sd[f"{name}.num_batches_tracked"] = torch.zeros((), dtype=torch.long)
    return sd
