import copy

import torch
import torch.nn as nn

from quicktune.models.bn import recalibrate_bn


def _net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    )


def _folded(net: nn.Module) -> nn.Module:
    # Mimic a TFLite export: arbitrary conv scales, BN = identity plus bias (eval mode only).
    g = torch.Generator().manual_seed(1)
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            m.weight.data.mul_(torch.rand(m.out_channels, 1, 1, 1, generator=g) * 5)
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data.fill_(1.0)
            m.bias.data.normal_(generator=g)
            m.running_mean.zero_()
            m.running_var.fill_(1 - m.eps)
    return net


def test_eval_function_is_unchanged():
    torch.manual_seed(0)
    net = _folded(_net()).eval()
    x = torch.randn(16, 3, 12, 12) * 2 + 0.5
    with torch.no_grad():
        before = net(x)
        recalibrate_bn(net, x)
        after = net(x)
    assert torch.allclose(before, after, atol=1e-4, rtol=1e-4)
    assert not net.training


def _train_eval_gap(net: nn.Module, x: torch.Tensor) -> float:
    """Relative difference between train-mode (batch statistics) and eval-mode outputs."""
    net = copy.deepcopy(net)  # the train-mode pass updates running statistics
    with torch.no_grad():
        e = net.eval()(x)
        t = net.train()(x)
    return float((t - e).norm() / e.norm())


def test_train_mode_matches_eval_mode_after_recalibration():
    torch.manual_seed(0)
    net = _folded(_net()).eval()
    x = torch.randn(32, 3, 12, 12) * 2 + 0.5
    assert _train_eval_gap(net, x) > 0.3  # the folded BN is wrong in train mode...
    recalibrate_bn(net, x)
    assert _train_eval_gap(net, x) < 0.05  # ...and right after recalibration


def test_constant_channels_keep_their_parameters():
    bn = nn.BatchNorm2d(2).eval()
    bn.bias.data = torch.tensor([0.5, -0.5])
    x = torch.zeros(4, 2, 3, 3)
    x[:, 1] = torch.randn(4, 3, 3)
    recalibrate_bn(bn, x)
    assert bn.running_mean[0] == 0 and bn.running_var[0] == 1 and bn.weight[0] == 1
    assert bn.running_var[1] > 0.1
