"""The candidate design: hyperparameter configs per model, and their fingerprint."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence

import numpy as np
import torch

from quicktune.collect import (
    ELR_RANGE,
    MOMENTA,
    P_ZERO_WEIGHT_DECAY,
    WEIGHT_DECAY_RANGE,
)
from quicktune.space import Config
from quicktune.suggest.errors import SuggestError

DEFAULT_CANDIDATES = 32  # hyperparameter configs per model


def _round(x: float, digits: int = 3) -> float:
    return float(f"{x:.{digits}g}")


def candidate_hyperparameters(n: int, seed: int = 0) -> list[dict[str, float]]:
    """`n` (elr, weight_decay, momentum) points of a scrambled Sobol design (seeded) over the
    collection's space: ELR log-uniform over ELR_RANGE, weight decay 0 with probability
    P_ZERO_WEIGHT_DECAY else log-uniform over WEIGHT_DECAY_RANGE, momentum one of MOMENTA.
    Quasi-random rather than random: n points cover the space evenly, with no clumps or holes."""
    from torch.quasirandom import SobolEngine

    if n < 1:
        raise SuggestError(f"`--candidates >= 1` must hold, but got {n}")
    # torch's Sobol engine (torch is loaded anyway; scipy.stats alone takes seconds to import).
    seed_int = int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, 0x5097]).generate_state(1)[0])
    u = SobolEngine(dimension=3, scramble=True, seed=seed_int).draw(n, dtype=torch.float64).numpy()
    lo_e, hi_e = math.log10(ELR_RANGE[0]), math.log10(ELR_RANGE[1])
    lo_w, hi_w = math.log10(WEIGHT_DECAY_RANGE[0]), math.log10(WEIGHT_DECAY_RANGE[1])
    out = []
    for a, b, c in u:
        elr = 10 ** (lo_e + a * (hi_e - lo_e))
        if b < P_ZERO_WEIGHT_DECAY:
            wd = 0.0
        else:
            wd = 10 ** (lo_w + (b - P_ZERO_WEIGHT_DECAY) / (1 - P_ZERO_WEIGHT_DECAY) * (hi_w - lo_w))
        mom = float(MOMENTA[min(int(c * len(MOMENTA)), len(MOMENTA) - 1)])
        out.append({"elr": _round(elr), "weight_decay": _round(wd) if wd else 0.0, "momentum": mom})
    return out


def make_candidates(models: Sequence[str], n: int, seed: int = 0) -> list[Config]:
    """models x the same `n` Sobol hyperparameter points (model-major), de-duplicated."""
    hps = candidate_hyperparameters(n, seed)
    configs = [Config(m, hp["elr"], hp["weight_decay"], hp["momentum"]) for m in models for hp in hps]
    return list(dict.fromkeys(configs))


def candidates_fingerprint(configs: Sequence[Config]) -> str:
    blob = json.dumps([c.to_dict() for c in configs], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
