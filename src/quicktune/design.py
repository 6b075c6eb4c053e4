"""Every rule about which configs exist and how they train, in one place below its users.

- `HyperparameterRanges`: the space the meta-dataset was collected on (Li et al. 2020 style): ELR
  log-uniform, weight decay log-uniform or exactly 0 with some probability, momentum from a set.
  `collect` samples it at random (`sample_hyperparameters`), `suggest` covers it with a scrambled
  Sobol design (`sobol_hyperparameters`): both read the same ranges, so a surrogate meta-trained
  on collected runs is asked about configs from the region it learned.
- `training_size`: the resolution a model trains at (its input size, capped on a CPU).

Errors are `ValueError`s stating the rule and the value; they name arguments, not CLI options.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class HyperparameterRanges:
    """The default search space of (ELR, weight decay, momentum)."""

    elr: tuple[float, float] = (1e-3, 1.0)  # log-uniform
    weight_decay: tuple[float, float] = (1e-6, 1e-2)  # log-uniform ...
    p_zero_weight_decay: float = 0.2  # ... or exactly 0 with this probability
    momenta: tuple[float, ...] = (0.0, 0.5, 0.9)


DEFAULT_RANGES = HyperparameterRanges()
# Module-level names kept for the callers that read them directly.
ELR_RANGE = DEFAULT_RANGES.elr
WEIGHT_DECAY_RANGE = DEFAULT_RANGES.weight_decay
P_ZERO_WEIGHT_DECAY = DEFAULT_RANGES.p_zero_weight_decay
MOMENTA = DEFAULT_RANGES.momenta


def _check_n(n: int) -> None:
    if n < 1:
        raise ValueError(f"`n >= 1` configs must be asked for, but got n={n}")


def sample_hyperparameters(n: int, seed: int = 0, ranges: HyperparameterRanges = DEFAULT_RANGES) -> list[dict[str, float]]:
    """`n` random (elr, weight_decay, momentum) draws from `ranges`, reproducible by `seed`."""
    _check_n(n)
    rng = np.random.default_rng([seed, 0xC0FF16])
    out = []
    for _ in range(n):
        elr = 10 ** rng.uniform(math.log10(ranges.elr[0]), math.log10(ranges.elr[1]))
        wd_draw = 10 ** rng.uniform(math.log10(ranges.weight_decay[0]), math.log10(ranges.weight_decay[1]))
        wd = 0.0 if rng.random() < ranges.p_zero_weight_decay else wd_draw
        momentum = float(ranges.momenta[int(rng.integers(len(ranges.momenta)))])
        # 4 significant digits: readable in tables, and stable under a JSON round trip.
        out.append({"elr": float(f"{elr:.4g}"), "weight_decay": float(f"{wd:.4g}"), "momentum": momentum})
    return out


def _round(x: float, digits: int = 3) -> float:
    return float(f"{x:.{digits}g}")


def sobol_hyperparameters(n: int, seed: int = 0, ranges: HyperparameterRanges = DEFAULT_RANGES) -> list[dict[str, float]]:
    """`n` (elr, weight_decay, momentum) points of a scrambled Sobol design (seeded) over `ranges`:
    ELR log-uniform, weight decay 0 with probability p_zero_weight_decay else log-uniform,
    momentum one of `momenta`. Quasi-random rather than random: n points cover the space evenly,
    with no clumps or holes."""
    import torch
    from torch.quasirandom import SobolEngine

    _check_n(n)
    # torch's Sobol engine (torch is loaded anyway; scipy.stats alone takes seconds to import).
    seed_int = int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, 0x5097]).generate_state(1)[0])
    engine = SobolEngine(dimension=3, scramble=True, seed=seed_int)  # type: ignore[no-untyped-call]  # (unannotated in torch)
    u = engine.draw(n, dtype=torch.float64).numpy()
    lo_e, hi_e = math.log10(ranges.elr[0]), math.log10(ranges.elr[1])
    lo_w, hi_w = math.log10(ranges.weight_decay[0]), math.log10(ranges.weight_decay[1])
    p0 = ranges.p_zero_weight_decay
    out = []
    for a, b, c in u:
        elr = 10 ** (lo_e + a * (hi_e - lo_e))
        wd = 0.0 if b < p0 else 10 ** (lo_w + (b - p0) / (1 - p0) * (hi_w - lo_w))
        mom = float(ranges.momenta[min(int(c * len(ranges.momenta)), len(ranges.momenta) - 1)])
        out.append({"elr": _round(elr), "weight_decay": _round(wd) if wd else 0.0, "momentum": mom})
    return out


def training_size(input_size: int, max_image_size: int | None) -> int:
    """The resolution a model trains at: its input size, capped at `max_image_size` when given."""
    if max_image_size is not None and max_image_size < 4:
        raise ValueError(f"`max_image_size >= 4` must hold, but got max_image_size={max_image_size}")
    return int(input_size if max_image_size is None else min(input_size, max_image_size))
