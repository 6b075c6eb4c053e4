"""The meta-learned deep-kernel GP surrogate and its cost model (see gp.py, nets.py, fit.py;
fit.py meta-trains on batches.py's batches and scores with scoring.py)."""

from quicktune.surrogate.fit import MetaTrainResult, meta_train, refit
from quicktune.surrogate.gp import DeepKernelGP, Surrogate
from quicktune.surrogate.nets import CostNet, FeatureExtractor, FeatureScaler, InputLayout, NetConfig
from quicktune.surrogate.scoring import evaluate

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
