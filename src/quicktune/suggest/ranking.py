"""Zero-shot ranking: the surrogate's predicted curves for every candidate, no training."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from quicktune.space import Config
from quicktune.suggest.errors import SuggestError
from quicktune.suggest.target import TaskFeatures

DEFAULT_TOP = 10


# ------------------------------------------------------------------------------------------------
# Zero-shot ranking
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Prediction:
    """The surrogate's zero-shot guess for one candidate trained for `epochs` epochs."""

    config_id: int
    config: Config
    accuracy: float  # predicted validation accuracy after `epochs` epochs, clipped to [0, 1]
    std: float  # its predictive standard deviation (the GP's, observation noise included)
    seconds_per_epoch: float
    epochs: int

    @property
    def seconds(self) -> float:
        return self.seconds_per_epoch * self.epochs

    def to_dict(self) -> dict[str, Any]:
        c = self.config
        return {
            "model": c.model, "elr": c.elr, "lr": c.lr, "momentum": c.momentum, "weight_decay": c.weight_decay,
            "predicted_accuracy": self.accuracy, "predicted_accuracy_std": self.std, "epochs": self.epochs,
            "predicted_seconds_per_epoch": self.seconds_per_epoch, "predicted_seconds": self.seconds,
            "predicted_minutes": self.seconds / 60.0,
            # The recipe beyond (ELR, weight decay, momentum): optimizer, schedule, warm-up, frozen
            # embedding, L2-SP ... ({} for a plain momentum-SGD config, all a v1 surrogate knows).
            "extras": dict(c.extras),
        }


def zero_shot(
    surrogate: Any, configs: Sequence[Config], features: TaskFeatures, epochs: int, horizon: int | None = None
) -> list[Prediction]:
    """Every candidate's predicted accuracy at epoch `epochs` of a `horizon`-epoch run (default:
    an `epochs`-epoch run, budget 1; no curve observed) and its predicted cost, best predicted
    accuracy first (ties: candidate order)."""
    if epochs < 1:
        raise SuggestError(f"`epochs >= 1` must hold, but got {epochs}")
    n = len(configs)
    if n == 0:
        return []
    static = surrogate.static_inputs(configs, features.dataset, features.pairs, features.models)
    rows = surrogate.rows(static, np.full(n, epochs, dtype=int), [()] * n, horizon=horizon or epochs)
    surrogate.condition(None, None)  # the prior: nothing observed on this task
    mean, var = surrogate.posterior(rows)
    log_cost = surrogate.log_cost(static)
    # A recorded accuracy is the latent curve plus observation noise: the interval a user can
    # check against what they measure includes the noise.
    mean, std = mean.numpy(), torch.sqrt(var + surrogate.gp.noise).numpy()
    sec = np.exp(log_cost.numpy())
    order = sorted(range(n), key=lambda i: (-mean[i] if math.isfinite(mean[i]) else math.inf, i))
    # The surrogate's prior mean is inside (0, 1) already (a sigmoid); the clip guards a
    # constant-mean surrogate. Ranking uses the raw mean.
    acc = np.clip(mean, 0.0, 1.0)
    return [Prediction(i, configs[i], float(acc[i]), float(std[i]), float(sec[i]), int(epochs)) for i in order]
