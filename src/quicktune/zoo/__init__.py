"""Model zoos: named sets of models with the hyperparameter space they were recorded in (the
Quick-Tune timm zoo ships with a meta-trained surrogate; see `quicktune.zoo.quicktune`)."""

from quicktune.zoo.quicktune import ZOO_NAME, Zoo
from quicktune.zoo.recorded_space import RecordedSpace

__all__ = ["ZOO_NAME", "RecordedSpace", "Zoo"]
