"""The classic CIFAR-10 ResNet (He et al. 2016, section 4.2), with timm's model interface.

Three stages of BasicBlocks with 16/32/64 channels, n blocks each (depth = 6n + 2), option-A
shortcuts (a strided identity whose missing channels are zero-padded, so shortcuts have no
parameters), global average pooling and a linear classifier 64 -> num_classes. Parameter names
match akamaster/pytorch_resnet_cifar10 (conv1, bn1, layer1..3, linear) so its checkpoints load
strictly once the `module.` prefix of DataParallel is stripped.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

CIFAR_RESNET_DEPTHS = (20, 32, 44, 56, 110)

# What akamaster trained with (torchvision's ImageNet statistics, 0-1 RGB scale).
CIFAR_RESNET_MEAN = (0.485, 0.456, 0.406)
CIFAR_RESNET_STD = (0.229, 0.224, 0.225)


class PadShortcut(nn.Module):
    """Option-A shortcut: subsample by 2 and zero-pad `pad` channels on each side (no parameters)."""

    def __init__(self, pad: int) -> None:
        super().__init__()
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        if stride != 1 or in_planes != planes:
            if planes - in_planes != 2 * (planes // 4):
                raise ValueError(
                    f"option-A shortcuts double the channels, but got ({in_planes=}, {planes=})"
                )
            self.shortcut: nn.Module = PadShortcut(planes // 4)
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """CIFAR ResNet-`depth` following timm's interface.

    forward(x) -> (n x num_classes) logits for x: a (n x 3 x H x W) tensor (native H = W = 32).
    forward_features(x) -> (n x 64 x H/4 x W/4) feature map.
    forward_head(f, pre_logits=True) -> (n x 64) pooled features.
    """

    def __init__(self, depth: int = 20, num_classes: int = 10, in_chans: int = 3) -> None:
        super().__init__()
        if depth < 8 or (depth - 2) % 6 != 0:
            raise ValueError(f"a CIFAR ResNet has depth 6n + 2 with n >= 1, but got {depth=}")
        n = (depth - 2) // 6
        self.depth = depth
        self.num_classes = num_classes
        self.num_features = 64
        self.conv1 = nn.Conv2d(in_chans, 16, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = self._make_layer(16, 16, n, stride=1)
        self.layer2 = self._make_layer(16, 32, n, stride=2)
        self.layer3 = self._make_layer(32, 64, n, stride=2)
        self.linear: nn.Module = nn.Linear(64, num_classes) if num_classes > 0 else nn.Identity()
        # timm-style metadata, so timm.data.resolve_data_config and friends work on this module.
        self.pretrained_cfg = dict(
            architecture=f"cifar_resnet{depth}", num_classes=num_classes, input_size=(3, 32, 32),
            mean=CIFAR_RESNET_MEAN, std=CIFAR_RESNET_STD, interpolation="bilinear", crop_pct=1.0,
            classifier="linear", first_conv="conv1",
        )
        self.default_cfg = self.pretrained_cfg
        self.apply(_kaiming_init)

    @staticmethod
    def _make_layer(in_planes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
        layers = [BasicBlock(in_planes, planes, stride)]
        layers += [BasicBlock(planes, planes, 1) for _ in range(blocks - 1)]
        return nn.Sequential(*layers)

    def get_classifier(self) -> nn.Module:
        return self.linear

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """Replace the classifier by a freshly initialised one (num_classes=0: identity, as in timm)."""
        if global_pool not in (None, "avg"):
            raise ValueError(f"the CIFAR ResNet only pools by average, but got {global_pool=}")
        self.num_classes = num_classes
        self.linear = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        self.pretrained_cfg = {**self.pretrained_cfg, "num_classes": num_classes}
        self.default_cfg = self.pretrained_cfg

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        out: torch.Tensor = self.layer3(self.layer2(self.layer1(x)))
        return out

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.mean(dim=(2, 3))
        return x if pre_logits else self.linear(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _kaiming_init(m: nn.Module) -> None:
    # As akamaster: He-normal for convs and the classifier, so a fresh net trains like theirs.
    if isinstance(m, (nn.Conv2d, nn.Linear)):
        nn.init.kaiming_normal_(m.weight)


def cifar_resnet(depth: int, num_classes: int = 10) -> CifarResNet:
    return CifarResNet(depth=depth, num_classes=num_classes)

