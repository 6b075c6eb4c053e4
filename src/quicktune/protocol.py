"""The ask/tell contract shared by every optimizer (random, grid, Hyperband, Quick-Tune) and
every objective (a replay of recorded curves, or real fine-tuning).

An optimizer proposes a `Trial`: "train candidate `config_id` up to epoch `epoch`". Runs are
freeze-thaw: asking again for a higher epoch of the same config *continues* it, so the objective
only trains (and charges) the new epochs. The objective answers with an `Observation` holding
the whole curve seen so far for that config.

One protocol for 1 or N workers: `ask()` may be called again before earlier trials are told.
Every asked trial is *pending* until its observation is told (or it is `release`d, e.g. its
worker died). The base class enforces, for every strategy, that a pending config is never
proposed again (a strategy that tries raises, so the bug can not pass silently as a run trained
twice at once), and strategies see `pending` to plan around it (Quick-Tune conditions its
surrogate on the pending trials, the baselines skip them). `ask()` returns None when nothing can
be proposed *now*: with nothing pending that means the strategy is exhausted; with trials pending
it may only be waiting for them (synchronous successive halving waits for its rung), so a pool
of workers asks again after the next `tell`.
"""

from __future__ import annotations

import functools
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
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
    config, which configs can not be continued, and which trials are pending (asked, not yet
    told). Subclasses implement `ask` (and may extend `tell`, calling `super().tell`); the base
    class wraps every subclass's `ask` so that the trial it returns is registered as pending and a
    config already pending is refused (RuntimeError), and every `tell` so that it ends the pending
    state, whatever the subclass does.
    """

    def __init__(self, space: SearchSpace, max_epochs: int, seed: int = 0) -> None:
        if max_epochs < 1:
            raise ValueError(f"`max_epochs >= 1` must hold, but got max_epochs={max_epochs}")
        self.space = space
        self.max_epochs = int(max_epochs)
        self.seed = seed
        self.curves: dict[int, tuple[float, ...]] = {}
        self.finished: set[int] = set()
        self.pending: dict[int, Trial] = {}  # config id -> the trial asked and not told yet
        self._depth = 0  # nesting of wrapped ask() calls (a subclass calling super().ask())

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "ask" in cls.__dict__:
            cls.ask = _pending_ask(cls.__dict__["ask"])  # type: ignore[method-assign,assignment]
        if "tell" in cls.__dict__:
            cls.tell = _pending_tell(cls.__dict__["tell"])  # type: ignore[method-assign]

    @abstractmethod
    def ask(self) -> Trial | None:
        """The next trial, or None when nothing can be proposed now (see the module docstring);
        it never names a config of `pending`."""

    def tell(self, observation: Observation | Trial, score: float | Sequence[float] | None = None,
             seconds: float | None = None) -> None:
        """Learn from an observation; or, for a training loop of one epoch per trial,
        `tell(trial, score=val_acc, seconds=epoch_seconds)`: the optimizer keeps the curve."""
        observation = self.as_observation(observation, score, seconds)
        cid = observation.trial.config_id
        self.pending.pop(cid, None)
        self.curves[cid] = tuple(observation.curve)
        if observation.finished or observation.epochs >= self.max_epochs:
            self.finished.add(cid)

    def as_observation(self, observation: Observation | Trial, score: float | Sequence[float] | None = None,
                       seconds: float | None = None) -> Observation:
        """`observation` itself, or the Observation of `trial` from the scores of its new epochs:
        `score` is the accuracy after epoch `trial.epoch` when that is one epoch past the curve
        told so far (Quick-Tune's steps), else the list of accuracies of every new epoch; `seconds`
        the compute they took (spread evenly over them)."""
        if isinstance(observation, Observation):
            if score is not None or seconds is not None:
                raise TypeError("score and seconds go with a Trial; an Observation already holds its curve")
            return observation
        trial = observation
        if score is None:
            raise TypeError(f"tell({trial}) needs score=the accuracy it reached (or an Observation)")
        done = self.epochs_done(trial.config_id)
        new = [float(score)] if isinstance(score, (int, float)) else [float(v) for v in score]
        if done + len(new) != trial.epoch:
            raise ValueError(
                f"tell(trial, score=...) gives the accuracy of each new epoch: config {trial.config_id} had {done} "
                f"epoch(s) told and the trial ends at epoch {trial.epoch}, so {trial.epoch - done} score(s) must be "
                f"given, but got {len(new)}"
            )
        s = float(seconds) if seconds is not None else 0.0
        per_epoch = tuple([s / len(new)] * len(new)) if seconds is not None and new else ()
        return Observation(trial, self.curves.get(trial.config_id, ()) + tuple(new), s, per_epoch)

    def add_pending(self, trial: Trial) -> None:
        """Mark `trial` as running although this optimizer did not ask it (a resumed search
        restarting the runs that were in flight when it was killed)."""
        if trial.config_id in self.pending:
            raise RuntimeError(f"config {trial.config_id} is already pending ({self.pending[trial.config_id]})")
        self.pending[trial.config_id] = trial

    def release(self, trial: Trial) -> None:
        """Forget a pending trial that will never be told (its worker failed); the config may be
        proposed again."""
        if self.pending.get(trial.config_id) == trial:
            del self.pending[trial.config_id]

    def is_pending(self, config_id: int) -> bool:
        return config_id in self.pending

    def epochs_done(self, config_id: int) -> int:
        return len(self.curves.get(config_id, ()))

    def can_continue(self, config_id: int) -> bool:
        """True when `config_id`'s run can go on: not finished and below the horizon."""
        return config_id not in self.finished and self.epochs_done(config_id) < self.max_epochs

    def can_propose(self, config_id: int) -> bool:
        """True when a trial of `config_id` may be asked now: it can go on and is not pending."""
        return config_id not in self.pending and self.can_continue(config_id)

    def incumbent(self) -> tuple[int, float] | None:
        """(config_id, accuracy) of the best finite accuracy observed so far, or None."""
        best: tuple[int, float] | None = None
        for cid, curve in self.curves.items():
            for v in curve:
                if not math.isnan(v) and (best is None or v > best[1]):
                    best = (cid, v)
        return best


def _pending_ask(ask: Callable[[Optimizer], Trial | None]) -> Callable[[Optimizer], Trial | None]:
    @functools.wraps(ask)
    def wrapped(self: Optimizer) -> Trial | None:
        self._depth += 1
        try:
            trial = ask(self)
        finally:
            self._depth -= 1
        if trial is not None and self._depth == 0:  # only the outermost call registers
            if trial.config_id in self.pending:
                raise RuntimeError(
                    f"{type(self).__name__} proposed config {trial.config_id} again while "
                    f"{self.pending[trial.config_id]} is still pending; a strategy must skip `pending` configs"
                )
            self.pending[trial.config_id] = trial
        return trial

    return wrapped


def _pending_tell(tell: Callable[[Optimizer, Observation], None]) -> Callable[..., None]:
    @functools.wraps(tell)
    def wrapped(self: Optimizer, observation: Observation | Trial, score: float | Sequence[float] | None = None,
                seconds: float | None = None) -> None:
        obs = self.as_observation(observation, score, seconds)  # strategies only ever see Observations
        self.pending.pop(obs.trial.config_id, None)  # first: the strategy's tell sees it settled
        tell(self, obs)

    return wrapped
