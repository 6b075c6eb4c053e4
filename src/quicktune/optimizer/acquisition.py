"""Acquisition functions as pure functions of a posterior (mean, sigma) and an incumbent.

Maximisation throughout: improvement is `mean - best`. The log versions use botorch's
numerically stable log-EI helper (Ament et al., 2023), so a candidate far below the incumbent
still gets a finite, correctly ordered score instead of an EI that underflows to exactly 0 and
ties with every other hopeless candidate.
"""

from __future__ import annotations

import torch
from botorch.acquisition.analytic import _ei_helper, _log_ei_helper
from torch import Tensor

# Below this standard deviation the posterior is treated as exact: EI -> max(mean - best, 0).
SIGMA_FLOOR = 1e-12


def _standardise(mean: Tensor, sigma: Tensor, best: Tensor | float) -> tuple[Tensor, Tensor]:
    mean = torch.as_tensor(mean, dtype=torch.float64)
    sigma = torch.as_tensor(sigma, dtype=torch.float64).clamp_min(SIGMA_FLOOR)
    best = torch.as_tensor(best, dtype=torch.float64)
    return (mean - best) / sigma, sigma


def expected_improvement(mean: Tensor, sigma: Tensor, best: Tensor | float) -> Tensor:
    """EI = E[max(f - best, 0)] for f ~ N(mean, sigma^2); shapes broadcast, e.g. (n,) -> (n,).

    Non-negative, finite at sigma = 0 (where it is max(mean - best, 0)).
    """
    u, s = _standardise(mean, sigma, best)
    ei = s * _ei_helper(u)
    exact = torch.as_tensor(sigma, dtype=torch.float64) <= SIGMA_FLOOR
    direct = (torch.as_tensor(mean, dtype=torch.float64) - torch.as_tensor(best, dtype=torch.float64)).clamp_min(0.0)
    return torch.where(exact, direct, ei).clamp_min(0.0)


def log_expected_improvement(mean: Tensor, sigma: Tensor, best: Tensor | float) -> Tensor:
    """log EI, accurate where EI underflows; (n,) -> (n,). sigma is floored at SIGMA_FLOOR, so the
    result stays finite (and ordered by the standardised improvement) even at sigma = 0."""
    u, s = _standardise(mean, sigma, best)
    return torch.log(s) + _log_ei_helper(u)


def cost_aware_ei(mean: Tensor, sigma: Tensor, best: Tensor | float, cost: Tensor, exponent: float = 1.0) -> Tensor:
    """EI per unit cost: EI / cost^exponent (cost: predicted seconds of the step, > 0)."""
    cost = torch.as_tensor(cost, dtype=torch.float64)
    if bool((cost <= 0).any()):
        raise ValueError(f"`cost > 0` must hold, but got min cost {float(cost.min())}")
    return expected_improvement(mean, sigma, best) / cost**exponent


def log_cost_aware_ei(
    mean: Tensor, sigma: Tensor, best: Tensor | float, log_cost: Tensor, exponent: float = 1.0
) -> Tensor:
    """log(EI / cost^exponent) with the cost given as log seconds; (n,) -> (n,)."""
    return log_expected_improvement(mean, sigma, best) - exponent * torch.as_tensor(log_cost, dtype=torch.float64)
