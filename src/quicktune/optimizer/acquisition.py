"""Acquisition functions: they take the model (anything whose `posterior(x)` yields a
`Posterior`) and score input rows, as in botorch; botorch's analytic (Log)ExpectedImprovement
does the arithmetic (Ament et al. 2023: log EI stays finite and correctly ordered where EI
underflows to exactly 0 and would tie every hopeless candidate).

Maximisation throughout: improvement is `f - best`. `best` may differ per row (Quick-Tune
compares a candidate's next epoch with the best accuracy seen at that epoch). The functions of
(mean, sigma) at the bottom are the same acquisitions of a model with those moments.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from botorch.acquisition.analytic import ExpectedImprovement, LogExpectedImprovement
from botorch.exceptions.warnings import NumericsWarning
from botorch.models.model import Model
from botorch.posteriors.torch import TorchPosterior
from torch import Tensor
from torch.distributions import Normal

# Below this standard deviation the posterior is treated as exact: EI -> max(mean - best, 0).
SIGMA_FLOOR = 1e-12
DTYPE = torch.float64


class PosteriorModel(Model):
    """A model whose `posterior(x: (n x d))` yields a Posterior (mean, variance (n,)), seen as a
    one-output botorch Model over batches of single points: X (b x 1 x d) -> b Gaussians."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    @property
    def num_outputs(self) -> int:
        return 1

    def posterior(self, X: Tensor, output_indices: Any = None, observation_noise: Any = False,
                  posterior_transform: Any = None) -> TorchPosterior:
        flat = X.reshape(-1, X.shape[-1])
        p = self.model.posterior(flat)
        mean = torch.as_tensor(p.mean, dtype=DTYPE).reshape(*X.shape[:-1])
        var = torch.as_tensor(p.variance, dtype=DTYPE).clamp_min(0.0).reshape(*X.shape[:-1])
        # (b x q=1 x m=1) independent normals; no MultivariateNormal, which rounds variances
        # below 1e-10 up and would change the numbers.
        return TorchPosterior(Normal(mean.unsqueeze(-1), var.sqrt().unsqueeze(-1), validate_args=False))


def _best(best: Tensor | float, n: int) -> Tensor:
    # (b x 1): one incumbent per batch point, against the (b x m=1) posterior mean
    return torch.as_tensor(best, dtype=DTYPE).expand(n).clone().unsqueeze(-1)


class LogEI:
    """log EI of `model`'s posterior over `best` (a scalar or one per row); rows (n x d) -> (n,)."""

    def __init__(self, model: Any, best: Tensor | float) -> None:
        self.model = PosteriorModel(model)
        self.best = best

    def __call__(self, x: Tensor) -> Tensor:
        acq = LogExpectedImprovement(self.model, best_f=_best(self.best, x.shape[0]))
        with torch.no_grad():
            value: Tensor = acq(x.unsqueeze(-2))
            return value


class LogCostAwareEI(LogEI):
    """log(EI / cost^exponent) with the cost of each row given as log seconds (n,)."""

    def __init__(self, model: Any, best: Tensor | float, log_cost: Tensor | None = None, exponent: float = 1.0) -> None:
        super().__init__(model, best)
        self.log_cost = log_cost
        self.exponent = float(exponent)

    def __call__(self, x: Tensor) -> Tensor:
        score = super().__call__(x)
        if self.log_cost is None:
            return score
        return score - self.exponent * torch.as_tensor(self.log_cost, dtype=DTYPE)


class _Moments:
    """A 'model' that knows the posterior moments of rows 0..n-1 (rows are their own index)."""

    def __init__(self, mean: Tensor, sigma: Tensor) -> None:
        self.mean = torch.as_tensor(mean, dtype=DTYPE).reshape(-1)
        self.var = torch.as_tensor(sigma, dtype=DTYPE).reshape(-1).clamp_min(SIGMA_FLOOR) ** 2

    def rows(self) -> Tensor:
        return torch.arange(len(self.mean), dtype=DTYPE).unsqueeze(-1)

    def posterior(self, x: Tensor) -> Any:
        i = x[:, 0].long()
        return _Gaussian(self.mean[i], self.var[i])


class _Gaussian:
    def __init__(self, mean: Tensor, variance: Tensor) -> None:
        self.mean, self.variance = mean, variance


def _broadcast(mean: Tensor, sigma: Tensor, best: Tensor | float) -> tuple[Tensor, Tensor, Tensor]:
    # (torch.functional leaves broadcast_tensors / broadcast_shapes unannotated)
    m, s, b = torch.broadcast_tensors(  # type: ignore[no-untyped-call]
        torch.as_tensor(mean, dtype=DTYPE), torch.as_tensor(sigma, dtype=DTYPE), torch.as_tensor(best, dtype=DTYPE)
    )
    return m.reshape(-1), s.reshape(-1), b.reshape(-1)


def expected_improvement(mean: Tensor, sigma: Tensor, best: Tensor | float) -> Tensor:
    """EI = E[max(f - best, 0)] for f ~ N(mean, sigma^2); shapes broadcast, e.g. (n,) -> (n,).

    Non-negative, finite at sigma = 0 (where it is max(mean - best, 0)).
    """
    m, s, b = _broadcast(mean, sigma, best)
    shape = torch.broadcast_shapes(  # type: ignore[no-untyped-call]
        torch.as_tensor(mean).shape, torch.as_tensor(sigma).shape, torch.as_tensor(best).shape
    )
    moments = _Moments(m, s)
    with torch.no_grad(), warnings.catch_warnings():
        # botorch recommends log EI for optimisation (we do); plain EI is for reading values.
        warnings.simplefilter("ignore", NumericsWarning)
        ei = ExpectedImprovement(PosteriorModel(moments), best_f=_best(b, len(b)))(moments.rows().unsqueeze(-2))
    direct = (m - b).clamp_min(0.0)
    return torch.where(s <= SIGMA_FLOOR, direct, ei).clamp_min(0.0).reshape(shape)


def log_expected_improvement(mean: Tensor, sigma: Tensor, best: Tensor | float) -> Tensor:
    """log EI, accurate where EI underflows; (n,) -> (n,). sigma is floored, so the result stays
    finite (and ordered by the standardised improvement) even at sigma = 0."""
    m, s, b = _broadcast(mean, sigma, best)
    shape = torch.broadcast_shapes(  # type: ignore[no-untyped-call]
        torch.as_tensor(mean).shape, torch.as_tensor(sigma).shape, torch.as_tensor(best).shape
    )
    moments = _Moments(m, s)
    return LogEI(moments, b)(moments.rows()).reshape(shape)


def cost_aware_ei(mean: Tensor, sigma: Tensor, best: Tensor | float, cost: Tensor, exponent: float = 1.0) -> Tensor:
    """EI per unit cost: EI / cost^exponent (cost: predicted seconds of the step, > 0)."""
    cost = torch.as_tensor(cost, dtype=DTYPE)
    if bool((cost <= 0).any()):
        raise ValueError(f"`cost > 0` must hold, but got min cost {float(cost.min())}")
    return expected_improvement(mean, sigma, best) / cost**exponent


def log_cost_aware_ei(
    mean: Tensor, sigma: Tensor, best: Tensor | float, log_cost: Tensor, exponent: float = 1.0
) -> Tensor:
    """log(EI / cost^exponent) with the cost given as log seconds; (n,) -> (n,)."""
    return log_expected_improvement(mean, sigma, best) - exponent * torch.as_tensor(log_cost, dtype=DTYPE)
