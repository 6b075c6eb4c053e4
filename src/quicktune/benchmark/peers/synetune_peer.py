"""`synetune-asha` and `synetune-bohb`: Syne Tune 0.16's ASHA (random search) and BOHB (ASHA with
a KDE searcher) schedulers, driven directly: `suggest` -> `on_trial_add` -> one
`on_trial_result` per epoch until the scheduler says STOP (or `on_trial_complete` at the end of
the run). In 0.16 both are stopping schedulers (no pause/promotion), so both are stop-only: a
later trial mapped to a candidate that ran before trains it again from epoch 1. Syne Tune 0.16
no longer has DyHPO (removed in 0.14).

Syne Tune 0.16's random sampling (`Domain.sample()`) draws from numpy's global generator, so the
adapter gives the scheduler a generator of its own, seeded by the job's seed, swapped in around
every scheduler call: the search is reproducible and leaves the process's global state alone."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from typing import Any

import numpy as np

from quicktune.benchmark.methods import MethodContext
from quicktune.benchmark.peers.base import Job, PeerOptimizer
from quicktune.protocol import Observation
from quicktune.space import SearchSpace

METRIC, TIME_ATTR = "loss", "epoch"


class SyneTunePeer(PeerOptimizer):
    stop_only = True

    def __init__(self, space: SearchSpace, max_epochs: int, seed: int = 0, scheduler: str = "asha") -> None:
        super().__init__(space, max_epochs, seed)
        from syne_tune.config_space import choice, uniform
        from syne_tune.optimizer import baselines

        config_space: dict[str, Any] = {
            **{n: uniform(lo, hi) for n, (lo, hi) in self.domain.numeric.items()},
            **{n: choice(list(c)) for n, c in self.domain.categorical.items()},
        }
        cls = {"asha": baselines.ASHA, "bohb": baselines.BOHB}[scheduler]
        self._state = np.random.RandomState(seed).get_state()
        with self._rng():
            self.scheduler = cls(config_space, metric=METRIC, time_attr=TIME_ATTR, max_t=max_epochs,
                                 do_minimize=True, random_seed=seed)
        self._trial_cls = __import__("syne_tune.backend.trial_status", fromlist=["Trial"]).Trial
        self._stop = __import__("syne_tune.optimizer.scheduler", fromlist=["SchedulerDecision"]).SchedulerDecision.STOP
        self._next: Job | None = None
        self._trials = 0

    @contextlib.contextmanager
    def _rng(self) -> Iterator[None]:
        saved = np.random.get_state()
        np.random.set_state(self._state)
        try:
            yield
        finally:
            self._state = np.random.get_state()
            np.random.set_state(saved)

    def propose(self) -> Job | None:
        if self._next is not None:
            job, self._next = self._next, None
            return job
        with self._rng():
            suggestion = self.scheduler.suggest()
            if suggestion is None:
                return None
            trial = self._trial_cls(trial_id=self._trials, config=suggestion.config, creation_time=dt.datetime.now())
            self._trials += 1
            self.scheduler.on_trial_add(trial)
        return Job(self.nearest(suggestion.config), 1, new_run=True, token=trial)

    def observe(self, job: Job, observation: Observation) -> None:
        trial, epoch = job.token, job.epoch
        result = {METRIC: self.loss_at(observation, epoch), TIME_ATTR: epoch}
        with self._rng():
            if observation.finished or epoch >= self.max_epochs:
                self.scheduler.on_trial_complete(trial, result)
                return
            decision = self.scheduler.on_trial_result(trial, result)
        if decision != self._stop:
            self._next = Job(job.config_id, epoch + 1, token=trial)


def make_asha(space: SearchSpace, max_epochs: int, seed: int, context: MethodContext) -> SyneTunePeer:
    return SyneTunePeer(space, max_epochs, seed, scheduler="asha")


def make_bohb(space: SearchSpace, max_epochs: int, seed: int, context: MethodContext) -> SyneTunePeer:
    return SyneTunePeer(space, max_epochs, seed, scheduler="bohb")
