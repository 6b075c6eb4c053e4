"""Building models: descriptors without weights, pretrained models, and local checkpoints."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from quicktune.atomic import atomic_write
from quicktune.hub.convert_cache import _atomic_save, converted_state_dict
from quicktune.hub.info import IMAGENET_MEAN, IMAGENET_STD, HubError, ModelInfo
from quicktune.hub.registry import REGISTRY
from quicktune.hub.weights import _is_timm_name, _local_checkpoints, _not_timm, _unknown, _wdir, timm_weights_file

def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _timm_arch_name(name: str) -> str:
    return name.split(".", 1)[0]


def _source_dataset_from_tag(name: str, num_classes: int) -> str:
    tag = name.split(".", 1)[1] if "." in name else ""
    for key, dataset in (("in22k", "imagenet-22k"), ("in21k", "imagenet-21k"), ("in12k", "imagenet-12k"),
                         ("laion", "laion-2b"), ("openai", "openai-wit"), ("in1k", "imagenet-1k")):
        if key in tag:
            # e.g. "in22k_ft_in1k": pretrained on the large set, classifier fine-tuned on ImageNet-1k
            return f"{dataset}+imagenet-1k" if key != "in1k" and "ft_in1k" in tag else dataset
    return "imagenet-1k" if num_classes == 1000 else "unknown"


def _build_local(json_path: Path, num_classes: int, **extra_timm_kwargs: Any) -> nn.Module:
    meta = json.loads(json_path.read_text())
    arch = meta.get("arch")
    if not arch:
        raise HubError(f"{json_path} must name the architecture under 'arch', but it has no such key")
    builder = meta.get("builder") or {}
    if extra_timm_kwargs and (arch.startswith("cifar_resnet") or builder):
        raise _not_timm(json_path.stem, extra_timm_kwargs)
    if arch.startswith("cifar_resnet"):
        from quicktune.models.cifar_resnet import CifarResNet

        return CifarResNet(depth=int(arch.removeprefix("cifar_resnet")), num_classes=num_classes)
    if builder.get("kind") == "tf_mobilenet":
        from quicktune.convert.coral import build_tf_mobilenet

        return build_tf_mobilenet(builder["version"], builder["multiplier"], num_classes, builder["input_size"])
    import timm

    timm_kwargs = meta.get("timm_kwargs", {})
    model = timm.create_model(arch, pretrained=False, num_classes=num_classes, **timm_kwargs, **extra_timm_kwargs)
    if timm_kwargs:
        # so save_checkpoint of a fine-tuned copy rebuilds it
        model.quicktune_timm_kwargs = dict(timm_kwargs)  # type: ignore[assignment]
    return model


@functools.lru_cache(maxsize=64)
def _info_cached(name: str, wd_key: str) -> ModelInfo:
    wd = Path(wd_key)
    local = _local_checkpoints(wd)
    if name in local:
        meta = json.loads(local[name].read_text())
        return ModelInfo.from_json({**meta, "name": name})
    entry = REGISTRY.get(name)
    if entry is not None:
        model: Any = entry.build(entry.num_source_classes)
        return ModelInfo(
            name=name, arch=entry.arch, source_dataset=entry.source_dataset,
            num_source_classes=entry.num_source_classes, n_params=_count(model),
            num_features=int(model.num_features), input_size=entry.input_size, mean=entry.mean, std=entry.std,
        )
    if _is_timm_name(name):
        import timm

        try:
            model = timm.create_model(name, pretrained=False)
        except RuntimeError as e:  # e.g. an unknown pretrained tag
            raise _unknown(name, wd, f"timm cannot build {name!r} ({e})") from e
        cfg = dict(getattr(model, "pretrained_cfg", {}) or {})
        ncls = int(cfg.get("num_classes", model.num_classes) or 0)
        mean = tuple(float(v) for v in cfg.get("mean", IMAGENET_MEAN))
        std = tuple(float(v) for v in cfg.get("std", IMAGENET_STD))
        return ModelInfo(
            name=name, arch=_timm_arch_name(name), source_dataset=_source_dataset_from_tag(name, ncls),
            num_source_classes=ncls, n_params=_count(model), num_features=int(model.num_features),
            input_size=int(cfg.get("input_size", (3, 224, 224))[-1]), mean=mean, std=std,  # type: ignore[arg-type]
        )
    raise _unknown(name, wd, f"unknown model {name!r}")


def model_info(name: str, weights_dir: str | os.PathLike[str] | None = None) -> ModelInfo:
    """Descriptors of `name` (no weights needed for registered and timm models)."""
    return _info_cached(name, str(_wdir(weights_dir).resolve()))


def model_descriptors(
    models: Iterable[str], weights_dir: str | os.PathLike[str] | None = None
) -> dict[str, dict[str, float]]:
    """{model: descriptors} for the models the hub can describe without downloading anything;
    models it does not know (e.g. those of an imported meta-dataset) are left out."""
    out: dict[str, dict[str, float]] = {}
    for m in models:
        try:
            out[m] = model_info(m, weights_dir).descriptors()
        except Exception:  # unknown name, or a timm model that would need the network
            continue
    return out


def _set_cfg(model: Any, info: ModelInfo) -> None:
    # timm-style metadata so timm.data.resolve_data_config(model=...) gives the right transform.
    cfg = dict(getattr(model, "pretrained_cfg", {}) or {})
    cfg.update(input_size=(3, info.input_size, info.input_size), mean=info.mean, std=info.std,
               num_classes=info.num_source_classes, hub_name=info.name, source_dataset=info.source_dataset)
    try:
        model.pretrained_cfg = cfg
        model.default_cfg = cfg
    except AttributeError:
        pass


def create_model(
    name: str,
    num_classes: int | None = None,
    weights_dir: str | os.PathLike[str] | None = None,
    pretrained: bool = True,
    **timm_kwargs: Any,
) -> nn.Module:
    """Build model `name`, with its pretrained weights unless pretrained=False.

    num_classes=None keeps the pretrained source classifier; an int replaces it by a freshly
    initialised head with that many outputs (drawn from torch's global RNG: seed before calling).
    `timm_kwargs` go to timm.create_model for timm names and local checkpoints of timm architectures
    (e.g. drop_rate); a converted or non-timm model refuses them.
    """
    if num_classes is not None and num_classes < 0:
        raise HubError(f"`num_classes >= 0` must hold, but got {num_classes=}")
    wd = _wdir(weights_dir)
    local = _local_checkpoints(wd)
    if name in local or name in REGISTRY:
        info = model_info(name, wd)
        if name in local:
            model = _build_local(local[name], info.num_source_classes, **timm_kwargs)
            if pretrained:
                sd = torch.load(local[name].with_suffix(".pth"), map_location="cpu", weights_only=True)
                model.load_state_dict(sd, strict=True)
        else:
            if timm_kwargs:
                raise _not_timm(name, timm_kwargs)
            entry = REGISTRY[name]
            model = entry.build(entry.num_source_classes)
            if pretrained:
                model.load_state_dict(converted_state_dict(name, wd), strict=True)
        _set_cfg(model, info)
        if num_classes is not None:
            model.reset_classifier(num_classes)  # type: ignore[operator]
        return model
    if _is_timm_name(name):
        import timm

        kw: dict[str, Any] = dict(timm_kwargs)
        if num_classes is not None:
            kw["num_classes"] = num_classes
        local_file = timm_weights_file(name, wd) if pretrained else None
        if local_file is not None:
            kw["pretrained_cfg_overlay"] = {**kw.get("pretrained_cfg_overlay", {}), "file": str(local_file)}
        try:
            return timm.create_model(name, pretrained=pretrained, **kw)
        except (OSError, RuntimeError) as e:
            if not pretrained:
                raise
            raise _unknown(name, wd, f"timm could not load pretrained weights for {name!r} ({e}); offline, put "
                                     f"a timm state dict at {wd / name}.safetensors or .pth", timm_hint=False) from e
    raise _unknown(name, wd, f"unknown model {name!r}")


def save_checkpoint(
    model: nn.Module, info: ModelInfo, weights_dir: str | os.PathLike[str] | None = None, **extra: Any
) -> Path:
    """Write `model` as a local checkpoint `<weights_dir>/<info.name>.pth` + `.json`, loadable by
    `create_model(info.name, weights_dir=...)`.

    `info.arch` must be a timm architecture name or `cifar_resnetN` (models built by this hub's
    converters record how to rebuild themselves). `num_source_classes` is taken from the model's
    current classifier, so a fine-tuned model saves its new head. `extra` is stored in the JSON.
    """
    wd = _wdir(weights_dir)
    wd.mkdir(parents=True, exist_ok=True)
    meta = {**info.to_json(), **extra}
    meta["num_source_classes"] = int(getattr(model, "num_classes", info.num_source_classes))
    builder = getattr(model, "quicktune_builder", None)
    if builder:
        meta["builder"] = dict(builder)
    timm_kwargs = getattr(model, "quicktune_timm_kwargs", None)
    if timm_kwargs and "timm_kwargs" not in meta:
        meta["timm_kwargs"] = dict(timm_kwargs)
    _atomic_save(model.state_dict(), wd / f"{info.name}.pth")
    with atomic_write(wd / f"{info.name}.json", "w") as f:
        f.write(json.dumps(meta, indent=2))
    _info_cached.cache_clear()
    return wd / f"{info.name}.pth"
