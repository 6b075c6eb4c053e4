"""Scoring a surrogate the way the optimizer uses it: next-epoch predictions on validation
episodes (NLL, rank correlation) and the cost net's error."""

from __future__ import annotations

import math
from collections.abc import Sequence

import gpytorch
import numpy as np
import torch

from quicktune.surrogate.batches import Episode, TaskArrays
from quicktune.surrogate.gp import Surrogate

# What a numerically failed GP step or prediction raises (a rare ill-conditioned batch).
NUMERIC_ERRORS = (gpytorch.utils.errors.NotPSDError, RuntimeError, ValueError)


def _ranks(a: np.ndarray) -> np.ndarray:
    """Ranks with ties averaged (scipy's rankdata, without importing scipy.stats: it is slow)."""
    _, inv, cnt = np.unique(a, return_inverse=True, return_counts=True)
    start = np.cumsum(cnt) - cnt
    return (start + (cnt - 1) / 2.0)[inv]


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation; 0 when it is undefined (fewer than 3 points, a constant side)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 3 or np.std(a) == 0 or np.std(b) == 0:
        return 0.0
    r = np.corrcoef(_ranks(a), _ranks(b))[0, 1]
    return float(r) if np.isfinite(r) else 0.0


def evaluate(surrogate: Surrogate, episodes: Sequence[Episode]) -> dict[str, float]:
    """Mean predictive NLL (lower is better) and Spearman rank correlation of the next-epoch
    predictions over `episodes`. Leaves the surrogate conditioned on nothing."""
    nlls, rhos = [], []
    for ep in episodes:
        try:
            surrogate.condition(ep.context_x if len(ep.context_x) else None, ep.context_y)
            mu, var = surrogate.posterior(ep.query_x)
        except NUMERIC_ERRORS:
            nlls.append(math.inf)
            rhos.append(0.0)
            continue
        s2 = var + surrogate.gp.noise
        nll = 0.5 * (torch.log(2 * math.pi * s2) + (ep.query_y - mu) ** 2 / s2)
        nlls.append(float(nll.mean()))
        rhos.append(_spearman(mu.numpy(), ep.query_y.numpy()))
    surrogate.condition(None, None)
    return {"nll": float(np.mean(nlls)) if nlls else math.nan, "spearman": float(np.mean(rhos)) if rhos else math.nan}


def cost_rmse(surrogate: Surrogate, arrays: Sequence[TaskArrays]) -> float:
    """Root mean squared error of predicted log seconds per epoch over every recorded epoch."""
    errs = []
    for a in arrays:
        obs = np.nanmean(np.where(np.isfinite(a.log_cost), a.log_cost, np.nan), axis=1)  # per-run mean
        ok = np.isfinite(obs)
        if ok.any():
            pred = surrogate.log_cost(a.static[torch.as_tensor(np.flatnonzero(ok))]).numpy()
            errs.append((pred - obs[ok]) ** 2)
    return float(np.sqrt(np.concatenate(errs).mean())) if errs else math.nan
