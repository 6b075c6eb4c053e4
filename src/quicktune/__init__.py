"""quicktune: which pretrained image model to fine-tune, and how (Quick-Tune, Arango et al. 2024).

The public API. Names are imported on first use (PEP 562), so `import quicktune` stays cheap
(the CLI reads `__version__` without loading torch).

    from quicktune import QuickTune, load_surrogate

    opt = QuickTune.from_surrogate(load_surrogate(), models=[...], data_features={...})
    trial = opt.ask()                      # config opt.space[trial.config_id], up to epoch trial.epoch
    opt.tell(trial, score=val_acc, seconds=epoch_seconds)
"""

from __future__ import annotations

import importlib
import warnings
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# gpytorch's linear_operator decorates functions with torch.jit.script at import, which this torch
# deprecates with a FutureWarning on every run: noise about a dependency the user can not act on.
warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)

_EXPORTS = {
    # the ask/tell protocol and the search space
    "Config": "quicktune.space",
    "SearchSpace": "quicktune.space",
    "Trial": "quicktune.protocol",
    "Observation": "quicktune.protocol",
    "Objective": "quicktune.protocol",
    "Optimizer": "quicktune.protocol",
    # optimizers
    "QuickTune": "quicktune.optimizer.quicktune",
    "RandomSearch": "quicktune.baselines",
    "GridSearch": "quicktune.baselines",
    "SuccessiveHalving": "quicktune.baselines",
    "Hyperband": "quicktune.baselines",
    "ASHA": "quicktune.asha",
    "AsyncHyperband": "quicktune.asha",
    # surrogates
    "Surrogate": "quicktune.surrogate.gp",
    "load_surrogate": "quicktune.surrogate.shipped",
    "shipped_surrogates": "quicktune.surrogate.shipped",
    "meta_train": "quicktune.surrogate.fit",
    # objectives
    "ReplayObjective": "quicktune.benchmark.replay",
    "FinetuneObjective": "quicktune.objective",
    # rules, data and meta-datasets
    "HyperparameterRanges": "quicktune.design",
    "sobol_hyperparameters": "quicktune.design",
    "sample_hyperparameters": "quicktune.design",
    "FeatureSettings": "quicktune.metadataset.schema",
    "TaskSpec": "quicktune.data",
    "load_task": "quicktune.data",
    "dataset_descriptors": "quicktune.features",
    "domain_features": "quicktune.features",
    "CurveTable": "quicktune.metadataset.tabular",
    "MetaDatasetStore": "quicktune.metadataset.storage",
    "open_metadataset": "quicktune.metadataset.loading",
    "merge_metadatasets": "quicktune.metadataset.merge",
    "create_model": "quicktune.hub",
}

# A literal list (type checkers read it; tests/test_public_api.py checks it against _EXPORTS).
__all__ = [
    "__version__",
    "ASHA",
    "AsyncHyperband",
    "Config",
    "CurveTable",
    "FeatureSettings",
    "FinetuneObjective",
    "GridSearch",
    "Hyperband",
    "HyperparameterRanges",
    "MetaDatasetStore",
    "Objective",
    "Observation",
    "Optimizer",
    "QuickTune",
    "RandomSearch",
    "ReplayObjective",
    "SearchSpace",
    "SuccessiveHalving",
    "Surrogate",
    "TaskSpec",
    "Trial",
    "create_model",
    "dataset_descriptors",
    "domain_features",
    "load_surrogate",
    "load_task",
    "merge_metadatasets",
    "meta_train",
    "open_metadataset",
    "sample_hyperparameters",
    "shipped_surrogates",
    "sobol_hyperparameters",
]

if TYPE_CHECKING:
    from quicktune.asha import ASHA, AsyncHyperband
    from quicktune.baselines import (
        GridSearch,
        Hyperband,
        RandomSearch,
        SuccessiveHalving,
    )
    from quicktune.benchmark.replay import ReplayObjective
    from quicktune.data import TaskSpec, load_task
    from quicktune.design import (
        HyperparameterRanges,
        sample_hyperparameters,
        sobol_hyperparameters,
    )
    from quicktune.features import dataset_descriptors, domain_features
    from quicktune.hub import create_model
    from quicktune.metadataset.loading import open_metadataset
    from quicktune.metadataset.merge import merge_metadatasets
    from quicktune.metadataset.schema import FeatureSettings
    from quicktune.metadataset.storage import MetaDatasetStore
    from quicktune.metadataset.tabular import CurveTable
    from quicktune.objective import FinetuneObjective
    from quicktune.optimizer.quicktune import QuickTune
    from quicktune.protocol import Objective, Observation, Optimizer, Trial
    from quicktune.space import Config, SearchSpace
    from quicktune.surrogate.fit import meta_train
    from quicktune.surrogate.gp import Surrogate
    from quicktune.surrogate.shipped import load_surrogate, shipped_surrogates


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'quicktune' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
