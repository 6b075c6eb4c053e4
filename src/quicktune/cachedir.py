"""Where quicktune keeps its caches: one root, outside anything the user handed us.

    $QUICKTUNE_CACHE                  when set
    $XDG_CACHE_HOME/quicktune         else, when XDG_CACHE_HOME is set (the XDG base-directory spec)
    ~/.cache/quicktune                else

Under the root: data/ (decoded images), features/ (domain features), converted/ (weights converted
from published formats). Caches never go into the user's own folders (the weights folder, a data
folder, a store): those may be read-only, shared, or under version control, and a cache must be
safe to delete at any time.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """The root of every quicktune cache (see the module docstring)."""
    env = os.environ.get("QUICKTUNE_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    # The spec: a relative XDG path is invalid and must be ignored.
    if xdg and Path(xdg).expanduser().is_absolute():
        return Path(xdg).expanduser() / "quicktune"
    return Path.home() / ".cache" / "quicktune"


def cache_dir(kind: str, override_env: str | None = None) -> Path:
    """`cache_root()/kind`, or `$override_env` when that variable is set."""
    if override_env:
        env = os.environ.get(override_env)
        if env:
            return Path(env).expanduser()
    return cache_root() / kind


__all__ = ["cache_dir", "cache_root"]
