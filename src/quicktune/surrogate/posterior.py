"""What a surrogate yields: a Gaussian posterior over the accuracy at n input rows (botorch's
habit: the model only yields posteriors; acquisition functions consume them)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from torch import Tensor


@dataclass(frozen=True)
class Posterior:
    """Independent Gaussians at n points: `mean` (n,) and `variance` (n,) of the latent accuracy.

    Unpacks as `mean, variance = posterior` for callers that only need the two moments."""

    mean: Tensor
    variance: Tensor

    @property
    def stddev(self) -> Tensor:
        """(n,) standard deviations."""
        return self.variance.clamp_min(0.0).sqrt()

    def __iter__(self) -> Iterator[Tensor]:
        yield self.mean
        yield self.variance

    def __len__(self) -> int:
        return int(self.mean.shape[0])
