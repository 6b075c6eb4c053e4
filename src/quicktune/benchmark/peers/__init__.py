"""Real peers for the replay benchmark, one adapter each behind `peers.base.PeerOptimizer` (which
applies the benchmark's rules: nearest candidate, pause/resume vs stop-only charging, curves
end where their recordings end, incumbent = best at any epoch).

Every adapter imports its package lazily (only when the method is built), so the core install
does not need them: `pip install -e ".[peers]"` plus the `--no-deps` steps in the README.
The methods are registered in `quicktune.benchmark.methods.METHODS` (lazy references to the
adapters); `PEERS` lists their names; `available(name)` tells whether its package imports.
"""

from __future__ import annotations

import importlib.util

PEERS: tuple[str, ...] = ("qtt", "optuna", "smac", "dehb", "synetune-asha", "synetune-bohb", "best-default")

# The package each peer needs (import name).
PACKAGES: dict[str, tuple[str, ...]] = {
    "qtt": ("qtt", "ConfigSpace"),
    "optuna": ("optuna",),
    "smac": ("smac", "ConfigSpace"),
    "dehb": ("dehb", "ConfigSpace"),
    "synetune-asha": ("syne_tune",),
    "synetune-bohb": ("syne_tune", "statsmodels"),
    "best-default": (),
}


def available(name: str) -> bool:
    """True when every package peer `name` needs can be imported."""
    return all(importlib.util.find_spec(p) is not None for p in PACKAGES[name])
