"""What the hub says about a model: its descriptors for the surrogate, and the hub's error."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class HubError(ValueError):
    """An unknown model name, or a known model whose weights are not in the weights dir."""


@dataclass(frozen=True)
class ModelInfo:
    name: str
    arch: str
    source_dataset: str
    num_source_classes: int
    n_params: int
    num_features: int
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def descriptors(self) -> dict[str, float]:
        """Numeric descriptors of the model for the surrogate."""
        return {
            "log10_params": math.log10(max(self.n_params, 1)),
            "input_size": float(self.input_size),
            "num_features": float(self.num_features),
            "num_source_classes": float(self.num_source_classes),
        }

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ModelInfo:
        names = {f.name for f in fields(cls)}
        missing = names - d.keys()
        if missing:
            raise HubError(f"a model's JSON must hold every ModelInfo field, but {sorted(missing)} are missing")
        kw = {k: d[k] for k in names}
        kw["mean"], kw["std"] = tuple(kw["mean"]), tuple(kw["std"])
        return cls(**kw)
