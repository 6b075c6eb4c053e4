"""Re-calibrating folded BatchNorm layers on the task's images."""

from __future__ import annotations

from typing import Any

import torch

CALIBRATION_IMAGES = 256


def _is_folded(bn: torch.nn.modules.batchnorm._BatchNorm) -> bool:
    """A BatchNorm whose statistics are the identity (mean 0, variance 1): the normalisation was
    folded into the previous layer (e.g. weights converted from an inference-only format)."""
    if not bn.affine or bn.running_mean is None or bn.running_var is None:
        return False  # (without an affine map the statistics can not be re-expressed)
    return bool((bn.running_mean == 0).all() and ((bn.running_var - 1).abs() < 1e-3).all())


@torch.no_grad()
def calibrate_folded_batchnorm(model: torch.nn.Module, x: torch.Tensor, batch_size: int = 32) -> int:
    """Give folded BatchNorm layers the real statistics of their inputs on `x`, keeping the
    eval-mode function unchanged; returns how many layers were recalibrated.

    Why: a folded BN has running stats (0, 1) and carries the folded bias in its shift. Trained
    in train mode, it would normalise with batch statistics and wipe out that bias (the Coral
    MobileNets then output all-zero features). With stats (mu, sigma^2) measured here and
    gamma' = gamma * sqrt(sigma^2 + eps) / sqrt(var0 + eps), beta' = beta + gamma * (mu - mean0) /
    sqrt(var0 + eps), eval mode computes exactly what it did, and train mode starts close to it.
    BNs with real statistics are left alone: normalising with the target's batch statistics is
    what they were trained for (and what helps transfer, cf. AdaBN).
    (`quicktune.models.bn.recalibrate_bn` applies the same re-expression to every BN.)

    x: a (n x 3 x H x W) normalised float tensor (calibration images), run in chunks of
    `batch_size` so large inputs fit in memory.
    """
    folded = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and _is_folded(m)]
    if not folded:
        return 0
    sums: dict[int, list[Any]] = {id(m): [0.0, 0.0, 0] for m in folded}

    def hook(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        t = inputs[0].double()
        dims = [d for d in range(t.dim()) if d != 1]
        acc = sums[id(module)]
        acc[0] = acc[0] + t.sum(dims)
        acc[1] = acc[1] + (t * t).sum(dims)
        acc[2] += t.numel() // t.shape[1]

    handles = [m.register_forward_pre_hook(hook) for m in folded]
    was_training = model.training
    model.eval()
    try:
        for i in range(0, len(x), batch_size):
            model(x[i : i + batch_size])
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    for bn in folded:
        assert bn.running_mean is not None and bn.running_var is not None  # (_is_folded checked them)
        s1, s2, n = sums[id(bn)]
        mu = s1 / n
        var = (s2 / n - mu * mu).clamp_min(0.0)
        d0 = torch.sqrt(bn.running_var.double() + bn.eps)
        d1 = torch.sqrt(var + bn.eps)
        gamma = bn.weight.double()
        bn.bias.copy_((bn.bias.double() + gamma * (mu - bn.running_mean.double()) / d0).float())
        bn.weight.copy_((gamma * d1 / d0).float())
        bn.running_mean.copy_(mu.float())
        bn.running_var.copy_(var.float())
    return len(folded)
