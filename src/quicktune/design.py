"""Every rule about which configs exist and how they train, in one place below its users.

- `HyperparameterRanges`: the space the meta-dataset was collected on (Li et al. 2020 style): ELR
  log-uniform, weight decay log-uniform or exactly 0 with some probability, momentum from a set.
  `collect` samples it at random (`sample_hyperparameters`), `suggest` covers it with a scrambled
  Sobol design (`sobol_hyperparameters`): both read the same ranges, so a surrogate meta-trained
  on collected runs is asked about configs from the region it learned.
- `recipe_hyperparameters`: random points of the fine-tuner's further dimensions (optimizer
  family, schedule and warm-up, frozen embedding, L2-SP), the space metadataset/v2 adds; the
  campaign's `random` phase draws them, and `suggest` adds them to its candidates when the
  surrogate was meta-trained on runs that vary them.
- `training_size`: the resolution a model trains at (its input size, capped on a CPU).

Errors are `ValueError`s stating the rule and the value; they name arguments, not CLI options.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

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


# The schedules v2 runs, set to act within its 5-epoch horizon (timm's defaults would never act:
# step decay_epochs 90, plateau patience 10); a config without `sched` keeps v1's per-update cosine.
STEP: dict[str, Any] = {"sched": "step", "decay_epochs": 2, "decay_rate": 0.1}  # x0.1 after epochs 2, 4
PLATEAU: dict[str, Any] = {"sched": "plateau", "patience_epochs": 1, "decay_rate": 0.1}  # x0.1 after 1 flat epoch
COSINE: dict[str, Any] = {"sched": "cosine"}  # timm's per-epoch cosine
ADAMW_WEIGHT_DECAY = 0.05  # decoupled: timm's / Kumar et al.'s usual AdamW fine-tuning value
RECIPE_EXTRAS = ("optimizer", "sched", "decay_epochs", "decay_rate", "patience_epochs", "warmup_epochs",
                 "freeze_embedding", "sp_reg")


def recipe_hyperparameters(n: int, seed: int = 2, weight_decay: float = 1e-4) -> list[dict[str, Any]]:
    """`n` random points of the recipe space (seeded): optimizer family (plain SGD, momentum SGD,
    AdamW), ELR (for AdamW: lr, which plays its role) log-uniform over the family's range, a
    schedule with or without one warm-up epoch, freeze_embedding, sp_reg. Off values stay absent,
    so a point with none of them is a v1 config. `weight_decay` is SGD's; AdamW's is decoupled."""
    _check_n(n)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        family = str(rng.choice(["sgd", "momentum-sgd", "adamw"]))
        lo, hi = (1e-4, 1e-2) if family == "adamw" else (1e-2, 1.0)
        elr = float(f"{10 ** rng.uniform(np.log10(lo), np.log10(hi)):.3g}")
        sched = [{}, STEP, PLATEAU, COSINE][int(rng.integers(4))]
        # v1's own cosine (no sched extra) has no warm-up: only timm's schedules take one
        extra: dict[str, Any] = {**sched, "warmup_epochs": int(rng.integers(2)) if sched else 0,
                                 "freeze_embedding": bool(rng.integers(2)),
                                 "sp_reg": float(rng.choice([0.0, 1e-2, 1e-1]))}
        extra = {k: v for k, v in extra.items() if v}
        if family == "adamw":
            out.append({"elr": elr, "weight_decay": ADAMW_WEIGHT_DECAY, "momentum": 0.9, "optimizer": "adamw", **extra})
        else:
            out.append({"elr": elr, "weight_decay": weight_decay, "momentum": 0.9 if family == "momentum-sgd" else 0.0,
                        **extra})
    return out


def training_size(input_size: int, max_image_size: int | None) -> int:
    """The resolution a model trains at: its input size, capped at `max_image_size` when given."""
    if max_image_size is not None and max_image_size < 4:
        raise ValueError(f"`max_image_size >= 4` must hold, but got max_image_size={max_image_size}")
    return int(input_size if max_image_size is None else min(input_size, max_image_size))
