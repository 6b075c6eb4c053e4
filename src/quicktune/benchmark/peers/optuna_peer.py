"""`optuna`: Optuna's TPESampler with its HyperbandPruner (Optuna's recommended pairing), driven
by ask/tell: each trial trains epoch by epoch, `trial.report`s the accuracy and stops when
`trial.should_prune()` says so. Stop-only: a pruned trial is gone; a later trial mapped to the
same candidate trains it again from epoch 1 (and pays again)."""

from __future__ import annotations

from typing import Any

from quicktune.benchmark.methods import MethodContext
from quicktune.benchmark.peers.base import Job, PeerOptimizer
from quicktune.protocol import Observation
from quicktune.space import SearchSpace


class OptunaPeer(PeerOptimizer):
    stop_only = True

    def __init__(self, space: SearchSpace, max_epochs: int, seed: int = 0) -> None:
        super().__init__(space, max_epochs, seed)
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self._optuna = optuna
        self.study = optuna.create_study(
            direction="maximize",
            sampler=optuna.samplers.TPESampler(seed=seed),
            pruner=optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max_epochs, reduction_factor=3),
        )
        d = optuna.distributions
        self.distributions: dict[str, Any] = {
            **{n: d.FloatDistribution(lo, hi) for n, (lo, hi) in self.domain.numeric.items()},
            **{n: d.CategoricalDistribution(list(c)) for n, c in self.domain.categorical.items()},
        }
        self._next: Job | None = None

    def propose(self) -> Job | None:
        if self._next is not None:
            job, self._next = self._next, None
            return job
        trial = self.study.ask(self.distributions)
        return Job(self.nearest(trial.params), 1, new_run=True, token=trial)

    def observe(self, job: Job, observation: Observation) -> None:
        trial, epoch = job.token, job.epoch
        acc = self.value_at(observation, epoch)
        if observation.finished or epoch >= self.max_epochs:
            self.study.tell(trial, acc)  # the run is over: its last value is the trial's
            return
        trial.report(acc, epoch)
        if trial.should_prune():
            self.study.tell(trial, state=self._optuna.trial.TrialState.PRUNED)
        else:
            self._next = Job(job.config_id, epoch + 1, token=trial)


def make(space: SearchSpace, max_epochs: int, seed: int, context: MethodContext) -> OptunaPeer:
    return OptunaPeer(space, max_epochs, seed)
