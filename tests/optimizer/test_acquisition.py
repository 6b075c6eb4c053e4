import math

import torch

from quicktune.optimizer.acquisition import (
    cost_aware_ei,
    expected_improvement,
    log_cost_aware_ei,
    log_expected_improvement,
)


def _t(*v):
    return torch.tensor(v, dtype=torch.float64)


def test_ei_is_non_negative_and_increasing_in_the_mean():
    mean = torch.linspace(-3, 3, 61, dtype=torch.float64)
    ei = expected_improvement(mean, torch.full_like(mean, 0.5), 0.0)
    assert (ei >= 0).all()
    assert (ei.diff() > 0).all()


def test_ei_increases_with_sigma_below_the_incumbent():
    sigma = torch.linspace(0.01, 3, 50, dtype=torch.float64)
    ei = expected_improvement(torch.full_like(sigma, -0.5), sigma, 0.0)
    assert (ei.diff() > 0).all()


def test_ei_is_finite_at_zero_sigma_and_equals_the_plain_improvement():
    ei = expected_improvement(_t(0.3, 0.7, 0.5), _t(0.0, 0.0, 0.0), 0.5)
    assert torch.allclose(ei, _t(0.0, 0.2, 0.0))
    log_ei = log_expected_improvement(_t(0.3, 0.7), _t(0.0, 0.0), 0.5)
    assert torch.isfinite(log_ei).all()
    assert math.isclose(float(log_ei[1]), math.log(0.2), rel_tol=1e-6)


def test_log_ei_matches_ei_and_stays_ordered_where_ei_underflows():
    mean, sigma = _t(-0.2, 0.0, 0.4), _t(0.1, 0.3, 0.2)
    assert torch.allclose(log_expected_improvement(mean, sigma, 0.1), expected_improvement(mean, sigma, 0.1).log())
    far = log_expected_improvement(_t(-50.0, -40.0), _t(0.1, 0.1), 0.0)
    assert expected_improvement(_t(-50.0), _t(0.1), 0.0) == 0  # plain EI underflows ...
    assert torch.isfinite(far).all() and far[1] > far[0]  # ... log EI still ranks them


def test_cost_aware_ei_prefers_the_cheaper_of_two_equal_candidates():
    mean, sigma, cost = _t(0.6, 0.6), _t(0.1, 0.1), _t(100.0, 10.0)
    ei = cost_aware_ei(mean, sigma, 0.55, cost)
    assert ei[1] > ei[0] and torch.allclose(ei[1], 10 * ei[0])
    log_ei = log_cost_aware_ei(mean, sigma, 0.55, cost.log())
    assert log_ei[1] > log_ei[0]
    assert torch.allclose(log_ei, ei.log())
