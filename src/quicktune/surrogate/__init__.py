"""The meta-learned deep-kernel GP surrogate and its cost model (see gp.py, nets.py, fit.py)."""

from quicktune.surrogate.fit import MetaTrainResult, evaluate, meta_train, refit
from quicktune.surrogate.gp import DeepKernelGP, Surrogate
from quicktune.surrogate.nets import CostNet, FeatureExtractor, FeatureScaler, InputLayout, NetConfig

__all__ = [
    "CostNet",
    "DeepKernelGP",
    "FeatureExtractor",
    "FeatureScaler",
    "InputLayout",
    "MetaTrainResult",
    "NetConfig",
    "Surrogate",
    "evaluate",
    "meta_train",
    "refit",
]
