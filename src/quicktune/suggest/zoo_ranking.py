"""Zero-shot ranking over a model zoo carried by a surrogate (`--zoo quicktune`): no weights, no
network, no forward pass. The target is described only by what the meta-dataset's datasets were
described by (its dataset descriptors, from a scan of the folder); candidates are the zoo's models
x a seeded sample of the recorded hyperparameter space.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from quicktune.suggest.errors import SuggestError
from quicktune.suggest.ranking import Prediction, zero_shot
from quicktune.suggest.target import TaskFeatures

# Two-sided normal quantiles of the reported intervals.
_Z = {"68": 0.994457883, "95": 1.959963985}


@dataclass
class ZooRanking:
    """What `rank_zoo` found: the ranked predictions and how it got them."""

    zoo: Any  # quicktune.zoo.Zoo
    predictions: list[Prediction]
    descriptors: dict[str, float]
    epochs: int
    seconds: float

    def row(self, p: Prediction, rank: int) -> dict[str, Any]:
        """One JSON-able row: the model, every hyperparameter, the timm train.py flags, the predicted
        accuracy with its uncertainty and intervals, the predicted cost in the zoo's unit."""
        from quicktune.zoo.flags import train_py_flags

        c = p.config
        hps = {"elr": c.elr, "lr": c.lr, "momentum": c.momentum, "weight_decay": c.weight_decay,
               "optimizer": c.optimizer, **{k: v for k, v in c.extra_items() if k != "optimizer"}}
        flags, only = train_py_flags(c, self.epochs)
        row: dict[str, Any] = {
            "rank": rank, "model": c.model, "recorded_name": self.zoo.recorded_name(c.model),
            "hyperparameters": hps, "timm_train_flags": " ".join(flags), "quicktune_only": only,
            "epochs": self.epochs, "predicted_accuracy": p.accuracy, "predicted_accuracy_std": p.std,
        }
        for level, z in _Z.items():
            row[f"interval_{level}"] = [max(0.0, p.accuracy - z * p.std), min(1.0, p.accuracy + z * p.std)]
        row["predicted_cost"] = p.seconds
        row["predicted_cost_per_epoch"] = p.seconds_per_epoch
        row["cost_unit"] = self.zoo.cost_unit
        return row


def rank_zoo(
    surrogate: Any,
    data: str,
    *,
    models: Sequence[str] | None = None,
    candidates: int = 32,
    seed: int = 0,
    epochs: int | None = None,
) -> ZooRanking:
    """Rank the zoo of `surrogate` for the image folder (task spec) `data`, zero-shot.

    Raises SuggestError (one line) when the surrogate carries no zoo or a model is unknown, and
    DataError for a folder that breaks the data rules.
    """
    from quicktune.data.describe import describe_folder
    from quicktune.zoo import Zoo

    t0 = time.perf_counter()
    zoo = Zoo.from_surrogate(surrogate)
    if zoo is None:
        raise SuggestError("this surrogate carries no model zoo (pass --surrogate quicktune, or use --zoo local)")
    try:
        names = zoo.resolve(models)
    except ValueError as e:
        raise SuggestError(str(e)) from None
    if candidates < 1:
        raise SuggestError(f"`--candidates >= 1` must hold, but got {candidates}")
    horizon = int(epochs or zoo.max_epochs)
    if not 1 <= horizon <= zoo.max_epochs:
        raise SuggestError(f"`1 <= --epochs <= {zoo.max_epochs}` (the {zoo.name} meta-dataset's horizon) must hold, "
                           f"but got {horizon}")
    descriptors = describe_folder(data)
    configs = zoo.candidates(names, candidates, seed)
    # Only dataset descriptors: (model, dataset) domain features need the weights, and the
    # surrogate was meta-trained to predict without them (their presence bits are 0).
    feats = TaskFeatures(dataset=descriptors, pairs={}, models={})
    # Epoch `horizon` of the meta-dataset's own schedule (its runs were all planned for
    # zoo.max_epochs epochs): what a user stopping there would see.
    preds = zero_shot(surrogate, configs, feats, horizon, horizon=zoo.max_epochs)
    return ZooRanking(zoo, preds, descriptors, horizon, time.perf_counter() - t0)


def format_interval(p: Prediction) -> str:
    return f"{p.accuracy:.3f}±{p.std:.3f}" if math.isfinite(p.std) else f"{p.accuracy:.3f}"


__all__ = ["ZooRanking", "format_interval", "rank_zoo"]
