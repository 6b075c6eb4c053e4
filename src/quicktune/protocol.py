"""The ask/tell contract shared by every optimizer (random, grid, Hyperband, Quick-Tune) and
every objective (a replay of recorded curves, or real fine-tuning).

An optimizer proposes a `Trial`: "train candidate `config_id` up to epoch `epoch`". Runs are
freeze-thaw: asking again for a higher epoch of the same config *continues* it, so the objective
only trains (and charges) the new epochs. The objective answers with an `Observation` holding
the whole curve seen so far for that config.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

from quicktune.space import SearchSpace


@dataclass(frozen=True)
class Trial:
    """Train candidate `config_id` (an index into the search space) up to epoch `epoch` (1-based).

    `restart=True` starts the run again from epoch 1 (its earlier epochs are discarded and paid
    again): what a stop-only strategy (Optuna, ASHA) does when it proposes a config it ran before.
    """

    config_id: int
    epoch: int
    restart: bool = False

    def __post_init__(self) -> None:
        if self.epoch < 1:
            raise ValueError(f"`epoch >= 1` must hold, but got epoch={self.epoch} for config {self.config_id}")


@dataclass(frozen=True)
class Observation:
    """What the objective saw for one trial.

    curve:    validation accuracy in [0, 1] for epochs 1..k of this config (all epochs so far, not
              only the new ones). NaN marks a diverged epoch. k < trial.epoch when the run could
              not go further (it ended, diverged, or the recording stops there).
    seconds:  compute charged for this trial (only the epochs newly trained).
    epoch_seconds: per-epoch seconds of the newly trained epochs (len = k - previous k).
    finished: True when the config can not be continued beyond epoch k.
    """

    trial: Trial
    curve: tuple[float, ...]
    seconds: float
    epoch_seconds: tuple[float, ...] = field(default=())
    finished: bool = False

    @property
    def epochs(self) -> int:
        return len(self.curve)

    @property
    def best(self) -> float:
        """Best finite accuracy on the curve (NaN when none is finite)."""
        finite = [v for v in self.curve if not math.isnan(v)]
        return max(finite) if finite else math.nan


class Objective(ABC):
    """Answers trials. `space` holds the candidates; `max_epochs` is the epoch horizon."""

    space: SearchSpace
    max_epochs: int

    @abstractmethod
    def evaluate(self, trial: Trial) -> Observation:
        """Train (or replay) `trial.config_id` up to `trial.epoch`, continuing where it stopped."""


class Optimizer(ABC):
    """Proposes trials (`ask`) and learns from their observations (`tell`).

    The base class keeps the bookkeeping every strategy needs: the curve observed so far per
    config and which configs can not be continued.
    """

    def __init__(self, space: SearchSpace, max_epochs: int, seed: int = 0) -> None:
        if max_epochs < 1:
            raise ValueError(f"`max_epochs >= 1` must hold, but got max_epochs={max_epochs}")
        self.space = space
        self.max_epochs = int(max_epochs)
        self.seed = seed
        self.curves: dict[int, tuple[float, ...]] = {}
        self.finished: set[int] = set()

    @abstractmethod
    def ask(self) -> Trial | None:
        """The next trial, or None when the strategy has nothing left to try."""

    def tell(self, observation: Observation) -> None:
        cid = observation.trial.config_id
        self.curves[cid] = tuple(observation.curve)
        if observation.finished or observation.epochs >= self.max_epochs:
            self.finished.add(cid)

    def epochs_done(self, config_id: int) -> int:
        return len(self.curves.get(config_id, ()))

    def can_continue(self, config_id: int) -> bool:
        return config_id not in self.finished and self.epochs_done(config_id) < self.max_epochs

    def incumbent(self) -> tuple[int, float] | None:
        """(config_id, accuracy) of the best finite accuracy observed so far, or None."""
        best: tuple[int, float] | None = None
        for cid, curve in self.curves.items():
            for v in curve:
                if not math.isnan(v) and (best is None or v > best[1]):
                    best = (cid, v)
        return best


def unstarted(optimizer: Optimizer, candidates: Sequence[int] | None = None) -> list[int]:
    """Config ids that have no observation yet (in candidate order)."""
    ids = range(len(optimizer.space)) if candidates is None else candidates
    return [i for i in ids if i not in optimizer.curves]
