"""Converted state dicts of registered models, cached in the user cache keyed by the source file's hash."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import torch

from quicktune.atomic import atomic_write
from quicktune.hub.registry import REGISTRY
from quicktune.hub.weights import _unknown, _wdir, weights_file

# Bump when a converter's output changes, so stale cached conversions are not reused.
CONVERTER_VERSION = 2


def converted_cache_dir(weights_dir: str | os.PathLike[str] | None = None) -> Path:
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


def converted_state_dict(name: str, weights_dir: str | os.PathLike[str] | None = None) -> dict[str, torch.Tensor]:
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
