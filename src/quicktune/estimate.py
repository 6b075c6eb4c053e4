"""An accuracy measured on images the search never saw, with its binomial 95% interval.

The search selects on validation accuracy, so the best validation accuracy is biased upwards (the
maximum of many noisy estimates). The chosen model's accuracy on a held-out test split is an
unbiased estimate of its accuracy on new data from the same distribution; with n test images
and k correct, k is binomial(n, p) and the interval is the Wilson score interval (scipy's
`binomtest(k, n).proportion_ci(method="wilson")`), which stays inside [0, 1] and keeps its
coverage near 0 and 1, where the normal approximation does not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

INTERVAL = "Wilson score interval (scipy.stats.binomtest(...).proportion_ci(method='wilson'))"
LABEL = "unbiased estimate: test images the search never saw"


@dataclass(frozen=True)
class AccuracyEstimate:
    """`correct` of `n` test images classified right; `level`: the interval's confidence."""

    correct: int
    n: int
    level: float = 0.95

    def __post_init__(self) -> None:
        if not 0 <= self.correct <= self.n or self.n < 1:
            raise ValueError(f"`0 <= correct <= n` and `n >= 1` must hold, but got correct={self.correct}, n={self.n}")
        if not 0.0 < self.level < 1.0:
            raise ValueError(f"`0 < level < 1` must hold, but got level={self.level}")

    @property
    def accuracy(self) -> float:
        return self.correct / self.n

    @property
    def interval(self) -> tuple[float, float]:
        from scipy.stats import binomtest

        ci = binomtest(self.correct, self.n).proportion_ci(confidence_level=self.level, method="wilson")
        return float(ci.low), float(ci.high)

    def to_dict(self) -> dict[str, Any]:
        lo, hi = self.interval
        return {"accuracy": self.accuracy, "ci95": [lo, hi], "correct": self.correct, "n": self.n,
                "interval": INTERVAL, "label": LABEL}

    def describe(self) -> str:
        lo, hi = self.interval
        return f"{self.accuracy:.4f} [{lo:.4f}, {hi:.4f}] ({self.correct}/{self.n})"


__all__ = ["AccuracyEstimate", "INTERVAL", "LABEL"]
