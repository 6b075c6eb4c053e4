"""Acquisition functions and the Quick-Tune ask/tell optimizer."""

from quicktune.optimizer.acquisition import (
    cost_aware_ei,
    expected_improvement,
    log_cost_aware_ei,
    log_expected_improvement,
)
from quicktune.optimizer.quicktune import QuickTune

__all__ = [
    "QuickTune",
    "cost_aware_ei",
    "expected_improvement",
    "log_cost_aware_ei",
    "log_expected_improvement",
]
