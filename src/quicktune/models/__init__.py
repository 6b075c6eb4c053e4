"""Model code that timm does not provide: the classic CIFAR ResNet, BatchNorm recalibration."""

from quicktune.models.bn import recalibrate_bn
from quicktune.models.cifar_resnet import CIFAR_RESNET_DEPTHS, CifarResNet, cifar_resnet

__all__ = ["CIFAR_RESNET_DEPTHS", "CifarResNet", "cifar_resnet", "recalibrate_bn"]
